"""The package ships its configs: every subpackage is listed, the wheel holds conf/, and the commands
find their configs from any directory."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fer_attention").rglob("*.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_wheel_ships_the_config_tree(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("fer_attention-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("fer_attention/conf/") for n in names if n.startswith("fer_attention/conf/")}
    expected = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert expected <= shipped, sorted(expected - shipped)
    # and the shipped model's files, every one of them
    model_dir = ROOT / "fer_attention" / "inference" / "shipped"
    model_files = {f"fer_attention/inference/shipped/{p.name}" for p in model_dir.glob("*") if p.is_file()}
    assert model_files <= names, sorted(model_files - names)


def test_commands_find_their_configs_from_another_directory(tmp_path):
    for command in ("fer-train", "fer-eval"):
        out = subprocess.run(
            [str(BIN / command), "--cfg", "job", "ckpt_path=x.ckpt"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "task_name:" in out.stdout
