"""Every conf/data config composes and instantiates its DataModule against a generated fixture in the
dataset's own layout: the faces load, every split of the protocol is filled, batches have the config's
image size, and the labels are within the config's classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fer_attention.config import config_dir
from fer_attention.training.builders import build_datamodule

try:  # tests/ as a package or as a plain folder on sys.path
    from . import data_fixtures as fx
except ImportError:
    import data_fixtures as fx

CK48_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _ck48(root: Path, classes=CK48_CLASSES, subjects: int = 12) -> None:
    seqs = [
        (f"S{100 + s:03d}", f"{c:03d}", classes[(s + c) % len(classes)], 3)
        for s in range(subjects)
        for c in range(3)
    ]
    fx.make_ck48(root, seqs)


def _ferplus(root: Path) -> None:
    votes = []
    for i in range(24):
        usage = ("Training", "Training", "PublicTest", "PrivateTest")[i % 4]
        v = [0] * 10
        v[i % 8] = 10
        votes.append((usage, f"fer{i:07d}.png", v))
    fx.make_ferplus(root, votes)


# config name -> (fixture writer or None, extra overrides)
FIXTURES = {
    "synthetic": (
        None,
        ["data.source.num_subjects=15", "data.source.frames_per_sequence=2", "data.num_folds=3"],
    ),
    "fer2013": (lambda r: fx.make_fer2013_csv(r / "fer2013.csv", fx.fer2013_standard_rows()), []),
    "ferplus": (_ferplus, []),
    "ckplus": (_ck48, ["data.num_folds=3"]),
    "ckplus6": (lambda r: _ck48(r, tuple(c for c in CK48_CLASSES if c != "contempt")), ["data.num_folds=3"]),
    "jaffe": (
        lambda r: fx.make_jaffe(r, subjects=("KA", "KL", "KM", "KR", "MK", "NA")),
        ["data.num_folds=3"],
    ),
    "oulu_casia": (
        lambda r: fx.make_oulu(r, subjects=tuple(f"P{i:03d}" for i in range(1, 7))),
        ["data.num_folds=3"],
    ),
    "rafdb": (lambda r: fx.make_rafdb(r, fx.rafdb_entries(42, 14)), []),
    "affectnet": (
        lambda r: fx.make_affectnet(r, [c % 7 for c in range(28)], list(range(7))),
        ["data.image_size=32"],
    ),
    "affectnet8": (
        lambda r: fx.make_affectnet(r, [c % 8 for c in range(32)], list(range(8))),
        ["data.image_size=32"],
    ),
    "folder": (
        lambda r: [
            fx.make_class_folders(r / s, {"happy": n, "sad": n})
            for s, n in (("train", 8), ("val", 2), ("test", 2))
        ],
        ["data.class_names=[happy,sad]"],
    ),
    "sequences": (
        lambda r: fx.make_sequences(r, subjects=tuple(f"s{i}" for i in range(6))),
        ["data.class_names=[happy,sad,neutral]", "data.num_folds=3"],
    ),
    "images": (lambda r: fx.make_class_folders(r, {"a": 6, "b": 6}), []),
}
DATA_CONFIGS = sorted(p.stem for p in (Path(config_dir()) / "data").glob("*.yaml"))


def test_every_data_config_has_a_fixture():
    assert set(DATA_CONFIGS) == set(FIXTURES)


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_data_config_instantiates_against_its_layout(make_cfg, tmp_path, name):
    writer, overrides = FIXTURES[name]
    root = tmp_path / "data"
    if writer is not None:
        root.mkdir()
        writer(root)
        overrides = [*overrides, f"data.root={root}"]
    cfg = make_cfg(
        [f"data={name}", "data.cache_dir=null", "data.progress=false", "data.batch_size=4", *overrides]
    )
    dm = build_datamodule(cfg.data)
    dm.setup("fit")
    summary = dm.split_summary()
    protocol_splits = ("train", "val") if name == "images" else ("train", "val", "test")
    for split in protocol_splits:
        assert summary[split]["faces"] > 0, (name, split, summary)
    assert sum(summary[s]["faces"] for s in summary) == len(dm.faces)
    images, labels = next(iter(dm.train_dataloader()))
    size = cfg.data.image_size
    assert images.shape[1:] == (1, size, size) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert int(labels.max()) < len(cfg.data.class_names) and int(labels.min()) >= 0


def test_the_data_schema_is_the_datamodules_one_parameter_list(make_cfg):
    """One list of the data keys: the schema every data config takes (DataOptions, with each key's default)
    is what FaceDataModule keeps as its options, built from the composed config as Hydra instantiates it."""
    import dataclasses

    from omegaconf import OmegaConf

    from fer_attention.config import DataOptions as registered
    from fer_attention.data.options import DataOptions

    assert registered is DataOptions
    cfg = make_cfg(["data=synthetic", *FIXTURES["synthetic"][1]])
    fields = [f.name for f in dataclasses.fields(DataOptions)]
    assert list(cfg.data) == fields
    dm = build_datamodule(cfg.data)
    assert isinstance(dm.options, DataOptions)
    assert dataclasses.asdict(dm.options) == OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True)
    assert type(dm.options.protocol) is str and dm.options.protocol == cfg.data.protocol == "kfold"


def test_a_bad_recorded_data_value_is_one_line_naming_the_key(make_cfg):
    """A data config that did not come through Hydra (a checkpoint's record) is checked against the same
    schema: a choice not among its values, a wrong type or an unknown key is one line naming data.<key>."""
    from omegaconf import OmegaConf

    cfg = make_cfg(["data=synthetic", *FIXTURES["synthetic"][1]])
    recorded = OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True)
    for change, message in (
        ({"protocol": "fold"}, r"^data.protocol='fold' is not one of fixed, kfold, auto$"),
        ({"face_crop": "mtcnn"}, r"^data.face_crop='mtcnn' is not one of auto, none, haar, box$"),
        (
            {"num_folds": [1, 2]},
            r"^data.num_folds=\[1, 2\]: Value '\[1, 2\]' of type 'ListConfig' could not be",
        ),
        ({"zoom": 2}, r"^data.zoom: Key 'zoom' not in 'DataOptions'$"),
    ):
        with pytest.raises(ValueError, match=message):
            build_datamodule({**recorded, **change})


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_the_class_count_is_the_number_of_class_names(make_cfg, name):
    """No data config states the class count; the network's is counted from the class names."""
    from omegaconf import OmegaConf

    writer, overrides = FIXTURES[name]
    assert "num_classes" not in OmegaConf.load(Path(config_dir()) / "data" / f"{name}.yaml")
    cfg = make_cfg([f"data={name}", *(o for o in overrides if o.startswith("data.class_names"))])
    assert "num_classes" not in cfg.data
    assert cfg.model.net.num_classes == len(cfg.data.class_names)
