"""Every key of every schema, given a bad value (a wrong type, a list for a scalar, a choice not among an
Enum's values, a value out of range), stops the command with one line naming the key, before any data is
read and without a traceback.

The configs are composed in this process with Hydra's compose API and go through what a fer-* command does
before its task reads anything (the composition error line, then the checks of run_task and the task's
validate_config); two cases run the real ``fer-train`` command."""

from __future__ import annotations

import dataclasses
import enum
import os
import random
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

from fer_attention.cli.common import checkpoint_argument, composition_error
from fer_attention.config import (
    ModelOptions,
    PretextOptions,
    TrainerOptions,
    check_schema_keys,
    config_dir,
    source_key,
    validate_config,
)
from fer_attention.data.options import DataOptions
from fer_attention.errors import ConfigError
from fer_attention.models.options import SCHEMAS
from fer_attention.runtime import RuntimeOptions
from fer_attention.task_options import COMMAND_SCHEMAS

REPO = Path(__file__).resolve().parents[1]
# keys whose schema type is Any, so no value is of a wrong type: free-form on purpose (a dataset source's
# own settings, albumentations transforms, Lightning's devices: an int, "auto" or a list; the optimizer
# and the scheduler: any torch class and its arguments), or typed by a schema of their own (model.net)
FREE_FORM = {
    "data.source",
    "data.augment",
    "trainer.devices",
    "pretext.augment",
    "model.net",
    "model.optimizer",
    "model.scheduler",
}
# where each schema types the composed config: (config, node); runtime types the top-level keys
MOUNTS = [
    ("train", "data"),
    ("train", "model"),
    ("train", "model.net"),
    ("train", "lbp"),
    ("train", "ablation"),
    ("train", "dilation"),
    ("train", "trainer"),
    ("pretrain", "pretext"),
]
# values in range of their type but not of their key: the hand-written rules validate_config reaches
OUT_OF_RANGE = [
    ("train", "data.image_size=4"),
    ("train", "data.fold=-1"),
    ("train", "data.num_folds=1"),
    ("train", "lbp.P=0"),
    ("train", "lbp.R=-1.0"),
    ("train", "model.net.backbone.last_stage=9"),
    ("train", "model.net.backbone.width=-1"),
    ("train", "model.net.classifier.dropout=1.5"),
    ("train", "dilation.rates=[0,1]"),
    ("train", "malloc.mmap_threshold_mb=0"),
    ("train", "malloc.trim_threshold_mb=5000"),
    ("train", "threads=0"),
    ("pretrain", "pretext.temperature=0"),
    ("pretrain", "pretext.histogram_weight=-1"),
]


def _unwrapped(hint: Any) -> Any:
    """``X | None`` as ``X``; a union of several types as itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, type(int | None)) and len(args) == 1 else hint


def _bad_values(hint: Any) -> list[str]:
    """Override values that a field typed ``hint`` must refuse (none for Any)."""
    kind = _unwrapped(hint)
    if kind is Any:
        return []
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return ["bogus", "[1,2]"]
    if typing.get_origin(kind) is list:  # a string for a list; a list of strings for a list of integers
        return ["lots", "[a,b]" if typing.get_args(kind) == (int,) else "{a:1}"]
    if kind is str or str in typing.get_args(kind):  # any scalar is a string: only a container is wrong
        return ["[1,2]", "{a:1}"]
    if kind is bool:
        return ["lots", "[1,2]"]
    if kind is int:
        return ["lots", "[1,2]", "true", "1.5"]
    if kind is float:
        return ["lots", "[1,2]", "true"]
    if typing.get_origin(kind) in (typing.Union, type(int | float)):  # int | float, bool | int
        return ["lots", "[1,2]"]
    raise AssertionError(f"no bad values for type {hint}")


def _pick(key: str, values: list[str], n: int = 1) -> list[str]:
    """``n`` of a key's bad values at random (the same on every run: seeded by the key), to stay fast."""
    return sorted(random.Random(f"39:{key}").sample(values, min(n, len(values))))


def _schema_cases() -> list[tuple[str, str, str]]:
    """``(config, key, bad value)`` for every leaf key of every schema and the bad values its type has."""
    cases = []
    for config_name, node in MOUNTS:
        kind = OmegaConf.get_type(_compose(config_name, node))
        cases += _field_cases(config_name, node, kind)
    runtime = typing.get_type_hints(RuntimeOptions)
    cases += [("train", "threads", value) for value in _pick("threads", _bad_values(runtime["threads"]))]
    cases += _field_cases("train", "malloc", runtime["malloc"])
    for config_name, kind in COMMAND_SCHEMAS.items():  # the commands' own top-level keys
        cases += _field_cases(config_name, "", kind)
    return cases


def _field_cases(config_name: str, prefix: str, kind: type) -> list[tuple[str, str, str]]:
    cases = []
    for name, hint in typing.get_type_hints(kind).items():
        key = f"{prefix}.{name}" if prefix else name
        inner = _unwrapped(hint)
        if dataclasses.is_dataclass(inner):
            cases += _field_cases(config_name, key, inner)
        elif key not in FREE_FORM:
            values = _bad_values(hint)
            assert values, f"{key}: typed {hint}, which refuses nothing; list it in FREE_FORM or type it"
            cases += [(config_name, key, value) for value in _pick(key, values)]
    return cases


