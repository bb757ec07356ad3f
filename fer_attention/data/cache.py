"""Decode a file-based dataset once and keep the result as one uint8 ``.npz`` file per dataset + settings.

The cache key is a hash of: the source class and its settings, the resolved root path, the class names,
``image_size``, the (resolved) face crop and a fingerprint of the dataset's files (their number, total
size, newest modification time and a hash of their relative paths). Any change to the files or the
settings makes a new key, so a cache file is never stale; old ones can be deleted at will. A cache hit
lists and stats the files but opens none of them. Files are written to a temporary name and renamed
(``os.replace``), so concurrent runs and interrupted builds never leave a half-written cache.

``data.on_bad_file`` is not part of the key: a cache built with ``skip`` records the files it skipped,
and reading it with ``error`` raises on the first of them as decoding would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fer_attention.data.preprocess import FACE_CROPS, MIN_FACE, check_min_face, decode_item, face_detector
from fer_attention.data.records import FaceArrays
from fer_attention.data.sources.base import BadInputs, FileSource
from fer_attention.errors import DataError
from fer_attention.schema import Choice

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# data.face_crop: a crop of data/preprocess.py, or auto (the one the dataset's layout needs: resolve_face_crop)
FaceCrop = Choice("FaceCrop", [(crop, crop) for crop in ("auto", *FACE_CROPS)])
FACE_CROP_OPTIONS = FaceCrop.values()
# decode in a process pool when there are at least this many files, decoding them is heavy and there is
# more than one CPU (see decode_workers)
POOL_MIN_FILES = 2000
MAX_WORKERS = 4
HEAVY_FILE_BYTES = 16384


def fingerprint(files: Sequence[Path], root: Path) -> dict[str, Any]:
    """Number, total size, newest mtime and a hash of the relative paths of ``files`` (stat only)."""
    total, newest = 0, 0
    names = hashlib.sha256()
    for path in files:
        st = os.stat(path)
        total += st.st_size
        newest = max(newest, st.st_mtime_ns)
        try:
            rel = path.relative_to(root)
        except ValueError:
            rel = path
        names.update(str(rel).encode("utf-8", "surrogateescape") + b"\0")
    return {"count": len(files), "bytes": total, "newest_mtime_ns": newest, "names": names.hexdigest()[:16]}


def cache_key(
    source: FileSource,
    root: Path,
    image_size: int,
    face_crop: str,
    class_names: Sequence[str],
    files_fingerprint: dict[str, Any],
    min_face: float = MIN_FACE,
) -> str:
    """The cache file's key: everything the decoded faces depend on."""
    payload = {
        "version": CACHE_VERSION,
        "source": f"{type(source).__module__}.{type(source).__qualname__}",
        "settings": source.settings,
        "root": str(root),
        "image_size": int(image_size),
        "face_crop": face_crop,
        # a different detector gives different crops
        "detector": face_detector()[0] if face_crop == "haar" else None,
        "class_names": list(class_names),
        "files": files_fingerprint,
    }
    if face_crop == "haar":  # the detector's smallest face moves its boxes
        payload["min_face"] = float(min_face)
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_file(
    cache_dir: str | os.PathLike, source: FileSource, image_size: int, face_crop: str, key: str
) -> Path:
    return Path(cache_dir).expanduser() / f"{source.name}_{image_size}px_{face_crop}_{key}.npz"


def resolve_face_crop(source: FileSource, root: Path, face_crop: str | None) -> str:
    face_crop = "auto" if face_crop is None else str(face_crop)
    if face_crop not in FACE_CROP_OPTIONS:
        raise DataError(f"data.face_crop='{face_crop}' is not one of {', '.join(FACE_CROP_OPTIONS)}")
    if face_crop == "box" and not source.has_boxes:
        raise DataError(f"data.face_crop=box but dataset '{source.name}' has no face boxes; use haar or none")
    return source.default_face_crop(root) if face_crop == "auto" else face_crop


# ----- reading and writing -----
_ARRAYS = ("images", "labels", "subjects", "splits", "sequences", "frames", "sources", "targets")


