"""FER2013 packed for travel as one file, and unpacked back, byte for byte.

The pack is one xz stream: ``FERPACK1``, the length of a JSON index (every file's path relative to the
dataset root and its size, the payload's sha256), the index, then the files' bytes one after another. Of
the options measured on the 35,887 Kaggle JPEGs (``python -m experiments.gpu.facepack measure``; figures in
docs/scaling.md) it is the smallest: the JPEG bytes are already smaller than any lossless coding of the
decoded pixels, and xz takes out the 328 header bytes every one of them repeats. Unpacked, the files are
the originals, so the suite reads them as it reads ../shared/data/fer2013 (the same face ids);
``check`` decodes them with the suite's own loader and compares the pixels, labels, splits and face ids
with a digest taken where the pack was made.

    python -m experiments.gpu.facepack pack --root ../shared/data/fer2013 --out gpu_bundle/fer2013.ferpack.xz
    python -m experiments.gpu.facepack unpack gpu_bundle/fer2013.ferpack.xz /tmp/fer2013
    python -m experiments.gpu.facepack check /tmp/fer2013 --digest <hex> --cache-dir logs/cache
    python -m experiments.gpu.facepack measure --root ../shared/data/fer2013
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"FERPACK1"
XZ_PRESET = 9 | lzma.PRESET_EXTREME
FER_CONFIG = "data/fer2013.yaml"


def dataset_files(root: Path) -> list[Path]:
    """Every file under ``root`` but hidden ones, sorted by path (what the pack holds)."""
    from fer_attention.data.sources.base import walk_files

    return walk_files(root, images_only=False)


def pack(root: Path, out: Path) -> dict[str, Any]:
    """Write the files under ``root`` to ``out`` (atomically); returns the pack's index and sizes."""
    files = dataset_files(root)
    if not files:
        raise SystemExit(f"error: FER_ROOT={root} holds no files")
    payload = bytearray()
    entries = []
    for path in files:
        data = path.read_bytes()
        entries.append([path.relative_to(root).as_posix(), len(data)])
        payload += data
    index = {"format": 1, "files": entries, "sha256": hashlib.sha256(payload).hexdigest()}
    head = json.dumps(index, separators=(",", ":")).encode()
    packed = lzma.compress(MAGIC + len(head).to_bytes(8, "little") + head + bytes(payload), preset=XZ_PRESET)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(packed)
    os.replace(tmp, out)
    return {
        "files": len(entries),
        "bytes": len(payload),
        "packed_bytes": len(packed),
        "sha256": index["sha256"],
    }


def read_pack(path: Path) -> tuple[dict[str, Any], memoryview]:
    """The index and the payload of a pack (checked against the index's sha256)."""
    blob = lzma.decompress(path.read_bytes())
    if not blob.startswith(MAGIC):
        raise SystemExit(f"error: {path} is not a face pack (no {MAGIC.decode()} header)")
    n = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    index = json.loads(blob[start : start + n])
    payload = memoryview(blob)[start + n :]
    if hashlib.sha256(payload).hexdigest() != index["sha256"]:
        raise SystemExit(f"error: {path}: payload sha256 differs from its index (damaged copy)")
    return index, payload


def unpack(path: Path, dest: Path) -> dict[str, Any]:
    """Write a pack's files under ``dest`` (created; files there are overwritten)."""
    index, payload = read_pack(path)
    offset = 0
    made: set[Path] = set()
    for rel, size in index["files"]:
        target = dest / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(payload[offset : offset + size])
        offset += size
    return {"files": len(index["files"]), "bytes": offset, "sha256": index["sha256"]}


def decode(root: Path, cache_dir: str | None = None):
    """FER2013 under ``root`` as the suite's loader gives it to training (conf/data/fer2013.yaml's source
    and settings; ``cache_dir``: the training's cache folder, so this decode is the one training reads)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from fer_attention.config import config_dir
    from fer_attention.data.cache import load_faces

    cfg = OmegaConf.load(Path(config_dir()) / FER_CONFIG)
    return load_faces(
        instantiate(cfg.source),
        root,
        int(cfg.image_size),
        list(cfg.class_names),
        face_crop="auto",
        cache_dir=cache_dir,
        progress=False,
    )


def face_ids(faces, root: Path) -> list[str]:
    base = str(Path(root).resolve())
    return [os.path.relpath(str(s), base) for s in faces.sources]


def digest(faces, root: Path) -> str:
    """sha256 of what training reads: pixels, labels, splits and face ids, in the loader's order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(faces.images).tobytes())
    h.update(np.asarray(faces.labels, dtype=np.int64).tobytes())
    h.update("\n".join(map(str, faces.splits)).encode())
    h.update("\n".join(face_ids(faces, root)).encode())
    return h.hexdigest()


