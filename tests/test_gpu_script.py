"""The GPU run (experiments/gpu.sh, experiments/gpu/): its command lines (DRY_RUN=1), its stop without a GPU
before anything is installed or unpacked, the epoch plan, the bundle's checks (wheel requirements and tags,
FER2013 packed and unpacked byte for byte and decoded as the suite decodes it, the device tool's limits on
what travels and what comes back), and `make gpu-dryrun` end to end (slow)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.gpu import facepack, plan, requirements, transfer

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "gpu.sh"
FER2013 = REPO.parent / "shared" / "data" / "fer2013"
# the script's own settings: the tests set the ones they mean, none comes from the calling shell
SCRIPT_VARS = ("OUT", "WORK", "BUNDLE", "FER_ROOT", "PYTHON", "EPOCHS", "TRAIN_ARGS", "TINY", "DRY_RUN")


def run_script(
    tmp_path: Path, timeout: float, path: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    base.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHON=sys.executable)
    if path is not None:
        base["PATH"] = path
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def words_of(lines: list[str], marker: str) -> list[str]:
    (line,) = [line for line in lines if marker in line]
    return shlex.split(line)


def test_dry_run_prints_the_gpu_commands_and_writes_nothing(tmp_path):
    out, work, bundle = tmp_path / "out", tmp_path / "work", tmp_path / "bundle"
    done = run_script(tmp_path, 30, DRY_RUN="1", OUT=str(out), WORK=str(work), BUNDLE=str(bundle))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "nvidia-smi" in lines[1] and "exit 3" in lines[1]  # the GPU check comes first
    pip = words_of(lines, "pip install")
    assert {"--no-index", "--no-deps", "--target", f"{work}/site"} <= set(pip)
    probe, sweep = words_of(lines, "ablation=full "), words_of(lines, "ablation=full,vgg16")
    for word in (
        "data=fer2013",
        "augment=torch",
        "model.net.backbone.width=1.0",
        "model.channels_last=true",
        "trainer=gpu",
        "trainer.accelerator=gpu",
        "trainer.precision=bf16-mixed",
        "data.pin_memory=true",
        "data.num_workers=8",
        "seed=0",
        "logger=csv",
        "~callbacks.progress_bar",
        "data.root=../shared/data/fer2013",  # no bundle data here: FER_ROOT's default
    ):
        assert word in probe and word in sweep, word
    assert (
        "trainer.max_epochs=1" in probe and "test=false" in probe and f"hydra.run.dir={work}/probe" in probe
    )
    assert "trainer.max_epochs=EPOCHS" in sweep and f"hydra.sweep.dir={work}/sweep" in sweep
    assert not any("limit_" in word for word in probe + sweep)
    report = words_of(lines, "--publish")
    assert report[-4:] == [f"{work}/sweep", "--out", f"{work}/result", "--publish"]
    assert "experiments.gpu.bench" in words_of(lines, "experiments.gpu.bench")
    assert not out.exists() and not work.exists()
    # the environment reaches the command lines: a fixed EPOCHS needs no probe, FER_ROOT is the data
    done = run_script(
        tmp_path, 30, DRY_RUN="1", OUT=str(out), EPOCHS="3", FER_ROOT="/data/fer", TRAIN_ARGS="x=1"
    )
    sweep = words_of(done.stdout.splitlines(), "ablation=full,vgg16")
    assert {"trainer.max_epochs=3", "data.root=/data/fer", "x=1"} <= set(sweep)
    assert not [line for line in done.stdout.splitlines() if "ablation=full " in line]


def fake_bundle(tmp_path: Path) -> Path:
    """A bundle with a face pack of two files and a manifest (enough for the script to want to unpack it)."""
    data = tmp_path / "faces"
    (data / "train" / "happy").mkdir(parents=True)
    (data / "train" / "happy" / "Training_1.jpg").write_bytes(b"x")
    bundle = tmp_path / "bundle"
    facepack.pack(data, bundle / "fer2013.ferpack.xz")
    (bundle / "manifest.json").write_text(
        json.dumps({"git_commit": "abc", "git_dirty": False, "data": {"digest": "0"}})
    )
    return bundle


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
@pytest.mark.parametrize("smi", ["missing", "present"])
def test_without_a_gpu_it_stops_first_with_one_line_and_unpacks_nothing(tmp_path, smi):
    bundle = fake_bundle(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "date", "cat", "rm", "mkdir", "tee", "timeout", "tar", "python3", "env"):
        found = subprocess.run(
            ["bash", "-c", f"command -v {tool}"], capture_output=True, text=True
        ).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    if (
        smi == "present"
    ):  # a driver's tool that answers, and a torch that sees no CUDA device (this machine's)
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    out, work = tmp_path / "out", tmp_path / "work"
    done = run_script(tmp_path, 120, path=str(bin_dir), OUT=str(out), WORK=str(work), BUNDLE=str(bundle))
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    why = "nvidia-smi not found" if smi == "missing" else "torch.cuda.is_available() is False"
    assert done.stderr.startswith("error: no GPU visible (") and why in done.stderr
    assert not out.exists() and not work.exists()


def test_without_fer_root_or_a_bundle_one_line_names_fer_root(tmp_path):
    done = run_script(
        tmp_path,
        60,
        TINY="1",
        OUT=str(tmp_path / "out"),
        BUNDLE=str(tmp_path / "none"),
        FER_ROOT=str(tmp_path / "no"),
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: FER_ROOT={tmp_path / 'no'} is not a folder")
    assert not (tmp_path / "out").exists()


def test_make_gpu_bundle_without_fer_root_is_one_line_and_does_nothing_else():
    done = subprocess.run(
        ["make", "-s", "gpu-bundle", "FER_ROOT=/nonexistent/fer2013"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and done.stdout == ""
    assert (
        len(done.stderr.splitlines()) == 1 and "FER_ROOT=/nonexistent/fer2013 is not a folder" in done.stderr
    )


# ---- the plan --------------------------------------------------------------------------------------------
def test_plan_fits_the_epochs_of_both_jobs_before_the_deadline():
    # 480 - 60 - 75 = 345 s left; (345 - 2 x 20) / (2 x 15) = 10.17 -> 10 epochs, 2 x (20 + 10 x 15) = 340 s
    epochs, limit, why = plan.plan(deadline=480, elapsed=60, reserve=75, epoch=15, startup=20)
    assert (epochs, limit) == (10, 1.0) and "10.17 epochs" in why
    assert plan.plan(480, 60, 75, epoch=1, startup=5, max_epochs=30)[:2] == (30, 1.0)
    # not one epoch of each: one epoch on the share of the batches that fits, at least 5%
    epochs, limit, why = plan.plan(480, 60, 75, epoch=400, startup=20)
    assert (epochs, limit) == (1, round(305 / 800, 3)) and "of the training batches" in why
    assert plan.plan(480, 470, 75, epoch=400, startup=20)[:2] == (1, 0.05)


def test_plan_reads_the_first_epoch_from_the_probe_csv(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text(
        "epoch,step,time/epoch_s,val/acc\n,0,,\n0,449,12.5,0.4\n1,898,9.0,0.5\n"
    )
    assert plan.first_epoch_seconds(tmp_path) == 12.5
    with pytest.raises(SystemExit, match="probe"):
        plan.first_epoch_seconds(tmp_path / "missing")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.gpu.plan", "--probe", str(tmp_path), "--probe-wall", "32.5",
         "--elapsed", "60", "--deadline", "480", "--reserve", "75"],  # fmt: skip
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    epochs, limit, why = done.stdout.split(" ", 2)
    # (345 - 2 x 20) / (2 x 12.5) = 12.2
    assert (epochs, limit) == ("12", "1.0") and "first epoch 12.5 s" in why, done.stderr


# ---- the bundle's wheels ---------------------------------------------------------------------------------
def make_wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any") -> Path:
    path = folder / f"{name}-{version}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_wheels_are_checked_against_the_image_and_name_the_package(tmp_path):
    ok = make_wheel(
        tmp_path, "goodpkg", "1.0", ["packaging", "PyYAML>=5.1", "torch>=2.1", 'foo; extra == "x"']
    )
    assert requirements.check([ok], requirements.IMAGE, project=False, tags=True) == []
    newer = make_wheel(tmp_path, "needsnewtorch", "2.0", ["torch>=2.12", 'bar; python_version < "3.8"'])
    problems = requirements.check([ok, newer], requirements.IMAGE, project=False, tags=True)
    assert problems == [
        "needsnewtorch 2.0 (needsnewtorch-2.0-py3-none-any.whl) needs torch>=2.12: the image (image.txt) has torch 2.11.0"
    ]
    missing = make_wheel(tmp_path, "needsmissing", "1.0", ["albumentations>=1.4"])
    (line,) = requirements.check([missing], requirements.IMAGE, project=False, tags=False)
    assert "needs albumentations>=1.4: no albumentations in the bundle" in line
    # another wheel of the bundle meets a requirement; a wheel for another Python is refused
    bundle = [
        make_wheel(tmp_path, "uses", "1.0", ["needsmissing==1.0"]),
        missing,
        make_wheel(tmp_path, "albumentations", "2.0", []),
    ]
    assert requirements.check(bundle, requirements.IMAGE, project=False, tags=False) == []
    cp313 = make_wheel(tmp_path, "native", "1.0", [], tag="cp313-cp313-manylinux_2_28_x86_64")
    assert requirements.check([cp313], requirements.IMAGE, False, True) == [
        "native-1.0-cp313-cp313-manylinux_2_28_x86_64.whl does not install on CPython 3.12.3 (linux x86-64)"
    ]


def test_the_project_needs_nothing_on_the_gpu_but_the_image_and_the_bundle():
    # hydra-core and omegaconf come with the bundle; albumentations and wandb are left out (NOT_ON_GPU)
    have = {**requirements.read_image(), "hydra-core": "1.3.8", "omegaconf": "2.3.1"}
    env = requirements.target_env("3.12.3")
    assert (
        requirements.unmet("fer-attention", requirements.project_requirements(), have, env, "the image") == []
    )
    assert {"albumentations", "wandb"} & {r.name for r in requirements.project_requirements()} == set()
    del have["omegaconf"]
    (line,) = requirements.unmet("fer-attention", requirements.project_requirements(), have, env, "the image")
    assert line.startswith("fer-attention needs omegaconf")


def test_against_this_python_the_bundle_must_be_what_is_imported(tmp_path):
    shadow = make_wheel(tmp_path, "pytest", "0.0.1", [])
    (line,) = requirements.check([shadow], None, project=False, tags=False)
    assert "pytest 0.0.1 is in the bundle but this Python imports" in line
    newer = make_wheel(tmp_path, "numpy", np.__version__, ["torch>=99"])
    (line,) = requirements.check([newer], None, project=False, tags=False)
    assert "needs torch>=99: this Python has torch" in line


# ---- FER2013 packed --------------------------------------------------------------------------------------
def tiny_fer2013(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, cls, name in [
        ("train", "happy", "Training_1.jpg"),
        ("train", "angry", "Training_2.jpg"),
        ("test", "happy", "PublicTest_3.jpg"),
        ("test", "sad", "PrivateTest_4.jpg"),
    ]:
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(
            root / split / cls / name, quality=75
        )
    return root


def test_a_pack_unpacks_byte_for_byte_and_decodes_as_the_suite_decodes_the_original(tmp_path):
    root = tiny_fer2013(tmp_path / "fer2013")
    (root / ".hidden").write_text("not packed")
    info = facepack.pack(root, tmp_path / "p.xz")
    assert info["files"] == 4 and info["bytes"] == sum(p.stat().st_size for p in root.rglob("*.jpg"))
    facepack.unpack(tmp_path / "p.xz", tmp_path / "back")
    for path in root.rglob("*.jpg"):
        assert (tmp_path / "back" / path.relative_to(root)).read_bytes() == path.read_bytes()
    assert not (tmp_path / "back" / ".hidden").exists()
    digest = facepack.check_unpacked(tmp_path / "p.xz", root, cache_dir=None)
    assert digest == facepack.digest(facepack.decode(root.resolve()), root)
    assert facepack.main(["check", str(tmp_path / "back"), "--digest", digest]) == 0
    assert facepack.main(["check", str(tmp_path / "back"), "--digest", "0" * 64]) == 1
    # a face that decodes to other pixels is named
    other = facepack.decode(root.resolve())
    other.images[0, 0, 0] ^= 1
    assert facepack.differences(facepack.decode(root.resolve()), root, other, root) == [
        "pixels of 1 faces differ"
    ]


def test_a_damaged_pack_is_refused(tmp_path):
    root = tiny_fer2013(tmp_path / "fer2013")
    facepack.pack(root, tmp_path / "p.xz")
    index, payload = facepack.read_pack(tmp_path / "p.xz")
    blob = bytearray(payload)
    blob[10] ^= 0xFF
    head = json.dumps(index).encode()
    import lzma

    (tmp_path / "bad.xz").write_bytes(
        lzma.compress(facepack.MAGIC + len(head).to_bytes(8, "little") + head + blob)
    )
    with pytest.raises(SystemExit, match="sha256 differs"):
        facepack.unpack(tmp_path / "bad.xz", tmp_path / "out")
    (tmp_path / "notapack.xz").write_bytes(lzma.compress(b"hello"))
    with pytest.raises(SystemExit, match="not a face pack"):
        facepack.read_pack(tmp_path / "notapack.xz")


# ---- the device tool's limits ----------------------------------------------------------------------------
def test_what_travels_is_measured_against_64_mib(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "a").write_bytes(b"x" * 1000)
    rows = transfer.travelling(REPO, [tmp_path / "bundle"])
    assert [r[0] for r in rows[:2]] == ["tracked files", "untracked, not ignored"]
    assert rows[2][1:] == (1, 1000) and rows[0][1] > 100
    lines, fits = transfer.size_report(rows)
    assert fits and "fits" in lines[-1]
    lines, fits = transfer.size_report([("x", 1, 65 * transfer.MIB)])
    assert not fits and "1.00 MiB too many" in lines[-1]


def test_what_comes_back_from_out_is_checked(tmp_path):
    out = tmp_path / "out"
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "b" / "ok.txt").write_text("x")
    assert transfer.out_problems(out) == []
    (out / "a" / "b" / "c").mkdir()
    (out / "a" / "b" / "c" / "deep.txt").write_text("x")
    (out / "bad name.txt").write_text("x")
    with open(out / "big.bin", "wb") as fh:
        fh.truncate(17 * transfer.MIB)
    for i in range(6):
        (out / f"f{i}").write_text("x")
    problems = "\n".join(transfer.out_problems(out))
    for needle in (
        "more than 2 folders down",
        "bad name.txt: a name",
        "big.bin: 17.0 MiB",
        "10 files, over 8",
    ):
        assert needle in problems, problems


# ---- the dry run -----------------------------------------------------------------------------------------
@pytest.mark.slow  # the venv the first time (some minutes: torch and its CUDA libraries), then about 3 minutes
@pytest.mark.skipif(not FER2013.is_dir(), reason=f"needs FER2013 in {FER2013} (../shared/data)")
def test_make_gpu_dryrun_installs_the_bundle_reads_fer2013_and_packs_what_comes_back(tmp_path):
    # -o install: this test runs in the suite's installed .venv; the venv of the dry run is shared between runs
    env = {**os.environ, "DRY": str(tmp_path / "dry"), "VENV": str(REPO / "logs" / "gpu_dryrun" / "venv")}
    done = subprocess.run(
        ["make", "-o", "install", "gpu-dryrun"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    assert "gpu-dryrun: ok" in done.stdout
    assert (
        "pixels, labels, splits and face ids equal the packing machine's"
        in (tmp_path / "dry" / "run.log").read_text()
    )
    run = (tmp_path / "dry" / "out" / "run.txt").read_text()
    for name in ("install", "requirements", "imports", "unpack", "data", "probe", "sweep", "report", "bench"):
        assert f"step {name}: exit 0, " in run, run
    assert "sweep: 2 of 2 jobs finished" in run and "exit 0" in run.splitlines()[-2]
    assert sorted(p.name for p in (tmp_path / "dry" / "out").iterdir()) == [
        "bench.txt", "env.txt", "fer2013_gpu.tar.gz", "run.txt"
    ]  # fmt: skip
    assert "no GPU visible" in done.stdout
