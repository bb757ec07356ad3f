# fer-attention: `make train` trains on the built-in synthetic faces, `make test` runs the tests.
# Both set up .venv on first use (installs torch 2.14.1 / torchvision 0.29.1 and the package).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-all check-results model rederive lint format clean bench profile gpu gpu-bundle gpu-dryrun gpu-fer-root ablation-lbp ablation-modules ablation-dilation ablation-modules-pretrained ablation-lbp-pretrained ablation-dilation-pretrained datasets cv paper pretrain pretext transfer cross

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# the [export] extra (onnx, onnxruntime) is part of every install: the ONNX and int8 tests run wherever
# the suite is tested, and `make bench` times ONNX Runtime
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install 'torch==2.14.1' 'torchvision==0.29.1'
	$(BIN)/pip install -e '.[dev,export]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev and export tools (once; redone when pyproject.toml changes)

train: install ## train the paper's network on the built-in synthetic faces (about 3 min on 2 CPU cores); ARGS= adds overrides
	$(BIN)/fer-train experiment=quickstart $(ARGS)

# test files run on this many pytest-xdist workers, the cores shared between them (0: one process)
TEST_WORKERS ?= 2

test: install ## run the tests (slow ones excluded; TEST_WORKERS=2 processes share the cores)
	$(BIN)/pytest -m "not slow" -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-all: install ## run every test, the slow ones too
	$(BIN)/pytest -q $(ARGS)

check-results: install ## every figure README.md and docs/ cite from experiments/results/ is that folder's figure
	$(BIN)/python -m experiments.check_results

# the model that ships with the package (fer_attention/inference/shipped/MODEL_CARD.md): conf/experiment/shipped.yaml
# is the recipe of the run chosen on validation; its table is SHIPPED_FOLDER
MODEL_RUN ?= logs/model/run
SHIPPED_FOLDER ?= experiments/results/ferplus_full_long_cpu
MODEL_DATA_ROOT ?= ../shared/data/ferplus
model: install ## rebuild the shipped model end to end: train its recipe on MODEL_DATA_ROOT (FER+), then fp16 weights, int8 ONNX and the card
	$(BIN)/fer-train experiment=shipped data.root=$(MODEL_DATA_ROOT) hydra.run.dir=$(MODEL_RUN) '~callbacks.progress_bar' $(ARGS)
	$(BIN)/python -m experiments.ship_model build --run $(MODEL_RUN) --folder $(SHIPPED_FOLDER) --command "make model"

rederive: install ## re-aggregate every committed result folder from its jobs (ARGS=--check: compare, write nothing)
	$(BIN)/python -m experiments.rederive $(ARGS)

