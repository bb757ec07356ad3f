"""The bundle's wheels against an environment, as `pip check` would, restricted to what the bundle brings.

Every requirement of every wheel (Requires-Dist; extras left out, markers evaluated for the target Python
on Linux x86-64) must be met by another wheel of the bundle or by a package the environment has, at a
version the requirement admits; with ``--project`` the project's own dependencies (pyproject.toml) too, but
those the GPU run does without (albumentations: augment=torch; wandb: logger=csv). The environment is
either this interpreter's installed packages (after the bundle went in: the dry run, the GPU machine) or
experiments/gpu/image.txt (the lent machine's packages, checked from here). ``--tags`` also checks that
every wheel installs on the target CPython (3.12, manylinux x86-64).

    python -m experiments.gpu.requirements gpu_bundle/wheels                       # against this Python
    python -m experiments.gpu.requirements gpu_bundle/wheels --image experiments/gpu/image.txt --project --tags
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.metadata
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
IMAGE = Path(__file__).with_name("image.txt")
# the project's dependencies the GPU run does without (experiments/gpu.sh: augment=torch, logger=csv)
NOT_ON_GPU = ("albumentations", "wandb")
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)] + ["manylinux2014_x86_64", "linux_x86_64"]


def wheel_metadata(path: Path) -> tuple[str, str, list[Requirement]]:
    """``(name, version, requirements)`` of a wheel, from its METADATA."""
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(name).decode())
    return meta["Name"], meta["Version"], [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def target_env(python: str) -> dict[str, str]:
    """Marker variables of CPython ``python`` on Linux x86-64 (``extra`` empty: no extras wanted)."""
    major_minor = ".".join(python.split(".")[:2])
    return {
        "python_version": major_minor,
        "python_full_version": python if python.count(".") == 2 else f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "extra": "",
    }


def read_image(path: Path = IMAGE) -> dict[str, str | None]:
    """experiments/gpu/image.txt: package name -> version (None where only the name is known)."""
    out: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version or None
    return out


def installed(names: list[str]) -> dict[str, str | None]:
    """The version this interpreter imports of each of ``names`` (the first on sys.path), if installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[canonicalize_name(name)] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def unmet(
    who: str, reqs: list[Requirement], have: dict[str, str | None], env: dict[str, str], where: str
) -> list[str]:
    """One line per requirement of ``who`` that ``have`` (name -> version or None) does not meet."""
    problems = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name not in have:
            problems.append(f"{who} needs {req}: no {req.name} in the bundle or {where}")
        elif have[name] is not None and not req.specifier.contains(Version(have[name]), prereleases=True):
            problems.append(f"{who} needs {req}: {where} has {req.name} {have[name]}")
    return problems


def project_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[Requirement]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [r for r in map(Requirement, deps) if canonicalize_name(r.name) not in NOT_ON_GPU]


def tag_problems(wheels: list[Path], python: str) -> list[str]:
    """Wheels that would not install on CPython ``python`` for Linux x86-64."""
    version = tuple(int(p) for p in python.split(".")[:2])
    abi = f"cp{version[0]}{version[1]}"
    ok = set(cpython_tags(version, [abi, "abi3", "none"], PLATFORMS))
    ok |= set(compatible_tags(version, abi, PLATFORMS))
    return [
        f"{w.name} does not install on CPython {python} (linux x86-64)"
        for w in wheels
        if not set(parse_wheel_filename(w.name)[3]) & ok
    ]


def check(
    wheels: list[Path], image: Path | None, project: bool, tags: bool, python: str | None = None
) -> list[str]:
    """Every problem, one line each, naming the package (empty: the bundle fits the environment)."""
    metas = {w: wheel_metadata(w) for w in wheels}
    bundle = {canonicalize_name(n): v for n, v, _ in metas.values()}
    if image is not None:
        base, where = read_image(image), f"the image ({image.name})"
        python = python or base.pop("python", None) or "3.12"
    else:
        python = python or ".".join(map(str, sys.version_info[:3]))
        names = {r.name for _, _, reqs in metas.values() for r in reqs}
        names |= {r.name for r in project_requirements()} if project else set()
        base, where = installed(sorted(names | set(bundle))), "this Python"
        # the bundle as installed (pip --target, first on PYTHONPATH) must be what this Python imports
        shadowed = [
            f"{n} {v} is in the bundle but this Python imports {base.get(n) or 'none'} "
            "(install the bundle and put its folder first on PYTHONPATH)"
            for n, v in bundle.items()
            if base.get(n) != v
        ]
        if shadowed:
            return shadowed
    have = {**base, **bundle}
    env = target_env(python)
    problems = [] if not tags else tag_problems(wheels, python)
    for path, (name, version, reqs) in metas.items():
        problems += unmet(f"{name} {version} ({path.name})", reqs, have, env, where)
    if project:
        problems += unmet("fer-attention (pyproject.toml)", project_requirements(), have, env, where)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu.requirements", description=__doc__.split("\n")[0]
    )
    parser.add_argument("wheels", type=Path, help="the bundle's wheel folder")
    parser.add_argument(
        "--image", type=Path, nargs="?", const=IMAGE, default=None, help="check against image.txt"
    )
    parser.add_argument(
        "--project", action="store_true", help="the project's dependencies too (but NOT_ON_GPU)"
    )
    parser.add_argument("--tags", action="store_true", help="each wheel installs on the target CPython")
    parser.add_argument(
        "--python", default=None, help="the target Python (default: image.txt's, or this one)"
    )
    args = parser.parse_args(argv)
    wheels = sorted(args.wheels.glob("*.whl"))
    if not wheels:
        print(f"error: no wheels in {args.wheels} (make gpu-bundle)", file=sys.stderr)
        return 1
    problems = check(wheels, args.image, args.project, args.tags, args.python)
    for line in problems:
        print(f"error: bundle: {line}", file=sys.stderr)
    if not problems:
        against = f"the image list {args.image}" if args.image else f"this Python ({sys.executable})"
        print(
            f"bundle requirements: {len(wheels)} wheels{' and the project' if args.project else ''} met by {against}"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
