"""A result folder re-derives with the command its README names: `fer-report <folder>/jobs` reuses the
report arguments that `--publish` (and a recorded `--along`) wrote into run.json's `report_args`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from fer_attention.cli.report import main as report_main

from .test_report import FULL, VGG, fake_sweep
from .test_report_along import NARROW, WIDE, _set_width

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
WIDTH = "model.net.backbone.width"


def _sweep(root: Path, rows: dict[str, list[float | None]], width: float | None = None) -> Path:
    fake_sweep(root, rows)
    (root / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["sweep=ablation_modules"]}}})
    )
    if width is not None:
        _set_width(root, width, override=True)
    return root


def _columns(path: Path, like: Path | None = None) -> list[dict[str, str]]:
    """The rows of a CSV file, keeping only the columns of ``like`` (default its own): new columns a
    later fer-report adds do not count."""
    with open(like or path, newline="") as f:
        keep = csv.DictReader(f).fieldnames or []
    with open(path, newline="") as f:
        return [{k: row.get(k) for k in keep} for row in csv.DictReader(f)]


def _report_args(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text()).get("report_args")


def test_a_folder_published_with_a_reference_re_derives_without_giving_it(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep", {"full": FULL, "vgg16": VGG})
    pub = tmp_path / "pub"
    assert report_main([str(sweep), "--out", str(pub), "--publish", "--reference", "vgg16"]) == 0
    assert _report_args(pub) == {"reference": "vgg16"}
    readme = (pub / "README.md").read_text()
    assert (
        f"`fer-report {pub}/jobs --out {pub}` re-aggregates this folder (with the report arguments" in readme
    )
    capsys.readouterr()

    assert report_main([str(pub / "jobs"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "table.csv").read_text() == (pub / "table.csv").read_text()
    assert (tmp_path / "again" / "table.md").read_text() == (pub / "table.md").read_text()
    reused = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("reusing")]
    assert reused == [f"reusing the report arguments recorded in {pub}/run.json: --reference vgg16"]
    # without the record the same command compares with the default row: another table
    assert report_main([str(sweep), "--out", str(tmp_path / "default")]) == 0
    assert (tmp_path / "default" / "table.csv").read_text() != (pub / "table.csv").read_text()


def test_the_command_line_wins_over_the_recorded_arguments(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep", {"full": FULL, "vgg16": VGG})
    pub = tmp_path / "pub"
    argv = [str(sweep), "--out", str(pub), "--publish", "--reference", "vgg16", "--name", "kept"]
    assert report_main(argv) == 0
    assert _report_args(pub) == {"reference": "vgg16", "name": "kept"}
    capsys.readouterr()

    assert report_main([str(pub / "jobs"), "--out", str(tmp_path / "r"), "--reference", "full"]) == 0
    out = capsys.readouterr().out
    assert f"reusing the report arguments recorded in {pub}/run.json: --name kept\n" in out
    rows = {r["ablation"]: r for r in _columns(tmp_path / "r" / "table.csv")}
    assert rows["full"]["reference"] == "True" and rows["vgg16"]["reference"] == "False"
    assert (tmp_path / "r" / "table.md").read_text().startswith("### kept")
    # an empty value drops the recorded one: the default reference and the sweep's own name
    assert (
        report_main([str(pub / "jobs"), "--out", str(tmp_path / "d"), "--reference", "", "--name", ""]) == 0
    )
    assert "reusing" not in capsys.readouterr().out
    assert (tmp_path / "d" / "table.md").read_text().startswith("### demo")
    # the record is not rewritten by re-aggregating
    assert _report_args(pub) == {"reference": "vgg16", "name": "kept"}


def test_an_along_recorded_into_a_folder_re_derives_its_table_and_along_csv(tmp_path, capsys):
    narrow = _sweep(tmp_path / "narrow", {"full": NARROW["full"], "vgg16": NARROW["vgg16"]}, 0.125)
    wide = _sweep(tmp_path / "wide", {"full": WIDE["full"], "vgg16": WIDE["vgg16"]}, 0.25)
    a, b = tmp_path / "results" / "a", tmp_path / "results" / "b"
    assert report_main([str(narrow), "--out", str(a), "--publish", "--reference", "vgg16"]) == 0
    assert report_main([str(wide), "--out", str(b), "--publish"]) == 0
    along = [str(a / "jobs"), str(b / "jobs"), "--along", WIDTH, "--rows", "full,vgg16", "--out", str(a)]
    # one re-aggregation makes both files with one reference: an along with another is refused
    assert report_main([*along, "--reference", "full"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: --reference full differs from the table's vgg16 that {a}/run.json records; give --along "
        "the table's --reference, or republish the table with it"
    )
    assert report_main([*along, "--reference", "vgg16"]) == 0
    assert _report_args(a) == {
        "reference": "vgg16",
        "along": WIDTH,
        "rows": "full,vgg16",
        "along_dirs": ["jobs", "../b/jobs"],
    }
    capsys.readouterr()

    again = tmp_path / "again"
    assert report_main([str(a / "jobs"), "--out", str(again)]) == 0
    assert "--reference vgg16 --along model.net.backbone.width --rows full,vgg16" in capsys.readouterr().out
    for name in ("table.csv", "along.csv"):
        assert (again / name).read_text() == (a / name).read_text()
    assert {r[WIDTH] for r in _columns(again / "along.csv")} == {"0.125", "0.25"}
    # --publish --along: the table and the along over the published jobs, both recorded
    c = tmp_path / "results" / "c"
    assert (
        report_main([str(wide), "--out", str(c), "--publish", "--along", WIDTH, "--reference", "vgg16"]) == 0
    )
    assert _report_args(c) == {"reference": "vgg16", "along": WIDTH, "along_dirs": ["jobs"]}
    assert report_main([str(c / "jobs"), "--out", str(tmp_path / "c2")]) == 0
    for name in ("table.csv", "along.csv"):
        assert (tmp_path / "c2" / name).read_text() == (c / name).read_text()


def test_publish_append_keeps_the_recorded_arguments(tmp_path, capsys):
    _sweep(tmp_path / "s0", {"full": FULL, "vgg16": VGG})
    fake_sweep(tmp_path / "more", {"full": VGG, "vgg16": FULL}, seed=1)
    pub = tmp_path / "pub"
    assert report_main([str(tmp_path / "s0"), "--out", str(pub), "--publish", "--reference", "vgg16"]) == 0
    assert report_main([str(tmp_path / "more"), "--out", str(pub), "--publish", "--append"]) == 0
    assert _report_args(pub) == {"reference": "vgg16"}
    rows = {r["ablation"]: r for r in _columns(pub / "table.csv")}
    assert rows["vgg16"]["reference"] == "True" and rows["full"]["pairs"] == "10"


def _committed_folders() -> list[Path]:
    return sorted(
        f.parent
        for f in RESULTS.glob("*/run.json")
        if (f.parent / "jobs").is_dir() and json.loads(f.read_text()).get("report_args") is not None
    )


def test_committed_folders_with_report_args_re_derive_their_committed_tables(tmp_path):
    folders = _committed_folders()
    names = {f.name for f in folders}
    assert {
        "precision_ckplus48_cpu",
        "width_ckplus48_cpu",
        "width05_ckplus48_cpu",
        "width1_ckplus48_cpu",
    } <= names
    for folder in folders:
        out = tmp_path / folder.name
        assert report_main([str(folder / "jobs"), "--out", str(out)]) == 0, folder.name
        committed = [n for n in ("table.csv", "along.csv") if (folder / n).is_file()]
        assert committed, folder.name
        for name in committed:
            assert _columns(out / name, like=folder / name) == _columns(folder / name), (
                f"{folder.name}/{name}"
            )


@pytest.mark.parametrize("bad", [["not", "a", "mapping"], {"refrence": "vgg16"}])
def test_a_malformed_record_is_one_line_naming_it(tmp_path, capsys, bad):
    pub = tmp_path / "pub"
    assert (
        report_main(
            [str(_sweep(tmp_path / "s", {"full": FULL, "vgg16": VGG})), "--out", str(pub), "--publish"]
        )
        == 0
    )
    info = json.loads((pub / "run.json").read_text())
    (pub / "run.json").write_text(json.dumps({**info, "report_args": bad}))
    assert report_main([str(pub / "jobs"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {pub}/run.json: report_args") and "\n" not in err
