"""The pretext losses: per-cell LBP-code histograms as targets, their KL divergence, and InfoNCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fer_attention.lbp import local_binary_pattern, num_codes


def lbp_histograms(clean: torch.Tensor, method: str, P: int, R: float, grid: int) -> torch.Tensor:
    """Per-cell LBP-code histograms of ``[N, 1, H, W]`` faces: ``[N, K, grid, grid]``, each cell summing to 1."""
    with torch.no_grad(), torch.autocast(clean.device.type, enabled=False):
        codes = local_binary_pattern(clean.float(), method=method, P=P, R=R)
        k = num_codes(method, P)
        onehot = F.one_hot(codes[:, 0].long().clamp_(0, k - 1), k).permute(0, 3, 1, 2).float()
        return F.adaptive_avg_pool2d(onehot, grid)


def histogram_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over faces and cells of KL(target || softmax(logits)) over the code axis (dim 1)."""
    logp = F.log_softmax(logits.float(), dim=1)
    entropy = torch.where(target > 0, target * torch.log(target.clamp_min(1e-12)), torch.zeros_like(target))
    return (entropy - target * logp).sum(dim=1).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE between matched rows of ``a`` and ``b`` (``[N, D]``); also the top-1 accuracy of
    finding each row's partner among the batch."""
    a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    logits = a @ b.t() / temperature
    labels = torch.arange(len(a), device=a.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    acc = (logits.argmax(dim=1) == labels).float().mean()
    return loss, acc
