"""`make gpu-bundle`: the one git-ignored folder the GPU run takes to the lent machine (``carry: ["gpu_bundle"]``).

    gpu_bundle/wheels/          what the machine's image lacks: hydra-core and omegaconf (pure-Python wheels
                                from PyPI) and antlr4-python3-runtime (PyPI has only its sdist: built here)
    gpu_bundle/fer2013.ferpack.xz   FER2013 as one file (experiments/gpu/facepack.py)
    gpu_bundle/manifest.json    the wheels and the data file with their sizes and sha256, the digest of the
                                faces as the suite decodes them here, the commit the bundle was made from

The wheels are checked against the image (experiments/gpu/image.txt: every requirement met, every wheel
installable on CPython 3.12), the unpacked data against the suite's own decoding of FER_ROOT, and what would
travel (the tracked tree, untracked files, the bundle) against the device tool's 64 MiB: over it, the sizes
and exit 1. A rerun keeps the wheels it has and repacks the data only when FER_ROOT's files changed.

    python -m experiments.gpu.bundle --fer-root ../shared/data/fer2013 --out gpu_bundle
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from . import facepack, requirements, transfer

REPO = Path(__file__).resolve().parents[2]
# pyproject.toml admits hydra-core>=1.3.2,<1.4 and omegaconf>=2.3,<2.4: the versions the suite is tested with
DOWNLOADED = ("hydra-core==1.3.8", "omegaconf==2.3.1")
BUILT = ("antlr4-python3-runtime==4.9.3",)  # sdist only on PyPI: `pip wheel` makes a py3-none-any wheel
TARGET_PYTHON = "3.12"
PACK_NAME = "fer2013.ferpack.xz"
MANIFEST = "manifest.json"


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: pip {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def spec_of(wheel: Path) -> str:
    name, version, *_ = parse_wheel_filename(wheel.name)
    return f"{canonicalize_name(name)}=={version}"


def canonical(spec: str) -> str:
    name, _, version = spec.partition("==")
    return f"{canonicalize_name(name)}=={version}"


def fetch_wheels(dest: Path) -> list[Path]:
    """The wheels of DOWNLOADED and BUILT in ``dest``, fetched or built where missing; others removed."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {canonical(s) for s in DOWNLOADED + BUILT}
    for wheel in dest.glob("*.whl"):
        if spec_of(wheel) not in wanted:
            wheel.unlink()
    have = {spec_of(w) for w in dest.glob("*.whl")}
    platforms = [a for p in requirements.PLATFORMS[:4] for a in ("--platform", p)]
    for spec in DOWNLOADED:
        if canonical(spec) not in have:
            pip("download", "--no-deps", "--only-binary=:all:", "--python-version", TARGET_PYTHON,
                "--implementation", "cp", *platforms, "-d", str(dest), spec)  # fmt: skip
    for spec in BUILT:
        if canonical(spec) not in have:
            pip("wheel", "--no-deps", "-w", str(dest), spec)
    return sorted(dest.glob("*.whl"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pack_data(fer_root: Path, out: Path, old: dict | None, cache_dir: str | None) -> dict:
    """FER2013 packed into ``out`` and checked (unpacked and decoded by the suite against ``fer_root``);
    the earlier pack is kept when ``fer_root``'s files are the same (``old``: its manifest entry)."""
    from fer_attention.data.cache import fingerprint

    target = out / PACK_NAME
    fp = fingerprint(facepack.dataset_files(fer_root), fer_root)
    if old and old.get("fingerprint") == fp and target.is_file() and sha256(target) == old.get("file_sha256"):
        print(f"data: {target} is up to date ({old['files']:,d} files of {fer_root})")
        return old
    print(f"data: packing {fp['count']:,d} files of {fer_root} (xz -9e, about a minute)")
    info = facepack.pack(fer_root, target)
    print("data: unpacking it and decoding both copies with the suite's loader")
    info["digest"] = facepack.check_unpacked(target, fer_root, cache_dir)
    info.update(file=PACK_NAME, file_sha256=sha256(target), fingerprint=fp, fer_root=str(fer_root))
    return info


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "git_commit": git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(git("status", "--porcelain")),
    }


def build(fer_root: Path, out: Path, cache_dir: str | None) -> int:
    if not fer_root.is_dir():
        print(f"error: FER_ROOT={fer_root} is not a folder (FER2013's train/ and test/ image folders)")
        return 2
    manifest_path = out / MANIFEST
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    wheels = fetch_wheels(out / "wheels")
    problems = requirements.check(wheels, requirements.IMAGE, project=True, tags=True, python=TARGET_PYTHON)
    for line in problems:
        print(f"error: bundle: {line}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"wheels: {', '.join(w.name for w in wheels)}: met by the image list and installable on CPython 3.12"
    )
    data = pack_data(fer_root, out, old.get("data"), cache_dir)
    manifest = {
        "made_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **git_state(),
        "target_python": TARGET_PYTHON,
        "wheels": [{"file": w.name, "bytes": w.stat().st_size, "sha256": sha256(w)} for w in wheels],
        "data": data,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    rows = transfer.travelling(
        REPO, [out.resolve().relative_to(REPO) if out.resolve().is_relative_to(REPO) else out]
    )
    lines, fits = transfer.size_report(rows)
    wheel_bytes = sum(w.stat().st_size for w in wheels)
    lines.insert(
        -1, f"    {'of which wheels':<30} {len(wheels):>6,d} files {wheel_bytes / transfer.MIB:9.2f} MiB"
    )
    lines.insert(
        -1,
        f"    {'of which ' + PACK_NAME:<30} {data['files']:>6,d} faces {data['packed_bytes'] / transfer.MIB:9.2f} MiB",
    )
    print("\n".join(lines))
    if not fits:
        print(
            "error: the bundle and the tree are over the device tool's 64 MiB; see docs/scaling.md#what-travels"
        )
        return 1
    print(f"gpu bundle: {out}/ ready; run `make gpu-dryrun`, then the device command in docs/scaling.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu.bundle", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--fer-root", type=Path, required=True, help="FER2013's image folders (FER_ROOT)")
    parser.add_argument("--out", type=Path, default=REPO / "gpu_bundle")
    parser.add_argument("--cache-dir", default=str(REPO / "logs" / "cache"), help="the suite's decode cache")
    args = parser.parse_args(argv)
    return build(args.fer_root, args.out, args.cache_dir)


if __name__ == "__main__":
    sys.exit(main())