def differences(a, a_root: Path, b, b_root: Path) -> list[str]:
    """What differs between two decodes of FER2013 (empty: the same faces, pixel for pixel)."""
    if len(a) != len(b):
        return [f"{len(a)} faces against {len(b)}"]
    out = []
    if face_ids(a, a_root) != face_ids(b, b_root):
        out.append("face ids (file names) differ")
    if not np.array_equal(a.labels, b.labels) or not np.array_equal(a.splits, b.splits):
        out.append("labels or splits differ")
    changed = int(np.any(a.images != b.images, axis=(1, 2)).sum())
    if changed:
        out.append(f"pixels of {changed} faces differ")
    return out


def check_unpacked(pack_file: Path, reference: Path, cache_dir: str | None) -> str:
    """Unpack into a temporary folder, decode both copies with the suite's loader (``reference`` through
    ``cache_dir``) and return the digest; SystemExit naming what differs."""
    with tempfile.TemporaryDirectory(prefix="ferpack.") as tmp:
        root = Path(tmp) / "fer2013"
        unpack(pack_file, root)
        ours, theirs = decode(root), decode(reference.resolve(), cache_dir)
        wrong = differences(ours, root, theirs, reference)
        if wrong:
            raise SystemExit(
                f"error: {pack_file} unpacked does not decode as {reference}: {'; '.join(wrong)}"
            )
        return digest(ours, root)


def measure(root: Path) -> dict[str, int]:
    """Bytes of each way of packing FER2013 (the JPEGs; the decoded uint8 faces; PNG per face)."""
    from PIL import Image

    files = dataset_files(root)
    jpegs = b"".join(p.read_bytes() for p in files)
    faces = decode(root.resolve())
    raw = np.ascontiguousarray(faces.images).tobytes()
    npz = io.BytesIO()
    np.savez_compressed(npz, images=faces.images)
    png = 0
    for face in faces.images:
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, format="PNG", optimize=True)
        png += len(buf.getvalue())
    return {
        "jpeg files, concatenated": len(jpegs),
        "jpeg files, zlib 9": len(zlib.compress(jpegs, 9)),
        "jpeg files, xz 9e (chosen)": len(lzma.compress(jpegs, preset=XZ_PRESET)),
        "decoded uint8, raw": len(raw),
        "decoded uint8, np.savez_compressed": len(npz.getvalue()),
        "decoded uint8, zlib 9": len(zlib.compress(raw, 9)),
        "decoded uint8, xz 9e": len(lzma.compress(raw, preset=XZ_PRESET)),
        "PNG per face (optimize), summed": png,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu.facepack", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack the files under --root into --out")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("unpack", help="unpack a pack into a folder")
    p.add_argument("pack", type=Path)
    p.add_argument("dest", type=Path)
    p = sub.add_parser("check", help="decode a folder with the suite's loader (and compare with --digest)")
    p.add_argument("root", type=Path)
    p.add_argument("--digest", default=None, help="the packing machine's (manifest.json: data.digest)")
    p.add_argument("--cache-dir", default=None)
    p = sub.add_parser("measure", help="bytes of each packing option")
    p.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "pack":
        print(json.dumps(pack(args.root, args.out)))
    elif args.cmd == "unpack":
        info = unpack(args.pack, args.dest)
        print(f"unpacked {info['files']} files, {info['bytes']} bytes, sha256 ok, into {args.dest}")
    elif args.cmd == "check":
        faces = decode(args.root.resolve(), args.cache_dir)
        got = digest(faces, args.root)
        line = f"data check: {len(faces)} faces decoded by the suite's loader, digest {got[:16]}"
        if args.digest is None:
            print(f"{line} (no digest to compare with)")
            return 0
        same = got == args.digest
        print(
            f"{line}: pixels, labels, splits and face ids {'equal' if same else 'DIFFER from'} the packing machine's"
        )
        return 0 if same else 1
    else:
        for name, size in measure(args.root).items():
            print(f"{size:>12,d} B  {size / 2**20:7.2f} MiB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
