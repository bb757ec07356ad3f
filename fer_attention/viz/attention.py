"""Pictures of where the network looks: face, LBP map and attention mask overlay."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fer_attention.viz.figures import save_figure


@torch.no_grad()
def attention_maps(net: torch.nn.Module, faces: torch.Tensor) -> dict[str, np.ndarray]:
    """Run ``net`` on faces ``[N, 1, H, W]``; return faces, LBP maps, masks (``[N, H, W]``), predictions."""
    was_training = net.training
    net.eval()
    logits, mask = net(faces, return_mask=True)
    lbp = net.lbp(faces) if getattr(net, "lbp", None) is not None else None
    net.train(was_training)
    to_np = lambda t: t[:, 0].float().cpu().numpy() if t is not None else None  # noqa: E731
    return {
        "faces": to_np(faces),
        "lbp": to_np(lbp),
        "mask": to_np(mask),
        "probs": torch.softmax(logits.float(), dim=1).cpu().numpy(),
    }


def plot_attention_grid(
    maps: dict[str, np.ndarray],
    class_names: Sequence[str],
    labels: Sequence[int] | None,
    path: str | Path,
    title: str = "",
) -> Path:
    """One column per face: the face, its LBP map and the mask overlaid on the face (when present), the mask
    stretched to its own min-max per face."""
    n = len(maps["faces"])
    rows = [("face", maps["faces"])]
    if maps.get("lbp") is not None:
        rows.append(("LBP", maps["lbp"]))
    if maps.get("mask") is not None:
        rows.append(("attention\n(per-face scale)", maps["mask"]))
    fig = Figure(figsize=(1.3 * n, 1.45 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n, squeeze=False)
    preds = maps["probs"].argmax(axis=1)
    for j in range(n):
        for i, (name, images) in enumerate(rows):
            ax = axes[i, j]
            if name.startswith("attention"):
                # the mask averaged over channels varies over a narrow range: stretch it per face
                m = images[j]
                m = (m - m.min()) / max(float(m.max() - m.min()), 1e-8)
                ax.imshow(maps["faces"][j], cmap="gray", vmin=0, vmax=1)
                ax.imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            else:
                ax.imshow(images[j], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
        truth = f"{class_names[labels[j]]}→" if labels is not None else ""
        axes[0, j].set_title(f"{truth}{class_names[preds[j]]}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
