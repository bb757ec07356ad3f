#!/usr/bin/env bash
# experiments/gpu/dryrun.sh (`make gpu-dryrun`, after `make gpu-bundle`): the GPU run end to end on this CPU,
# in a Python that holds only what the lent machine's image has, so that the real run gets past installing
# the bundle and reading the data on its first try.
#   1. a virtualenv of its own, $VENV (not .venv): torch 2.14.1 and torchvision 0.29.1 (from this machine's
#      disk; the image has torch 2.11 / torchvision 0.26 on Python 3.12, the dry run what installs here, on
#      Python 3.11) and, from PyPI, what the image has of the rest: IMAGE_PACKAGES below. Reused while that list
#      is unchanged (FRESH=1 makes it anew); checked to have none of hydra, omegaconf, antlr4, albumentations
#      or wandb, whatever was done to it since.
#   2. the bundle's wheels against the image's packages (experiments/gpu/image.txt: a wheel that needs a newer
#      torch than the image's fails here, naming it), the project's dependencies, and CPython 3.12 tags.
#   3. experiments/gpu.sh without TINY: no GPU here, so it must stop at once with one line, exit 3, and have
#      installed and unpacked nothing.
#   4. TINY=1 experiments/gpu.sh with that Python: the bundle installed with pip --no-index --no-deps --target,
#      FER2013 unpacked from the bundle and decoded by the suite's loader (pixels compared with the packing
#      machine's), the probe, the plan, full and vgg16 (width 0.0625, 2 batches an epoch, the whole test
#      split), fer-report --publish, the bench, the pack.
#   5. what the run left in $OUT against the device tool's limits (8 files, 16 MiB each, 2 folders down), and
#      that the tarball holds the table with both rows and both jobs' per-face predictions.
# Environment: DRY (logs/gpu_dryrun), VENV ($DRY/venv), BUNDLE (gpu_bundle), FRESH (0), VENV_PYTHON (python3).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$PWD
DRY=${DRY:-logs/gpu_dryrun}
case $DRY in /*) ;; *) DRY=$REPO/$DRY ;; esac
BUNDLE=${BUNDLE:-gpu_bundle}
VENV=${VENV:-$DRY/venv}
# opencv below 5, as pyproject.toml asks (PyPI's newest is 5.x; image.txt does not know the image's version)
IMAGE_PACKAGES="torch==2.14.1 torchvision==0.29.1 lightning torchmetrics scikit-image scikit-learn scipy numpy
matplotlib pandas pyyaml rich tensorboard opencv-python-headless<5"
ABSENT="hydra omegaconf antlr4 albumentations wandb"
unset PYTHONPATH FER_ROOT VIRTUAL_ENV

if [ ! -f "$BUNDLE/manifest.json" ]; then
    echo "error: BUNDLE=$BUNDLE has no manifest.json: run make gpu-bundle first" >&2
    exit 2
fi

# ---- 1. the image's Python --------------------------------------------------------------------------------
STAMP=$VENV/.image-packages
if [ "${FRESH:-0}" = 1 ] || [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$IMAGE_PACKAGES" ]; then
    echo "== [venv] $VENV: $IMAGE_PACKAGES (some minutes: torch with its CUDA libraries)" >&2
    rm -rf "$VENV"
    "${VENV_PYTHON:-python3}" -m venv "$VENV"
    # shellcheck disable=SC2086  # the list is split into words on purpose
    "$VENV/bin/python" -m pip install -q $IMAGE_PACKAGES
    echo "$IMAGE_PACKAGES" >"$STAMP"
fi
(cd /tmp && "$VENV/bin/python" - $ABSENT <<'EOF')
import importlib.util, sys
found = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]
if found:
    sys.exit(f"error: the dry run's venv has {', '.join(found)}, which the GPU image lacks: make gpu-dryrun FRESH=1")
print(f"venv: Python {sys.version.split()[0]}, without {', '.join(sys.argv[1:])} (as the GPU image)")
EOF
mkdir -p "$DRY"
"$VENV/bin/python" -m pip freeze >"$DRY/venv-freeze.txt"

# ---- 2. the bundle against the image ----------------------------------------------------------------------
"$VENV/bin/python" -m experiments.gpu.requirements "$BUNDLE/wheels" --image --project --tags

# ---- 3. no GPU: one line, exit 3, nothing made ------------------------------------------------------------
rm -rf "$DRY/nogpu"
set +e
PYTHON=$VENV/bin/python BUNDLE=$BUNDLE OUT=$DRY/nogpu/out WORK=$DRY/nogpu/work bash experiments/gpu.sh 2>"$DRY/nogpu.err"
rc=$?
set -e
if [ "$rc" != 3 ] || [ "$(wc -l <"$DRY/nogpu.err")" != 1 ] || [ -e "$DRY/nogpu" ]; then
    echo "error: without a GPU experiments/gpu.sh should stop at once (exit 3, one line, nothing made); exit $rc:" >&2
    cat "$DRY/nogpu.err" >&2
    exit 1
fi
echo "no GPU: $(cat "$DRY/nogpu.err") (exit 3, nothing installed or unpacked)"

# ---- 4. the run, TINY=1 -----------------------------------------------------------------------------------
rm -rf "$DRY/out" "$DRY/work"
set +e
PYTHON=$VENV/bin/python TINY=1 BUNDLE=$BUNDLE OUT=$DRY/out WORK=$DRY/work bash experiments/gpu.sh >"$DRY/run.log" 2>&1
rc=$?
set -e
if [ "$rc" != 0 ]; then
    tail -n 40 "$DRY/run.log" >&2
    echo "error: TINY=1 experiments/gpu.sh failed (exit $rc): $DRY/run.log, $DRY/out/run.txt" >&2
    exit 1
fi

# ---- 5. what would come back ------------------------------------------------------------------------------
"$VENV/bin/python" -m experiments.gpu.transfer out "$DRY/out"
"$VENV/bin/python" - "$DRY/out/fer2013_gpu.tar.gz" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    names = tar.getnames()
    table = tar.extractfile("result/table.md").read().decode()
rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
predictions = [n for n in names if n.startswith("sweep/") and n.endswith("/predictions.npz")]
problems = [
    *([f"table rows {rows}, not full and vgg16"] if rows != ["full", "vgg16"] else []),
    *([f"{len(predictions)} jobs with predictions.npz, not 2"] if len(predictions) != 2 else []),
    *(["a checkpoint was packed"] if any(n.endswith(".ckpt") for n in names) else []),
]
if problems:
    sys.exit(f"error: {sys.argv[1]}: {'; '.join(problems)}")
print(f"tarball: {len(names)} entries, table rows {rows}, per-face predictions of both jobs, no checkpoints")
EOF
cat "$DRY/out/run.txt"
echo "bench.txt:"
cat "$DRY/out/bench.txt"
echo "gpu-dryrun: ok: the bundle installs into the image's packages and the run reads FER2013 from it, trains," \
    "reports and packs; $DRY/out holds what would come back"
