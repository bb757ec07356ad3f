"""`fer-report --along KEY`: paired comparisons at each value of a config key (a width curve), the value
read from each job's composed config."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from fer_attention.cli.report import main as report_main
from fer_attention.errors import ReportError
from fer_attention.reporting.along import along_report
from fer_attention.reporting.stats import paired_comparison

from .test_report import TEST, TRAIN, fake_sweep

WIDE = {"full": [0.92, 0.95, 0.90, 0.93, 0.94], "vgg16": [0.90, 0.91, 0.91, 0.90, 0.92]}
NARROW = {"full": [0.80, 0.84, 0.78, 0.83, 0.82], "vgg16": [0.84, 0.86, 0.83, 0.85, 0.86]}


def _set_width(root, width, override: bool):
    for cfg in root.rglob(".hydra/config.yaml"):
        cfg.write_text(
            yaml.safe_dump({"task_name": "demo", "model": {"net": {"backbone": {"width": width}}}})
        )
        if override:
            ov = cfg.parent / "overrides.yaml"
            ov.write_text(
                yaml.safe_dump([*yaml.safe_load(ov.read_text()), f"model.net.backbone.width={width}"])
            )


def test_each_width_is_paired_within_itself_and_read_from_the_config(tmp_path, capsys):
    fake_sweep(tmp_path / "narrow", NARROW)
    _set_width(tmp_path / "narrow", 0.125, override=True)
    fake_sweep(tmp_path / "wide", WIDE)
    _set_width(tmp_path / "wide", 0.25, override=False)  # the budget's width: no override
    out = along_report([tmp_path / "narrow", tmp_path / "wide"], "model.net.backbone.width", tmp_path / "r")
    got = {(p["model.net.backbone.width"], p["row"]): p for p in out["points"]}
    for width, rows in (("0.125", NARROW), ("0.25", WIDE)):
        expected = paired_comparison(np.array(rows["vgg16"]), np.array(rows["full"]), TEST / TRAIN)
        point = got[(width, "ablation=vgg16")]
        assert point["mean_diff"] == pytest.approx(expected.mean_diff)
        assert (point["ci_low"], point["ci_high"]) == pytest.approx((expected.ci_low, expected.ci_high))
        assert point["pairs"] == 5 and got[(width, "ablation=full")]["mean_diff"] is None
    # the sign changes between the widths: vgg16 ahead when narrow, behind when wide
    assert got[("0.125", "ablation=vgg16")]["mean_diff"] > 0 > got[("0.25", "ablation=vgg16")]["mean_diff"]
    with open(tmp_path / "r" / "along.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "r" / "along.png").stat().st_size > 10_000
    assert "| 0.125 | ablation=vgg16 |" in out["table"]
    # --reference makes another row the one every width is paired against
    flipped = along_report(
        [tmp_path / "narrow", tmp_path / "wide"],
        "model.net.backbone.width",
        tmp_path / "r1",
        reference="vgg16",
    )
    by = {(p["model.net.backbone.width"], p["row"]): p for p in flipped["points"]}
    for width in ("0.125", "0.25"):
        assert by[(width, "ablation=vgg16")]["mean_diff"] is None
        assert by[(width, "ablation=full")]["mean_diff"] == pytest.approx(
            -got[(width, "ablation=vgg16")]["mean_diff"]
        )
    # --rows keeps the two rows of a width curve out of a wider table
    fake_sweep(tmp_path / "more", {"no_lbp": [0.9] * 5})
    _set_width(tmp_path / "more", 0.25, override=False)
    dirs = [tmp_path / "narrow", tmp_path / "wide", tmp_path / "more"]
    kept = along_report(dirs, "model.net.backbone.width", tmp_path / "r2", rows=["full", "vgg16"])
    assert {p["row"] for p in kept["points"]} == {"ablation=full", "ablation=vgg16"}
    assert (
        report_main([str(tmp_path / "narrow"), "--along", "model.net.nope", "--out", str(tmp_path / "x")])
        == 1
    )
    assert capsys.readouterr().err.strip() == (
        "error: --along model.net.nope: no finished job has that key in its .hydra/config.yaml"
    )


def test_a_value_with_one_row_is_one_line(tmp_path):
    fake_sweep(tmp_path / "s", {"full": [0.9, 0.8]})
    _set_width(tmp_path / "s", 0.5, override=False)
    with pytest.raises(ReportError, match=r"at model.net.backbone.width=0.5 there are fewer than two rows"):
        along_report([tmp_path / "s"], "model.net.backbone.width", tmp_path / "r")


def test_the_command_line_keeps_the_rows_asked_for(tmp_path):
    fake_sweep(tmp_path / "s", {**WIDE, "no_lbp": [0.9] * 5})
    _set_width(tmp_path / "s", 0.25, override=False)
    argv = [
        str(tmp_path / "s"),
        "--along",
        "model.net.backbone.width",
        "--rows",
        "full,vgg16",
        "--out",
        str(tmp_path / "r"),
    ]
    assert report_main(argv) == 0
    with open(tmp_path / "r" / "along.csv") as f:
        assert {r["row"] for r in csv.DictReader(f)} == {"ablation=full", "ablation=vgg16"}


def test_along_a_config_group_is_one_comparison_per_option_it_was_composed_with(tmp_path):
    """`--along ablation --reference data.source.target=votes`: the FER+ table's question, votes against the
    plurality label within each network; the group is read back as its option's name, the x axis is one
    slot per option."""
    votes = {"full": [0.83, 0.84, 0.82], "vgg16": [0.82, 0.83, 0.83]}
    label = {"full": [0.81, 0.82, 0.80], "vgg16": [0.82, 0.83, 0.82]}
    for target, rows in (("votes", votes), ("label", label)):
        for net, accs in rows.items():
            root = tmp_path / f"{net}_{target}"
            fake_sweep(root, {target: accs}, key="data.source.target", kfold=False)
            node = yaml.safe_load((config_dir_of("ablation") / f"{net}.yaml").read_text())
            for cfg in root.rglob(".hydra/config.yaml"):
                cfg.write_text(yaml.safe_dump({"task_name": "demo", "ablation": node}))
    dirs = sorted(tmp_path.iterdir())
    out = along_report(dirs, "ablation", tmp_path / "r", reference="data.source.target=votes")
    got = {(p["ablation"], p["row"]): p for p in out["points"]}
    assert set(got) == {
        (net, f"data.source.target={t}") for net in ("full", "vgg16") for t in ("votes", "label")
    }
    for net in ("full", "vgg16"):
        assert got[(net, "data.source.target=votes")]["mean_diff"] is None
        expected = 100 * (np.mean(label[net]) - np.mean(votes[net]))
        assert got[(net, "data.source.target=label")]["mean_diff"] == pytest.approx(expected)
    assert "| full | data.source.target=label |" in out["table"]
    assert (tmp_path / "r" / "along.png").stat().st_size > 10_000


def config_dir_of(group: str):
    from pathlib import Path

    from fer_attention.config import config_dir

    return Path(config_dir()) / group
