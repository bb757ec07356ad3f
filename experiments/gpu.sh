#!/usr/bin/env bash
# experiments/gpu.sh (`make gpu`): FER2013, full vs vgg16 at VGG16's width (model.net.backbone.width=1.0) on one
# GPU, bf16-mixed, channels_last, augment=torch, sized from a timed first epoch to end inside DEADLINE_S (480 s),
# and everything that comes back in four files under $OUT (docs/scaling.md#a-lent-gpu-machine):
#   run.txt              each step's exit status and seconds, the epoch plan and its sums, the data check
#   env.txt              nvidia-smi, Python, torch, CUDA, cuDNN, the GPU
#   bench.txt            the training step's rate against this GPU's bf16 matmul rate (experiments/gpu/bench.py)
#   fer2013_gpu.tar.gz   fer-report --publish's result folder (table, README, jobs with metrics.json and per-face
#                        predictions.npz), the sweep's and the probe's run dirs (logs, curves, attention maps),
#                        bench.json and the three files above; no checkpoints
# Steps: a visible GPU, checked first (without one: one line, exit 3, nothing installed or unpacked); the
# bundle's wheels installed into $WORK/site (pip --no-index --no-deps --target) and their requirements checked
# against this Python; FER2013 unpacked from the bundle (else FER_ROOT) and decoded once by the suite's loader
# into the run's cache, the pixels compared with the packing machine's; env.txt; the probe (one epoch of the
# full model, timed); the epochs that fit (experiments/gpu/plan.py); the sweep; fer-report; the bench; the pack.
# A step that fails after the data is in place does not stop the packing: run.txt says which one. Each step has
# a time limit: the sweep is stopped at DEADLINE_S - RESERVE_S + 30 s if the plan was wrong, the report at 45 s
# and the bench at 60 s after it, so even then the command ends before the device tool's 600 s.
#   bash experiments/gpu.sh                 # on the GPU (the lent machine: carry gpu_bundle, see docs)
#   TINY=1 bash experiments/gpu.sh          # every step on the CPU at a tiny budget (`make gpu-dryrun` runs it)
#   DRY_RUN=1 bash experiments/gpu.sh       # print the commands, run nothing, write nothing
# Environment: OUT (logs/gpu), WORK (logs/gpu_work: site-packages, data, cache, probe, sweep, checkpoints),
# BUNDLE (gpu_bundle, used where it has wheels / data), FER_ROOT (../shared/data/fer2013, when the bundle has no
# data or FER_ROOT is set), PYTHON (.venv/bin/python where it exists, else python3), DEADLINE_S (480),
# RESERVE_S (75: report, bench, pack), EPOCHS (a fixed number: no probe), MAX_EPOCHS (30), TRAIN_ARGS (more
# fer-train overrides), GIT_COMMIT (else the bundle's manifest or git). Paths are from the repo root.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
REPO=$PWD
START=$(date +%s)