# --- the paper's tables as Hydra multiruns; each ends with `fer-report` on its sweep dir ---------------
# DATA=synthetic|ckplus|fer2013|..., DATA_ROOT=<path>, BUDGET=quick|cpu|paper (QUICK=1 = BUDGET=quick),
# SEEDS=<hydra sweep of seed>, FOLDS=<hydra sweep of data.fold> (every fold by default on k-fold datasets;
# empty on fixed splits), EPOCHS=<n>, REFERENCE=<row for fer-report's paired tests>, LAUNCHER=joblib,
# JOBS=<n> jobs side by side on this machine (joblib launcher, cores / n torch threads each; 2 by default),
# LOGGER=wandb (every job to W&B, and the paired table as a report run in the sweep's group), ARGS=.
DATA ?= synthetic
DATA_ROOT ?=
QUICK ?= 0
BUDGET ?= $(if $(filter 1,$(QUICK)),quick,cpu)
# protocol_of,<data>: `kfold <num_folds>`, `fixed` or `auto`, read from conf/data/<data>.yaml (the one place
# it is stated); folds_of,<data>: every fold of a k-fold protocol (fold 0 at BUDGET=quick), none otherwise
protocol_of = $(shell $(BIN)/python -m experiments.protocol $(1))
folds_of = $(if $(filter kfold,$(word 1,$(call protocol_of,$(1)))),$(if $(filter quick,$(BUDGET)),0,range(0,$(word 2,$(call protocol_of,$(1))))))
# seeds_of,<data>,<folds>: a row is every fold x one seed on k-fold data, three seeds on fixed splits
seeds_of = $(if $(2),0,$(if $(filter quick,$(BUDGET)),0,0,1,2))
FOLDS ?= $(call folds_of,$(DATA))
SEEDS ?= $(call seeds_of,$(DATA),$(FOLDS))
EPOCHS ?=
REFERENCE ?=
LAUNCHER ?=
LOGGER ?=
CORES := $(shell nproc 2>/dev/null || echo 1)
JOBS ?= $(if $(filter 1,$(CORES)),1,2)
# JOBS defaults to 2 on 2+ cores, chosen by timing one 10-job CK+48 sweep at 1 x 2 and 2 x 1 threads
# (1.09x on an AVX2 EPYC in fp32, experiments/results/sweep_jobs_ckplus48_cpu; 1.23x on an AMX Xeon in bf16,
# sweep_jobs_ckplus48_intel_amx; 1.15x on an AVX-512 BF16 EPYC, sweep_jobs_ckplus48_amd_avx512bf16).
# JOBS > 1: Hydra's joblib launcher, n processes of cores / n threads (jobs x threads = cores); a JOBS
# above the cores is clamped to the cores, with one line
JOBS_OVER := $(shell [ $(JOBS) -gt $(CORES) ] && echo over)
JOBS_USED = $(if $(JOBS_OVER),$(CORES),$(JOBS))
JOBS_ARGS = $(if $(filter-out 1,$(JOBS_USED)),hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS_USED) \
	threads=$(shell echo $$(( $(CORES) / $(JOBS_USED) ))))
BUDGET_ARGS := $(if $(filter paper,$(BUDGET)),experiment=paper,budget=$(BUDGET))
NOW := $(shell date +%Y-%m-%d_%H-%M-%S)
RUN_ARGS = $(BUDGET_ARGS) $(if $(EPOCHS),trainer.max_epochs=$(EPOCHS)) $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) \
	$(JOBS_ARGS) $(if $(LOGGER),logger=$(LOGGER)) ~callbacks.progress_bar
SWEEP_NAME = $(DATA)_$(BUDGET)
# SWEEP_DIR=<an earlier sweep dir> with ARGS=skip_done=true (or resume=true) continues an unfinished table
SWEEP_DIR ?=
sweep_dir = $(or $(SWEEP_DIR),logs/$(1)/multiruns/$(NOW)_$(SWEEP_NAME))
# run_sweep,<table>: the sweep into logs/<table>/multiruns/<time>_<data>_<budget>, then its report
run_sweep = $(if $(JOBS_OVER),echo "JOBS=$(JOBS) is more than this machine's $(CORES) cores: running $(CORES) jobs side by side";) \
	$(BIN)/fer-train sweep=$(1) data=$(DATA) $(if $(DATA_ROOT),data.root=$(DATA_ROOT)) $(RUN_ARGS) \
	seed=$(SEEDS) $(if $(FOLDS),'data.fold=$(FOLDS)') hydra.sweep.dir=$(call sweep_dir,$(1)) $(ARGS); \
	$(BIN)/fer-report $(call sweep_dir,$(1)) --out logs/reports/$(1)_$(SWEEP_NAME) \
	$(if $(REFERENCE),--reference '$(REFERENCE)') $(if $(filter wandb,$(LOGGER)),--wandb)
# dataset_job,<data config>,<root>: one dataset's jobs (its own folds and seeds) into the datasets sweep dir
dataset_job = $(BIN)/fer-train sweep=datasets data=$(1) $(if $(2),data.root=$(2)) $(RUN_ARGS) \
	seed=$(call seeds_of,$(1),$(call folds_of,$(1))) $(if $(call folds_of,$(1)),'data.fold=$(call folds_of,$(1))') \
	hydra.sweep.dir=logs/datasets/multiruns/$(NOW)_$(BUDGET) 'hydra.sweep.subdir=$(1)_$${hydra.job.num}' $(ARGS)

ablation-lbp: install ## paper table: LBP variants (DATA, DATA_ROOT, BUDGET, FOLDS, SEEDS, EPOCHS)
	$(call run_sweep,ablation_lbp)

