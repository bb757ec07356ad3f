"""Scale-out: `trainer=ddp` with 2 CPU processes (gloo) trains on the same global batches as one process,
so that a network without batch norm ends the same steps with the same weights, and the only difference
left for the paper's network is batch norm's statistics over each process's half batch (docs/scaling.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from fer_attention.data.samplers import EpochSampler, ShardedEpochSampler
from fer_attention.runs import read_status
from fer_attention.training.checkpoint import load_weights_only
from fer_attention.training.task import train

REPO = Path(__file__).resolve().parents[1]
# 3 optimiser steps at a global batch of 32, no augmentation and no dropout: nothing random but the order
STEPS = [
    "data.source.num_subjects=15",
    "data.source.frames_per_sequence=4",
    "data.num_folds=3",
    "augment=none",
    "model.net.backbone.width=0.125",
    "model.net.classifier.dropout=0.0",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.accelerator=cpu",
    "callbacks.attention_maps=null",
    "~callbacks.progress_bar",
]
NO_BATCH_NORM = ["ablation=vgg16", "model.net.backbone.arch=vgg16"]


def _batches(sampler, batch: int) -> list[list[int]]:
    order = list(sampler)
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def test_process_shards_together_are_the_one_process_batches():
    for weights in (None, torch.linspace(0.1, 1.0, 70, dtype=torch.double)):
        one = EpochSampler(70, seed=3, epoch=2, weights=weights)
        shards = [
            ShardedEpochSampler(EpochSampler(70, seed=3, epoch=2, weights=weights), 2, r) for r in (0, 1)
        ]
        assert all(isinstance(s, DistributedSampler) for s in shards)  # so Lightning keeps it
        assert [len(s) for s in shards] == [35, 35]
        single = _batches(one, 32)
        per_rank = [_batches(s, 16) for s in shards]
        for k, batch in enumerate(single):
            assert sorted(per_rank[0][k] + per_rank[1][k]) == sorted(batch)
        for s in shards:
            s.set_epoch(3)
        one.set_epoch(3)
        assert sorted(list(shards[0]) + list(shards[1])) == sorted(one)
    odd = [ShardedEpochSampler(EpochSampler(5, seed=0), 2, r) for r in (0, 1)]
    assert [len(list(s)) for s in odd] == [3, 3]  # padded by the order's start to equal shards
    assert set(list(odd[0]) + list(odd[1])) == set(range(5))


def _ddp_weights(overrides, tmp_path, name):
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [
        *(sys.executable, "-m", "fer_attention.cli.train"),
        *overrides,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.batch_size=16",
        "threads=1",
        f"paths.log_dir={tmp_path / name}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / name / "train" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and read_status(run_dir)["state"] == "finished"
    assert proc.stdout.count("test accuracy") == 1  # one summary line, from rank 0
    return load_weights_only(metrics["best_ckpt"])["state_dict"]


def _largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_ddp_takes_the_same_steps_as_one_process_and_batch_norm_is_the_difference(make_cfg, tmp_path):
    differences = {}
    for name, extra in (("no_batch_norm", NO_BATCH_NORM), ("paper_network", [])):
        single = train(make_cfg([*STEPS, *extra, "data.batch_size=32"], subdir=f"{name}_single"))
        one = load_weights_only(single["best_ckpt"])["state_dict"]
        differences[name] = _largest_difference(one, _ddp_weights([*STEPS, *extra], tmp_path, name))
    print(differences)
    # without batch norm only the summation order differs (fp32): the same three steps
    assert differences["no_batch_norm"] < 1e-5
    # with it, each process normalises over its 16 faces (and DDP keeps rank 0's running statistics)
    assert differences["paper_network"] > 1e-3
