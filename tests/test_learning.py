"""The network learns the synthetic faces: well above chance on held-out subjects, and clearly above a
logistic regression on raw pixels trained on the same split (the synthetic set is not trivially linear)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fer_attention.training.builders import build_datamodule
from fer_attention.training.task import train

# the default synthetic set (60 subjects, 5 subject folds), a narrow network, 12 epochs: about 45 s
SMALL = [
    "data.batch_size=32",
    "model.net.backbone.width=0.125",
    "model.optimizer.lr=0.002",
    "trainer.max_epochs=12",
    "trainer.accelerator=cpu",
    "~callbacks.progress_bar",
]


def logistic_regression_accuracy(cfg) -> float:
    dm = build_datamodule(cfg.data)
    dm.setup("fit")
    images, labels = dm.faces.images.reshape(len(dm.faces), -1).astype(np.float32), dm.faces.labels
    tr, te = dm.split_indices["train"], dm.split_indices["test"]
    scaler = StandardScaler().fit(images[tr])
    with threadpool_limits(1):
        clf = LogisticRegression(C=0.01, max_iter=300).fit(scaler.transform(images[tr]), labels[tr])
    return float(clf.score(scaler.transform(images[te]), labels[te]))


def test_full_model_learns_held_out_subjects_and_beats_pixels(make_cfg):
    cfg = make_cfg(SMALL)
    metrics = train(cfg)
    chance = 1 / 7
    linear = logistic_regression_accuracy(cfg)
    print(
        f"full model {metrics['test/acc']:.3f}, logistic regression on pixels {linear:.3f}, chance {chance:.3f}"
    )
    assert metrics["test/acc"] > 0.6
    assert metrics["test/acc"] > linear + 0.15