ablation-modules: install ## paper table: each module on/off, full vs vgg16
	$(call run_sweep,ablation_modules)

ablation-dilation: install ## paper table: dilation-rate sets that fit a 48x48 face (d248: ARGS='data.image_size=96 dilation=...')
	$(call run_sweep,ablation_dilation)

ferplus-targets: DATA = ferplus
ferplus-targets: DATA_ROOT = ../shared/data/ferplus
ferplus-targets: install ## FER+ table: full and vgg16, each trained on the taggers' votes and on the plurality label (DATA_ROOT)
	$(call run_sweep,ferplus_targets)

cv: install ## the full model over all folds of one dataset (FOLDS, default every fold)
	$(call run_sweep,cv)

datasets: install ## the full model on synthetic, and on ../shared/data/{ckplus48,fer2013} when present
	$(call dataset_job,synthetic,)
	if [ -d ../shared/data/ckplus48 ]; then $(call dataset_job,ckplus,../shared/data/ckplus48); fi
	if [ -d ../shared/data/fer2013 ]; then $(call dataset_job,fer2013,../shared/data/fer2013); fi
	$(BIN)/fer-report logs/datasets/multiruns/$(NOW)_$(BUDGET) --out logs/reports/datasets_$(BUDGET)

paper: ablation-lbp ablation-modules ablation-dilation cv datasets ## every table above

# --- transfer without downloads (docs/transfer.md) ---------------------------------------------------
FER_ROOT ?= ../shared/data/fer2013
INIT ?=
PRETEXT ?= lbp_contrastive
pretrain: install ## FER2013 supervised pretraining (experiment=pretrain_fer2013); FER_ROOT=<fer2013 copy>
	$(BIN)/fer-train experiment=pretrain_fer2013 data.root=$(FER_ROOT) ~callbacks.progress_bar $(ARGS)

pretext: install ## LBP self-supervised pretext on FER2013's faces, labels ignored (PRETEXT=lbp_contrastive)
	$(BIN)/fer-pretrain data=fer2013 data.root=$(FER_ROOT) pretext=$(PRETEXT) ~callbacks.progress_bar $(ARGS)

transfer: install ## every fold, scratch vs fine-tuned from INIT=<checkpoint> (DATA, DATA_ROOT, FOLDS, SEEDS)
	@test -n "$(INIT)" || { echo "error: make transfer needs INIT=<checkpoint>"; exit 2; }
	$(BIN)/fer-train -m sweep=transfer experiment=transfer data=$(DATA) $(if $(DATA_ROOT),data.root=$(DATA_ROOT)) \
		$(RUN_ARGS) seed=$(SEEDS) $(if $(FOLDS),'data.fold=$(FOLDS)') 'model.init_from=null,$(INIT)' \
		hydra.sweep.dir=$(call sweep_dir,transfer) $(ARGS); \
	$(BIN)/fer-report $(call sweep_dir,transfer) --out logs/reports/transfer_$(SWEEP_NAME) --reference 'model.init_from=null'

cross: install ## FER_CKPT=<FER2013 model> on every CK+48 face, CK_CKPT=<CK+48 model> on FER2013 PrivateTest
	$(BIN)/fer-eval ckpt_path=$(FER_CKPT) data=ckplus data.root=../shared/data/ckplus48 split=all \
		hydra.run.dir=logs/cross/$(NOW)/fer2013_to_ckplus48
	$(BIN)/fer-eval ckpt_path=$(CK_CKPT) data=fer2013 data.root=$(FER_ROOT) split=test \
		hydra.run.dir=logs/cross/$(NOW)/ckplus48_to_fer2013
	$(BIN)/fer-report --cross logs/cross/$(NOW) --out logs/reports/cross_$(NOW)

