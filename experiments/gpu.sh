#!/usr/bin/env bash
# experiments/gpu.sh (`make gpu`): one GPU session's measurements, all under ${OUT:-logs/gpu}/: nvidia-smi.txt,
# gpu_name.txt, <data>_w<width>/ (fer-train sweep, full vs vgg16), <data>_w<width>_report/ (fer-report --publish:
# table.md, README.md, jobs/), bench/ (python -m experiments.bench), one <step>.log per step, and run.txt.
#   bash experiments/gpu.sh                     # the GPU run: FER2013, width 1.0, trainer=gpu, EPOCHS epochs
#   TINY=1 OUT=/tmp/g bash experiments/gpu.sh   # the same steps on a tiny CPU budget (synthetic data, ~1 min)
#   DRY_RUN=1 bash experiments/gpu.sh           # print the commands, run nothing, write nothing
# Environment: OUT, FER_ROOT (../shared/data/fer2013), EPOCHS (5), ACCEL (gpu; cpu under TINY=1), BENCH_ARGS
# (extra experiments.bench flags), TRAIN_ARGS (extra fer-train overrides), GIT_COMMIT (a copy without .git),
# TARBALL (also pack OUT, checkpoints left out, into this .tar.gz). Relative paths are from the repo root; no
# internet needed. A failing step does not stop the others: run.txt has each one's exit status and wall time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

