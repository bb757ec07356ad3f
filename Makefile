# fer-attention: `make train` trains on the built-in synthetic faces, `make test` runs the tests.
# Both set up .venv on first use (installs torch 2.14.1 / torchvision 0.29.1 and the package).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-all lint format clean bench ablation-lbp ablation-modules ablation-dilation datasets cv paper

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev tools (once; redone when pyproject.toml changes)

# `make bench` also times ONNX Runtime inference: the [export] extra (onnx, onnxruntime), installed once
EXPORT_STAMP := $(VENV)/.installed-export
$(EXPORT_STAMP): $(STAMP)
	$(BIN)/pip install -e '.[dev,export]'
	touch $(EXPORT_STAMP)

train: install ## train the paper's network on the built-in synthetic faces (about 3 min on 2 CPU cores); ARGS= adds overrides
	$(BIN)/fer-train experiment=quickstart $(ARGS)

test: install ## run the tests (slow ones excluded; about 5 min on 2 CPU cores)
	$(BIN)/pytest -m "not slow" -q $(ARGS)

test-all: install ## run every test, the slow ones too
	$(BIN)/pytest -q $(ARGS)

# --- the paper's tables as Hydra multiruns; each ends with `fer-report` on its sweep dir ---------------
# DATA=synthetic|ckplus|fer2013|..., DATA_ROOT=<path>, SEEDS=0,1,2 (QUICK=1: 0), EPOCHS=<n>, QUICK=1 (few-minute budget),
# FOLDS=<hydra sweep of data.fold> for `cv`, LAUNCHER=joblib for parallel jobs, ARGS= for more overrides.
DATA ?= synthetic
DATA_ROOT ?=
SEEDS_FULL := 0,1,2
SEEDS ?= $(if $(filter 1,$(QUICK)),0,$(SEEDS_FULL))
EPOCHS ?=
QUICK ?= 0
FOLDS ?= $(if $(filter synthetic,$(DATA)),range(0,5),range(0,10))
LAUNCHER ?=
EXPERIMENT ?= $(if $(filter synthetic,$(DATA)),quickstart,paper)
NOW := $(shell date +%Y-%m-%d_%H-%M-%S)
COMMON_ARGS = experiment=$(EXPERIMENT) seed=$(SEEDS) $(if $(EPOCHS),trainer.max_epochs=$(EPOCHS)) \
	$(if $(filter 1,$(QUICK)),budget=quick) $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) ~callbacks.progress_bar
# run_sweep,<table>,<extra overrides>
run_sweep = $(BIN)/fer-train sweep=$(1) data=$(DATA) $(if $(DATA_ROOT),data.root=$(DATA_ROOT)) $(COMMON_ARGS) $(2) \
	hydra.sweep.dir=logs/$(1)/multiruns/$(NOW)_$(DATA) $(ARGS); \
	$(BIN)/fer-report logs/$(1)/multiruns/$(NOW)_$(DATA) --out logs/reports/$(1)_$(DATA)
# dataset_job,<data config>,<root>: one dataset's jobs into the shared datasets sweep dir
dataset_job = $(BIN)/fer-train sweep=datasets data=$(1) $(if $(2),data.root=$(2)) $(COMMON_ARGS) \
	hydra.sweep.dir=logs/datasets/multiruns/$(NOW) 'hydra.sweep.subdir=$(1)_$${hydra.job.num}' $(ARGS)

ablation-lbp: install ## paper table: LBP variants (DATA, SEEDS, EPOCHS, QUICK)
	$(call run_sweep,ablation_lbp,)

ablation-modules: install ## paper table: each module on/off, full vs vgg16
	$(call run_sweep,ablation_modules,)

ablation-dilation: install ## paper table: dilation-rate sets (at 96x96, so that d248 fits)
	$(call run_sweep,ablation_dilation,)

cv: install ## all folds of one dataset (FOLDS, default every fold)
	$(call run_sweep,cv,'data.fold=$(FOLDS)')

datasets: install ## the full model on synthetic, and on ../shared/data/{ckplus48,fer2013} when present
	$(call dataset_job,synthetic,)
	if [ -d ../shared/data/ckplus48 ]; then $(call dataset_job,ckplus,../shared/data/ckplus48); fi
	if [ -d ../shared/data/fer2013 ]; then $(call dataset_job,fer2013,../shared/data/fer2013); fi
	$(BIN)/fer-report logs/datasets/multiruns/$(NOW) --out logs/reports/datasets

paper: ablation-lbp ablation-modules ablation-dilation cv datasets ## every table above

bench: install $(EXPORT_STAMP) ## benchmark suite: LBP, training step per ablation, fast paths, data, inference incl. ONNX Runtime (logs/bench/bench.md); ARGS="--width 1.0"
	$(BIN)/python experiments/bench.py $(ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check fer_attention tests experiments
	$(BIN)/ruff format --check fer_attention tests experiments

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix fer_attention tests experiments
	$(BIN)/ruff format fer_attention tests experiments

clean: ## remove logs, caches and build files (keeps .venv)
	rm -rf logs outputs multirun wandb lightning_logs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
