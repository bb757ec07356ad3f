"""`fer-report --wandb`: the paired table reaches W&B as a report run (read back from the offline run's
files), and W&B credentials are found for the configured server, self-hosted ones included."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from fer_attention.cli.report import main as report_main
from fer_attention.reporting.aggregate import report
from fer_attention.reporting.dashboard import DashboardUnavailable, log_report
from fer_attention.tracking import wandb_credentials_available, wandb_host

from .test_report import FULL, VGG, fake_sweep


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _same(logged, written: str) -> bool:
    if logged is None:
        return written in ("", "None")
    return (
        float(logged) == pytest.approx(float(written))
        if isinstance(logged, float)
        else str(logged) == written
    )


def test_the_report_run_holds_the_table_folds_plots_and_summary(tmp_path, offline):
    fake_sweep(tmp_path / "sweep", {"full": FULL, "vgg16": VGG})
    result = report(tmp_path / "sweep", tmp_path / "out")
    run_dir = log_report(result, tmp_path / "sweep", "fer-report sweep --wandb")
    assert run_dir.parent == tmp_path / "out" / "wandb" and run_dir.name.startswith("offline-run-")
    tables = {
        p.name.split("_")[0]: json.loads(p.read_text())
        for p in (run_dir / "files" / "media" / "table").glob("*.table.json")
    }
    written = _csv(tmp_path / "out" / "table.csv")
    assert tables["table"]["columns"] == written[0]
    assert len(tables["table"]["data"]) == len(written) - 1
    for logged_row, csv_row in zip(tables["table"]["data"], written[1:], strict=True):
        assert all(_same(a, b) for a, b in zip(logged_row, csv_row, strict=True)), (logged_row, csv_row)
    assert tables["folds"]["columns"] == _csv(tmp_path / "out" / "folds.csv")[0]
    images = {p.name.split("_")[0] for p in (run_dir / "files" / "media" / "images").glob("*.png")}
    assert images == {"plot"}  # this fake sweep has no per-epoch CSV, so no curves.png to log
    keys = (b"ablation=vgg16/p_corrected", b"ablation=vgg16/delta", b"ablation=full/test_acc", b"report")
    # log_report returns once W&B's service has written the offline record (tracking.finish_wandb)
    record = b"".join(p.read_bytes() for p in run_dir.glob("*.wandb"))
    for key in keys:
        assert key in record, key
    assert b"fer-report sweep --wandb" in record


def test_wandb_disabled_or_missing_is_one_line_and_the_files_are_still_written(
    tmp_path, offline, monkeypatch, capsys
):
    fake_sweep(tmp_path / "sweep", {"full": FULL, "vgg16": VGG})
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out"), "--wandb"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: W&B is disabled (WANDB_MODE=disabled): the report is in the files only"]
    assert (tmp_path / "out" / "table.csv").is_file() and not (tmp_path / "out" / "wandb").exists()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(DashboardUnavailable, match=r"^--wandb needs the wandb package"):
        log_report(report(tmp_path / "sweep", tmp_path / "out"), tmp_path / "sweep")


def test_credentials_are_looked_up_for_the_configured_server(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    rc = tmp_path / "netrc"
    rc.write_text("machine wandb.example.org\n  login user\n  password secret-key\n")
    rc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(rc))
    assert wandb_host() == "api.wandb.ai" and not wandb_credentials_available()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org:8443")
    assert wandb_host() == "wandb.example.org" and wandb_credentials_available()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert not wandb_credentials_available()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert not wandb_credentials_available()
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert wandb_credentials_available()