_COMPOSED: dict[str, Any] = {}


def _compose(config_name: str, node: str) -> Any:
    """The node of the default composition of ``config_name`` (composed once per config; "" the root)."""
    if config_name not in _COMPOSED:
        _COMPOSED[config_name] = compose_or_line(config_name, [])[0]
    return OmegaConf.select(_COMPOSED[config_name], node) if node else _COMPOSED[config_name]


def compose_or_line(config_name: str, overrides: list[str]) -> tuple[Any, str | None]:
    """(the composed config, None), or (None, the one line a fer-* command prints for a composition error)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name, overrides=overrides), None
    except CompactHydraException as err:
        return None, composition_error(err)
    finally:
        GlobalHydra.instance().clear()


def error_line(config_name: str, override: str) -> str:
    """The error a fer-* command gives for ``override`` before its task reads any data: at composition, or
    from the checks run_task and the task make first (validate_config; fer-pretrain's pretext rules)."""
    cfg, line = compose_or_line(config_name, [override])
    if line is not None:
        return line
    try:
        check_schema_keys(cfg)
        checkpoint_argument(cfg)
        validate_config(cfg)
        if config_name == "pretrain":
            from fer_attention.training.pretext.task import check_pretext

            check_pretext(cfg)
    except ConfigError as err:
        return str(err)
    raise AssertionError(f"{config_name} {override}: accepted")


def names_the_key(line: str, keys: tuple[str, ...]) -> bool:
    """``line`` names one of ``keys`` as ``key=`` or ``'key'`` (Hydra's "Could not override 'key'")."""
    return any(f"{k}=" in line or f"'{k}'" in line for k in keys)


SCHEMA_CASES = _schema_cases()
RNG = random.Random(39)


def test_every_schema_is_fuzzed():
    """The schemas the configs take are the ones walked here, and every leaf key gets bad values."""
    registered = {
        **SCHEMAS,
        "data": DataOptions,
        "model": ModelOptions,
        "trainer": TrainerOptions,
        "pretext": PretextOptions,
    }
    mounted = {OmegaConf.get_type(_compose(c, n)) for c, n in MOUNTS}
    assert set(registered.values()) == mounted
    keys = {key for _, key, _ in SCHEMA_CASES}
    assert {
        "model.compile",
        "model.loss.label_smoothing",
        "data.protocol",
        "model.net.attention.fusion",
        "trainer.max_epochs",
        "pretext.target_lbp.method",
    } <= keys
    assert {"threads", "malloc.mmap_threshold_mb", "lbp.method", "dilation.rates"} <= keys
    commands = {(c, k) for c, k, _ in SCHEMA_CASES if c in COMMAND_SCHEMAS}
    assert {
        ("predict", "batch_size"),
        ("predict", "video.stride"),
        ("eval", "split"),
        ("export", "format"),
    } <= commands
    assert {("data_cli", "action"), ("export", "calib_method"), ("predict", "save_annotated")} <= commands
    assert len(SCHEMA_CASES) > 110


@pytest.mark.parametrize(
    ("config_name", "override"),
    [*((c, f"{k}={v}") for c, k, v in SCHEMA_CASES), *OUT_OF_RANGE],
    ids=lambda v: v if "=" in str(v) else "",
)
def test_a_bad_value_is_one_line_naming_the_key_before_any_data(config_name, override, monkeypatch):
    from fer_attention.data.datamodule import FaceDataModule

    monkeypatch.setattr(FaceDataModule, "load", lambda *_a, **_k: pytest.fail("data was read"))
    key = override.partition("=")[0]
    line = error_line(config_name, override)
    assert "\n" not in line and "Traceback" not in line, line
    keys = (
        key,
        source_key(_compose(config_name, ""), key),
        key.replace("model.net.reconstruction.rates", "dilation.rates"),
    )
    assert names_the_key(line, keys), (override, line)


def test_random_overrides_on_two_keys_at_once_name_a_key(monkeypatch):
    """A few random pairs: the first bad key met is named, in one line."""
    for _ in range(8):
        (c1, k1, v1), (_, k2, v2) = RNG.sample([case for case in SCHEMA_CASES if case[0] == "train"], 2)
        cfg, line = compose_or_line(c1, [f"{k1}={v1}", f"{k2}={v2}"])
        assert cfg is None and line is not None and "\n" not in line
        assert names_the_key(line, (k1, k2)), line


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "model.net.attention.fusion=bogus",
            "error: Error merging override model.net.attention.fusion=bogus: Invalid value 'bogus', expected one "
            "of [concat, add]",
        ),
        (
            "malloc.mmap_threshold_mb=lots",
            "error: Error merging override malloc.mmap_threshold_mb=lots: Value 'lots' of type 'str' could not "
            "be converted to Integer",
        ),
    ],
)
def test_the_command_prints_the_one_line(override, line, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    cmd = [sys.executable, "-m", "fer_attention.cli.train", override, f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert [text for text in proc.stderr.splitlines() if text.strip()] == [line]
    assert not (tmp_path / "train").exists()  # nothing ran: no run dir
