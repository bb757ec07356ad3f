# fer-attention: `make train` trains on the built-in synthetic faces, `make test` runs the tests.
# Both set up .venv on first use (installs torch 2.14.1 / torchvision 0.29.1 and the package).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-all lint format clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev tools (once; redone when pyproject.toml changes)

train: install ## train the paper's network on the built-in synthetic faces (about 3 min on 2 CPU cores); ARGS= adds overrides
	$(BIN)/fer-train experiment=quickstart $(ARGS)

test: install ## run the tests (slow ones excluded; about 5 min on 2 CPU cores)
	$(BIN)/pytest -m "not slow" -q $(ARGS)

test-all: install ## run every test, the slow ones too
	$(BIN)/pytest -q $(ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check fer_attention tests experiments
	$(BIN)/ruff format --check fer_attention tests experiments

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix fer_attention tests experiments
	$(BIN)/ruff format fer_attention tests experiments

clean: ## remove logs, caches and build files (keeps .venv)
	rm -rf logs outputs multirun wandb lightning_logs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