TINY=${TINY:-0}
DRY_RUN=${DRY_RUN:-0}
OUT=${OUT:-logs/gpu}
case $OUT in /*) ;; *) OUT=$REPO/$OUT ;; esac
FER_ROOT=${FER_ROOT:-../shared/data/fer2013}
# an estimate, not a measurement: at width 1.0 on one H100 (bf16, batch 64, 449 steps an epoch of FER2013's
# 28,709 training faces) an epoch should take some 10-30 s for the full model and about half that for vgg16,
# so 5 epochs of both, with start-up, decoding FER2013 once and the tests, should fit in about 7 minutes;
# run.txt records the wall time of the sweep to size EPOCHS from the next time
EPOCHS=${EPOCHS:-5}
BENCH_ARGS=${BENCH_ARGS:-}
TRAIN_ARGS=${TRAIN_ARGS:-}
if [ "$TINY" = 1 ]; then ACCEL=${ACCEL:-cpu}; else ACCEL=${ACCEL:-gpu}; fi

# the repo's .venv when it is there, else what is on PATH (without fer-train / fer-report there, e.g. the
# package's wheels unpacked into PYTHONPATH: python -m fer_attention.cli.*, which works from the repo root)
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=$(command -v python3 || command -v python); fi
entry() {  # entry <console script> <module>: the command words of one of the package's CLIs
    if [ -x ".venv/bin/$1" ]; then echo ".venv/bin/$1"
    elif [ ! -x .venv/bin/python ] && command -v "$1" >/dev/null; then echo "$1"
    else echo "$PY -m $2"; fi
}
read -ra FER_TRAIN <<<"$(entry fer-train fer_attention.cli.train)"
read -ra FER_REPORT <<<"$(entry fer-report fer_attention.cli.report)"

if [ "$TINY" = 1 ]; then
    WIDTH=0.0625
    DATA=synthetic
    DATA_ARGS=(data=synthetic data.source.num_subjects=15 data.source.frames_per_sequence=2 data.num_folds=3
        data.pin_memory=false data.num_workers=0)
    # limit_*_batches exist (null) in conf/trainer/default.yaml: plain overrides, no "+"
    TRAINER_ARGS=(trainer=default "trainer.accelerator=$ACCEL" trainer.max_epochs=1
        trainer.limit_train_batches=2 trainer.limit_val_batches=1 trainer.limit_test_batches=1)
    BENCH=(--quick)
else
    WIDTH=1.0
    DATA=fer2013
    DATA_ARGS=(data=fer2013 "data.root=$FER_ROOT" data.pin_memory=true data.num_workers=8)
    TRAINER_ARGS=(trainer=gpu "trainer.accelerator=$ACCEL" "trainer.max_epochs=$EPOCHS")
    BENCH=()
fi
# shellcheck disable=SC2206  # BENCH_ARGS / TRAIN_ARGS are split into words on purpose
BENCH+=($BENCH_ARGS)
# shellcheck disable=SC2206
EXTRA_TRAIN=($TRAIN_ARGS)
SWEEP=$OUT/${DATA}_w$WIDTH
REPORT=${SWEEP}_report

GPU_NAME_PY='import torch
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
else:
    print("no GPU")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, devices {torch.cuda.device_count()}")'

TRAIN_CMD=("${FER_TRAIN[@]}" -m "${DATA_ARGS[@]}" ablation=full,vgg16 "model.net.backbone.width=$WIDTH"
    "${TRAINER_ARGS[@]}" seed=0 "~callbacks.progress_bar" "hydra.sweep.dir=$SWEEP" ${EXTRA_TRAIN[@]+"${EXTRA_TRAIN[@]}"})
REPORT_CMD=("${FER_REPORT[@]}" "$SWEEP" --out "$REPORT" --publish)
BENCH_CMD=("$PY" -m experiments.bench --out "$OUT/bench" ${BENCH[@]+"${BENCH[@]}"})

# show <words...>: one line that pastes back into bash (words quoted only where they need it)
show() {
    local word line=
    for word in "$@"; do
        if [[ $word =~ ^[][A-Za-z0-9_./=,:+~@%-]+$ ]]; then line+="$word "; else line+="$(printf '%q' "$word") "; fi
    done
    echo "${line% }"
}

if [ "$DRY_RUN" = 1 ]; then
    echo "# from $REPO"
    if command -v nvidia-smi >/dev/null; then echo "nvidia-smi > $OUT/nvidia-smi.txt"; else echo "# nvidia-smi: not found"; fi
    echo "$(show "$PY" -c "$GPU_NAME_PY") > $OUT/gpu_name.txt"
    show "${TRAIN_CMD[@]}"
    show "${REPORT_CMD[@]}"
    show "${BENCH_CMD[@]}"
    exit 0
fi

mkdir -p "$OUT"
RUN=$OUT/run.txt
FIRST_FAILURE=0
START=$(date +%s)
{
    echo "experiments/gpu.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname 2>/dev/null || uname -n)"
    echo "git commit: ${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo 'unknown (no git here; set GIT_COMMIT)')}"
    if git rev-parse HEAD >/dev/null 2>&1 && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
        echo "working tree: uncommitted changes"
    fi
    echo "mode: $([ "$TINY" = 1 ] && echo 'TINY=1 (tiny CPU budget, 1 epoch of 2 batches)' || echo "GPU, EPOCHS=$EPOCHS");" \
        "ACCEL=$ACCEL width=$WIDTH data=$DATA FER_ROOT=$FER_ROOT BENCH_ARGS='$BENCH_ARGS' TRAIN_ARGS='$TRAIN_ARGS'"
    echo "output: $OUT"
    echo
} >"$RUN"

# step <name> <command...>: the command's output to the terminal and $OUT/<name>.log, its exit status and wall
# time to run.txt; a failing step does not stop the others
step() {
    local name=$1 rc t0 t1
    shift
    echo "== [$name] $*" >&2
    t0=$(date +%s)
    set +e
    "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    t1=$(date +%s)
    echo "step $name: exit $rc, $((t1 - t0)) s: $(show "$@")" >>"$RUN"
    if [ "$rc" != 0 ] && [ "$FIRST_FAILURE" = 0 ]; then FIRST_FAILURE=$rc; fi
}

if command -v nvidia-smi >/dev/null; then
    step nvidia-smi nvidia-smi
    cp "$OUT/nvidia-smi.log" "$OUT/nvidia-smi.txt"
else
    echo "nvidia-smi: not found on this machine (no NVIDIA driver tools); carrying on" | tee "$OUT/nvidia-smi.txt"
    echo "step nvidia-smi: skipped, nvidia-smi not found" >>"$RUN"
fi
step gpu_name "$PY" -c "$GPU_NAME_PY"
cp "$OUT/gpu_name.log" "$OUT/gpu_name.txt"
echo "device: $(head -n 1 "$OUT/gpu_name.txt")" >>"$RUN"
if [ "$TINY" != 1 ] && [ ! -e "$FER_ROOT" ]; then
    echo "warning: FER_ROOT=$FER_ROOT does not exist (from $REPO); fer-train will fail" | tee -a "$RUN" >&2
fi
# the FER2013 comparison before the benchmark: it is what the GPU is for (the bench times the host CPU)
step train "${TRAIN_CMD[@]}"
step report "${REPORT_CMD[@]}"
step bench "${BENCH_CMD[@]}"

echo "total: $(($(date +%s) - START)) s; exit $FIRST_FAILURE" >>"$RUN"
cat "$RUN"
# TARBALL=<file.tar.gz>: everything above but the checkpoints in one file (a machine that returns few files)
if [ -n "${TARBALL:-}" ]; then
    tar -czf "$TARBALL" --exclude='*.ckpt' -C "$(dirname "$OUT")" "$(basename "$OUT")"
    echo "packed into $TARBALL ($(du -h "$TARBALL" | cut -f1)), checkpoints left out"
fi
exit "$FIRST_FAILURE"