# --- the pretrained regime (experiments/pretrained.py): every row trained on FER2013 as that same row, then
# fine-tuned on CK+48 (or DATA_ROOT's) from its own checkpoint over every fold x PRETRAINED_SEEDS; ROWS=<subset>.
# A row that composes the same network as one already pretrained (full = circle = d123) reuses its checkpoint;
# the FER2013 runs are tabulated in logs/reports/pretrained_fer2013 (PublicTest, PrivateTest, minutes)
PRETRAINED_DIR ?= logs/pretrained
PRETRAINED_SEEDS ?= 0,1
ROWS ?=
PRE_DATA = $(if $(filter synthetic,$(DATA)),ckplus,$(DATA))
pre_sweep_dir = $(or $(SWEEP_DIR),logs/$(1)_pretrained/multiruns/$(NOW)_$(PRE_DATA)_$(BUDGET))
pretrained_args = --table $(1) $(if $(ROWS),--rows $(ROWS)) --out $(PRETRAINED_DIR)
run_pretrained = $(BIN)/python -m experiments.pretrained pretrain $(call pretrained_args,$(1)) --fer-root $(FER_ROOT) && \
	$(BIN)/python -m experiments.pretrained publish --out $(PRETRAINED_DIR) --to logs/reports/pretrained_fer2013 && \
	$(BIN)/python -m experiments.pretrained finetune $(call pretrained_args,$(1)) --seeds $(PRETRAINED_SEEDS) \
	--data $(PRE_DATA) --data-root $(or $(DATA_ROOT),../shared/data/ckplus48) \
	--sweep-dir $(call pre_sweep_dir,$(1)) -- $(JOBS_ARGS) $(ARGS) && \
	$(BIN)/fer-report $(call pre_sweep_dir,$(1)) --out logs/reports/$(1)_pretrained_$(PRE_DATA)_$(BUDGET)

ablation-modules-pretrained: install ## the module table in the pretrained regime (FER2013 per row, then CK+48)
	$(call run_pretrained,ablation_modules)

ablation-lbp-pretrained: install ## the LBP table pretrained per row (e.g. ROWS=circle,uniform,ror)
	$(call run_pretrained,ablation_lbp)

ablation-dilation-pretrained: install ## the dilation table pretrained per row (e.g. ROWS=d123,d135)
	$(call run_pretrained,ablation_dilation)

bench: install ## benchmark suite: LBP, training step per ablation, fast paths, data, inference incl. ONNX Runtime (logs/bench/bench.md); ARGS="--width 1.0"
	$(BIN)/python -m experiments.bench $(ARGS)

profile: install ## where a training step's time goes: torch.profiler, top operators and kinds of work (logs/bench/profile); ARGS="--precision fp32"
	$(BIN)/python -m experiments.bench.profile $(ARGS)

# no `install` prerequisite: on a copied checkout pyproject.toml may look newer than .venv, and pip has no internet
gpu: ## FER2013 full vs vgg16 at width 1.0 on one GPU, epochs fitted to 8 min, 4 files in OUT (logs/gpu); gpu_bundle/ where it is, else FER_ROOT (TINY=1, DRY_RUN=1)
	BUNDLE=$(GPU_BUNDLE) bash experiments/gpu.sh

# the lent GPU machine (docs/scaling.md#a-lent-gpu-machine): no internet, no ../shared, 64 MiB travel with the tree
GPU_BUNDLE ?= gpu_bundle
# first among gpu-bundle's prerequisites: without FER_ROOT, one line (make's own) and nothing else done
gpu-fer-root:
	@$(if $(wildcard $(FER_ROOT)/.),:,$(error FER_ROOT=$(FER_ROOT) is not a folder (FER2013's train/ and test/ image folders)))

gpu-bundle: gpu-fer-root install ## wheels the GPU image lacks + FER2013 as one file into gpu_bundle/ (FER_ROOT); fails over the 64 MiB that travels
	$(BIN)/python -m experiments.gpu.bundle --fer-root $(FER_ROOT) --out $(GPU_BUNDLE)

gpu-dryrun: gpu-bundle ## the GPU run end to end on this CPU, in a venv with only the GPU image's packages (logs/gpu_dryrun; FRESH=1)
	BUNDLE=$(GPU_BUNDLE) bash experiments/gpu/dryrun.sh

lint: install ## ruff lint and format check
	$(BIN)/ruff check fer_attention tests experiments
	$(BIN)/ruff format --check fer_attention tests experiments

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix fer_attention tests experiments
	$(BIN)/ruff format fer_attention tests experiments

clean: ## remove logs, caches and build files (keeps .venv)
	rm -rf logs outputs multirun wandb lightning_logs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