def save_faces(path: Path, faces: FaceArrays) -> None:
    """Write ``faces`` to ``path`` atomically (a temporary file in the same folder, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(faces, name) for name in _ARRAYS if getattr(faces, name) is not None}
    meta = {
        "class_names": list(faces.class_names),
        "skipped": [list(s) for s in faces.skipped],
        "info": faces.info,
    }
    arrays["meta"] = np.asarray(json.dumps(meta, default=str))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_faces(path: Path) -> FaceArrays:
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in _ARRAYS if name in z.files}
        meta = json.loads(str(z["meta"]))
    return FaceArrays(
        class_names=tuple(meta["class_names"]),
        skipped=[tuple(s) for s in meta["skipped"]],
        info=meta.get("info", {}),
        **arrays,
    )


# ----- decoding -----
def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def decode_workers(files: Sequence[Any], face_crop: str) -> int:
    """Processes to decode with: ``FER_DECODE_WORKERS`` if set; else a pool (up to 4, at most the CPUs)
    for large file sets whose decoding is heavy (Haar detection, or files averaging over 16 KB), one
    process otherwise (small faces such as FER2013's decode faster than a pool can ship them)."""
    env = os.environ.get("FER_DECODE_WORKERS")
    if env:
        return max(1, int(env))
    if len(files) < POOL_MIN_FILES:
        return 1
    if face_crop != "haar":
        sample = files[:: max(1, len(files) // 64)]
        sizes = [os.stat(f).st_size for f in sample if os.path.exists(f)]
        if not sizes or sum(sizes) / len(sizes) < HEAVY_FILE_BYTES:
            return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cpus))


def decode_manifest(
    source: FileSource,
    manifest,
    image_size: int,
    face_crop: str,
    bad: BadInputs,
    class_names: Sequence[str],
    progress: bool = True,
    min_face: float = MIN_FACE,
) -> FaceArrays:
    """Decode, crop and resize every face of ``manifest`` (in a process pool for large file sets); ``haar``
    crops look for faces down to ``min_face`` of the shorter side."""
    n = len(manifest)
    images = np.zeros((n, image_size, image_size), dtype=np.uint8)
    keep = np.ones(n, dtype=bool)
    fallbacks = _decode_into(images, keep, source, manifest, image_size, (face_crop, min_face), bad, progress)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise _no_usable(source, bad)

    def pick(name: str, dtype=None):
        col = manifest.column(name, dtype)
        return None if col is None else col[idx]

    info = _decode_info(source, manifest, face_crop, fallbacks, len(idx))
    return FaceArrays(
        images=images[idx] if len(idx) < n else images,
        labels=np.asarray(manifest.labels, dtype=np.int64)[idx],
        subjects=np.asarray(manifest.subjects, dtype=str)[idx],
        class_names=tuple(class_names),
        splits=pick("splits", str),
        sequences=pick("sequences", str),
        frames=pick("frames", np.int64),
        sources=np.asarray(manifest.sources, dtype=str)[idx],
        # a source with soft targets (FER+'s vote distributions) lists them in its manifest
        targets=pick("targets", np.float32) if hasattr(manifest, "targets") else None,
        skipped=list(bad.items),
        info=info,
    )


def _decode_into(
    images, keep, source: FileSource, manifest, image_size: int, crop: tuple[str, float], bad, progress
) -> int:
    """Decode every item of ``manifest`` into ``images``, clearing ``keep`` for the bad ones, with a
    progress bar; ``crop`` is (face_crop, min_face). Returns how many faces fell back to the whole image."""
    face_crop, min_face = crop
    jobs = [
        (item, image_size, face_crop, box, min_face)
        for item, box in zip(manifest.items, manifest.boxes, strict=True)
    ]
    workers = decode_workers([item for item in manifest.items if not isinstance(item, np.ndarray)], face_crop)
    n = len(manifest)
    fallbacks = 0
    with _progress(progress) as bar:
        task = bar.add_task(f"decoding {source.name}", total=n)
        if workers > 1:
            pool = ProcessPoolExecutor(max_workers=workers)
            try:
                results = pool.map(decode_item, jobs, chunksize=max(16, min(512, n // (workers * 8) or 1)))
                for i, (face, reason, fell_back) in enumerate(results):
                    fallbacks += _store(i, face, reason, fell_back, images, keep, manifest, bad)
                    bar.advance(task)
            except BaseException:
                # a bad file with on_bad_file=error, or Ctrl-C: do not wait for the rest
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        else:
            for i, job in enumerate(jobs):
                fallbacks += _store(i, *decode_item(job), images, keep, manifest, bad)
                bar.advance(task)
    return fallbacks


def _decode_info(source: FileSource, manifest, face_crop: str, fallbacks: int, kept: int) -> dict[str, Any]:
    """The decoded dataset's ``info``: the manifest's, what it excluded and how faces were cropped (a
    warning when some fell back to the whole image)."""
    info = dict(manifest.info)
    info["excluded"] = dict(manifest.excluded)
    info["face_crop"] = face_crop
    if face_crop == "haar":
        info["face_detector"] = face_detector()[0]
    if face_crop in ("haar", "box"):
        info["face_crop_fallbacks"] = int(fallbacks)
        if fallbacks:
            what = "the face detector found no face" if face_crop == "haar" else "no face box"
            log.warning(
                "data %s: %d of %d images used the whole image (%s)", source.name, fallbacks, kept, what
            )
    return info


def _no_usable(source: FileSource, bad: BadInputs) -> DataError:
    where, reason = bad.items[0]
    return DataError(
        f"no usable images for dataset '{source.name}' ({len(bad.items)} bad inputs skipped, first: {where}: {reason})"
    )


def _store(i, face, reason, fell_back, images, keep, manifest, bad) -> int:
    if face is None:
        keep[i] = False
        bad(manifest.sources[i], reason)
        return 0
    images[i] = face
    return int(fell_back)


# ----- the entry point -----
def _cached_faces(path: Path, on_bad_file: str) -> FaceArrays | None:
    """The faces of cache file ``path``; None when there is none or it is unreadable (a damaged cache file
    is rebuilt, never trusted). With ``on_bad_file=error``, the first bad input it recorded is an error."""
    if not path.is_file():
        return None
    try:
        faces = read_faces(path)
    except Exception as err:
        log.warning("cache file %s is unreadable (%s): rebuilding it", path, err)
        return None
    if on_bad_file == "error" and faces.skipped:
        where, reason = faces.skipped[0]
        raise DataError(f"{where}: {reason}")
    faces.info["cache_file"] = str(path)
    faces.info["cache_hit"] = True
    return faces


def load_faces(
    source: FileSource,
    root: str | os.PathLike | None,
    image_size: int,
    class_names: Sequence[str],
    face_crop: str | None = "auto",
    cache_dir: str | os.PathLike | None = None,
    on_bad_file: str = "error",
    progress: bool = True,
    rebuild: bool = False,
    min_face: float = MIN_FACE,
) -> FaceArrays:
    """The decoded dataset: from the cache file when one matches, else decoded and (with ``cache_dir``)
    cached. ``rebuild`` ignores an existing cache file; ``min_face``: the smallest face ``haar`` looks for
    (``data.min_face``)."""
    min_face = check_min_face(min_face, "data.min_face")
    bad = BadInputs(on_bad_file)
    root_path = source.resolve_root(root)
    class_names = source.check_class_names(class_names)
    crop = resolve_face_crop(source, root_path, face_crop)
    path = None
    if cache_dir is not None and str(cache_dir) not in ("", "null", "None"):
        start = time.perf_counter()
        fp = fingerprint(source.files(root_path), root_path)
        if fp["count"] == 0:
            raise source.empty_error(root_path)
        key = cache_key(source, root_path, image_size, crop, class_names, fp, min_face)
        path = cache_file(cache_dir, source, image_size, crop, key)
        faces = None if rebuild else _cached_faces(path, on_bad_file)
        if faces is not None:
            log.info(
                "data %s: %d faces from cache %s in %.2f s",
                source.name,
                len(faces),
                path,
                time.perf_counter() - start,
            )
            return faces
    start = time.perf_counter()
    manifest = source.index(root_path, class_names, bad)
    if len(manifest) == 0:
        if bad.items:
            raise _no_usable(source, bad)
        raise source.empty_error(root_path)
    faces = decode_manifest(source, manifest, image_size, crop, bad, class_names, progress, min_face)
    seconds = time.perf_counter() - start
    faces.info["decode_seconds"] = round(seconds, 2)
    log.info("data %s: decoded %d faces in %.1f s", source.name, len(faces), seconds)
    if path is not None:
        save_faces(path, faces)
        faces.info["cache_file"] = str(path)
        faces.info["cache_hit"] = False
        log.info("data %s: cached in %s", source.name, path)
    return faces