TINY=${TINY:-0}
DRY_RUN=${DRY_RUN:-0}
abspath() { case $1 in /*) echo "$1" ;; *) echo "$REPO/$1" ;; esac; }
OUT=$(abspath "${OUT:-logs/gpu}")
WORK=$(abspath "${WORK:-logs/gpu_work}")
BUNDLE=$(abspath "${BUNDLE:-gpu_bundle}")
FER_ROOT_GIVEN=${FER_ROOT:+1}
FER_ROOT=${FER_ROOT:-../shared/data/fer2013}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=$(command -v python3 || command -v python); fi
DEADLINE_S=${DEADLINE_S:-480}
RESERVE_S=${RESERVE_S:-75}
EPOCHS=${EPOCHS:-}
TRAIN_ARGS=${TRAIN_ARGS:-}
PACK=$BUNDLE/fer2013.ferpack.xz
SITE=$WORK/site
TARBALL=$OUT/fer2013_gpu.tar.gz

if [ "$TINY" = 1 ]; then
    WIDTH=0.0625
    MAX_EPOCHS=${MAX_EPOCHS:-1}
    # limit_*_batches exist (null) in conf/trainer/default.yaml: plain overrides, no "+"
    # (the whole test split: per-face predictions need every test face)
    TRAINER=(trainer=default trainer.accelerator=cpu trainer.precision=bf16-mixed
        trainer.limit_train_batches=2 trainer.limit_val_batches=1)
    LOADER=(data.num_workers=0 data.pin_memory=false)
    BENCH=(--steps 2 --repeats 2)
else
    WIDTH=1.0
    MAX_EPOCHS=${MAX_EPOCHS:-30}
    TRAINER=(trainer=gpu trainer.accelerator=gpu trainer.precision=bf16-mixed)
    LOADER=(data.num_workers=8 data.pin_memory=true data.persistent_workers=true)
    BENCH=()
fi
# shellcheck disable=SC2206  # TRAIN_ARGS is split into words on purpose
EXTRA=($TRAIN_ARGS)
TRAIN=("$PY" -m fer_attention.cli.train)
COMMON=(data=fer2013 augment=torch "model.net.backbone.width=$WIDTH" model.channels_last=true seed=0
    logger=csv "~callbacks.progress_bar" "${LOADER[@]}" "${TRAINER[@]}")
# the probe: one epoch of the full model, no test; the sweep: $1 epochs on $2 of the training batches
set_commands() {
    local limit=()
    if [ "$TINY" != 1 ] && [ "$2" != 1.0 ]; then limit=("trainer.limit_train_batches=$2"); fi
    PROBE_CMD=("${TRAIN[@]}" "${COMMON[@]}" "data.root=$FER_ROOT" ablation=full trainer.max_epochs=1 test=false
        task_name=gpu_probe "hydra.run.dir=$WORK/probe" ${EXTRA[@]+"${EXTRA[@]}"})
    SWEEP_CMD=("${TRAIN[@]}" -m "${COMMON[@]}" "data.root=$FER_ROOT" ablation=full,vgg16 "trainer.max_epochs=$1"
        ${limit[@]+"${limit[@]}"} task_name=gpu_sweep "hydra.sweep.dir=$WORK/sweep" \
        'hydra.sweep.subdir=${hydra.job.num}_ablation-${ablation.name}' ${EXTRA[@]+"${EXTRA[@]}"})
}
REPORT_CMD=("$PY" -m fer_attention.cli.report "$WORK/sweep" --out "$WORK/result" --publish)
BENCH_CMD=("$PY" -m experiments.gpu.bench --width "$WIDTH" --sweep "$WORK/sweep" --out "$WORK/result/bench.json"
    ${BENCH[@]+"${BENCH[@]}"})

# show <words...>: one line that pastes back into bash (words quoted only where they need it)
show() {
    local word line=
    for word in "$@"; do
        if [[ $word =~ ^[][A-Za-z0-9_./=,:+~@%*-]+$ ]]; then line+="$word "; else line+="$(printf '%q' "$word") "; fi
    done
    echo "${line% }"
}

if [ "$DRY_RUN" = 1 ]; then
    echo "# from $REPO; python $PY; bundle $BUNDLE; work $WORK; out $OUT"
    [ "$TINY" = 1 ] || echo "# first: nvidia-smi -L and torch.cuda.is_available(), else one line and exit 3"
    show "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$BUNDLE/wheels/*.whl"
    show "$PY" -m experiments.gpu.facepack unpack "$PACK" "$WORK/fer2013"
    [ -z "$FER_ROOT_GIVEN" ] && [ -f "$PACK" ] && FER_ROOT=$WORK/fer2013
    set_commands "${EPOCHS:-EPOCHS}" 1.0
    [ -n "$EPOCHS" ] || show "${PROBE_CMD[@]}"
    [ -n "$EPOCHS" ] || echo "# EPOCHS: python -m experiments.gpu.plan --probe $WORK/probe ... (experiments/gpu/plan.py)"
    show "${SWEEP_CMD[@]}"
    show "${REPORT_CMD[@]}"
    show "${BENCH_CMD[@]}"
    echo "# tar -czf $TARBALL (result sweep probe logs, no checkpoints) + run.txt env.txt bench.txt into $OUT"
    exit 0
fi

# ---- 1. a GPU, before anything is installed or unpacked ----------------------------------------------------
if [ "$TINY" != 1 ]; then
    why=
    if ! command -v nvidia-smi >/dev/null; then why="nvidia-smi not found"
    elif ! nvidia-smi -L >/dev/null 2>&1; then why="nvidia-smi -L failed"
    elif ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        why="torch.cuda.is_available() is False in $PY"
    fi
    if [ -n "$why" ]; then
        echo "error: no GPU visible ($why): nothing installed or unpacked; TINY=1 runs the steps on a CPU" >&2
        exit 3
    fi
fi

if { [ -n "$FER_ROOT_GIVEN" ] || [ ! -f "$PACK" ]; } && [ ! -d "$FER_ROOT" ]; then
    echo "error: FER_ROOT=$FER_ROOT is not a folder and there is no $PACK (make gpu-bundle, or set FER_ROOT)" >&2
    exit 2
fi

mkdir -p "$OUT" "$WORK"
rm -f "$OUT/run.txt" "$OUT/env.txt" "$OUT/bench.txt" "$TARBALL"
RUN=$OUT/run.txt
FIRST_FAILURE=0
elapsed() { echo $(($(date +%s) - START)); }
note() { echo "$*" | tee -a "$RUN" >&2; }

# step <name> <timeout s> <command...>: output to the terminal and $WORK/logs/<name>.log, exit status and
# seconds to run.txt; returns the command's exit status (124: stopped at its time limit, at least 30 s)
step() {
    local name=$1 limit=$(($2 > 30 ? $2 : 30)) rc t0
    shift 2
    mkdir -p "$WORK/logs"
    echo "== [$name] $*" >&2
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/logs/$name.log"
    rc=${PIPESTATUS[0]}
    echo "step $name: exit $rc, $(($(date +%s) - t0)) s$([ "$rc" = 124 ] && echo ", stopped at its ${limit} s limit")" >>"$RUN"
    if [ "$rc" != 0 ] && [ "$FIRST_FAILURE" = 0 ]; then FIRST_FAILURE=$rc; fi
    return "$rc"
}

# everything there is, packed into $OUT whenever the script ends from here on
pack() {
    local rc=$? parts=()
    [ "$FIRST_FAILURE" = 0 ] && FIRST_FAILURE=$rc
    echo "total: $(elapsed) s; exit $FIRST_FAILURE" >>"$RUN"
    for p in result sweep probe logs; do [ -e "$WORK/$p" ] && parts+=("$p"); done
    tar -czf "$TARBALL" --exclude='*.ckpt' -C "$WORK" ${parts[@]+"${parts[@]}"} \
        -C "$OUT" "$(basename "$RUN")" $(cd "$OUT" && ls env.txt bench.txt 2>/dev/null)
    echo "packed: $TARBALL ($(du -h "$TARBALL" | cut -f1): ${parts[*]:-nothing} and run.txt; checkpoints left out)" | tee -a "$RUN" >&2
    exit "$FIRST_FAILURE"
}
trap pack EXIT

git_commit() {
    if [ -n "${GIT_COMMIT:-}" ]; then echo "$GIT_COMMIT"
    elif [ -f "$BUNDLE/manifest.json" ]; then
        "$PY" -c 'import json, sys; m = json.load(open(sys.argv[1])); print(m["git_commit"] + (" (uncommitted changes)" if m["git_dirty"] else "") + " (bundle manifest)")' "$BUNDLE/manifest.json"
    else git rev-parse HEAD 2>/dev/null || echo "unknown (no git here; set GIT_COMMIT)"; fi
}
{
    echo "experiments/gpu.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname 2>/dev/null || uname -n)"
    echo "git commit: $(git_commit)"
    echo "mode: $([ "$TINY" = 1 ] && echo 'TINY=1 (CPU, width 0.0625, 2 batches an epoch)' || echo "GPU, width $WIDTH");" \
        "DEADLINE_S=$DEADLINE_S RESERVE_S=$RESERVE_S EPOCHS=${EPOCHS:-probe} MAX_EPOCHS=$MAX_EPOCHS TRAIN_ARGS='$TRAIN_ARGS'"
    echo "python: $PY; bundle: $BUNDLE; work: $WORK; out: $OUT"
} >"$RUN"

# ---- 2. the bundle's wheels --------------------------------------------------------------------------------
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$BUNDLE/wheels/*.whl" >/dev/null; then
    rm -rf "$SITE"
    step install 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        "$BUNDLE"/wheels/*.whl || exit
    export PYTHONPATH="$SITE:$PYTHONPATH"
    # against this Python's packages: fatal under TINY=1 (the dry run), a warning on the GPU, where the imports
    # below decide (the image itself was checked by make gpu-bundle and make gpu-dryrun: image.txt)
    if ! step requirements 60 "$PY" -m experiments.gpu.requirements "$BUNDLE/wheels" --project; then
        [ "$TINY" = 1 ] && exit
        note "warning: the bundle's requirements are not all met here (requirements.log); going on"
        FIRST_FAILURE=0
    fi
else
    note "no wheels in $BUNDLE/wheels: hydra-core and omegaconf must be installed already"
fi
step imports 120 "$PY" -c 'import hydra, omegaconf, lightning, fer_attention.cli.train, fer_attention.cli.report' || exit

# ---- 3. FER2013 ------------------------------------------------------------------------------------------
DIGEST=
if [ -z "$FER_ROOT_GIVEN" ] && [ -f "$PACK" ]; then
    FER_ROOT=$WORK/fer2013
    rm -rf "$FER_ROOT"
    step unpack 120 "$PY" -m experiments.gpu.facepack unpack "$PACK" "$FER_ROOT" || exit
    DIGEST=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["digest"])' "$BUNDLE/manifest.json")
fi
FER_ROOT=$(cd "$FER_ROOT" && pwd)
export FER_CACHE_DIR=$WORK/cache FER_LOG_DIR=$WORK/logs
# decoded once by the suite's loader into the run's cache (the probe and the sweep read it from there)
step data 180 "$PY" -m experiments.gpu.facepack check "$FER_ROOT" ${DIGEST:+--digest "$DIGEST"} --cache-dir "$FER_CACHE_DIR"
case $? in
    0) ;;
    1) note "warning: the decoded faces differ from the packing machine's (logs/data.log); going on"; FIRST_FAILURE=0 ;;
    *) exit ;;
esac

# ---- 4. the machine ----------------------------------------------------------------------------------------
{
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
    "$PY" - <<'EOF'
import platform, torch
print(f"python {platform.python_version()}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
      f"cuDNN {torch.backends.cudnn.version()}; devices {torch.cuda.device_count()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
import hydra, omegaconf, lightning
print(f"hydra-core {hydra.__version__}; omegaconf {omegaconf.__version__}; lightning {lightning.__version__}")
EOF
} >"$OUT/env.txt" 2>&1
head -c 20000 "$OUT/env.txt" | grep -E '^(python|GPU|hydra)' | tee -a "$RUN" >&2

# ---- 5. the probe and the plan -----------------------------------------------------------------------------
LIMIT=1.0
if [ -z "$EPOCHS" ]; then
    t0=$(date +%s)
    set_commands 1 1.0
    step probe $((DEADLINE_S - $(elapsed) - RESERVE_S)) "${PROBE_CMD[@]}"
    if PLAN=$("$PY" -m experiments.gpu.plan --probe "$WORK/probe" --probe-wall $(($(date +%s) - t0)) \
        --elapsed "$(elapsed)" --deadline "$DEADLINE_S" --reserve "$RESERVE_S" --max-epochs "$MAX_EPOCHS"); then
        read -r EPOCHS LIMIT WHY <<<"$PLAN"
        note "plan: $EPOCHS epochs, limit_train_batches $LIMIT: $WHY"
    else
        EPOCHS=1
        note "plan: the probe gave no epoch time; 1 epoch"
    fi
fi

# ---- 6. the sweep, the report, the bench -------------------------------------------------------------------
set_commands "$EPOCHS" "$LIMIT"
rm -rf "$WORK/sweep" "$WORK/result"
step sweep $((DEADLINE_S - $(elapsed) - RESERVE_S + 30)) "${SWEEP_CMD[@]}"
# a failed job leaves status.json "failed" and the sweep goes on (exit 0): each job's state to run.txt
if ! "$PY" - "$WORK/sweep" >>"$RUN" 2>&1 <<'EOF'; then
import json, pathlib, sys
states = {p.parent.name: json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*/status.json"))}
for name, s in states.items():
    print(f"job {name}: {s.get('state')}, {s.get('seconds', '?')} s" + (f": {s['error']}" if s.get("error") else ""))
done = sum(s.get("state") == "finished" for s in states.values())
print(f"sweep: {done} of {len(states)} jobs finished (2 expected)")
sys.exit(0 if done == len(states) == 2 else 1)
EOF
    [ "$FIRST_FAILURE" = 0 ] && FIRST_FAILURE=1
fi
step report 45 "${REPORT_CMD[@]}"
mkdir -p "$WORK/result"
step bench 60 "${BENCH_CMD[@]}"
grep '^bench: ' "$WORK/logs/bench.log" >"$OUT/bench.txt"
exit "$FIRST_FAILURE"
