# arscore: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := data/demo
DEMO_CLAIMS ?= 20000
PYTEST_ARGS ?=

.PHONY: help install demo test lint format bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt setup.py features/trees/_kernel.cpp
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,dask]"
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install arscore with pinned versions

demo: $(STAMP) ## generate a history, build the dataset, train, promote, load, score, serve
	$(BIN)/arscore generate --claims $(DEMO_CLAIMS) --seed 7 --out $(DEMO_DIR)/history
	$(BIN)/arscore dataset --history $(DEMO_DIR)/history --out $(DEMO_DIR)/dataset.parquet
	$(BIN)/arscore train --snapshots $(DEMO_DIR)/dataset.parquet
	$(BIN)/arscore promote challenger --reason "make demo: first champion on the demo history"
	$(BIN)/arscore models
	$(BIN)/arscore load --history $(DEMO_DIR)/history
	BIN=$(BIN) DEMO_DIR=$(DEMO_DIR) bash scripts/demo_serve.sh

lint: $(STAMP) ## ruff (lint + format check) and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP) ## format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint ## lint, then the whole test suite
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks in bench/ (prints ratios; see bench/README.md)
	$(BIN)/python bench/bench_dataset.py

clean: ## remove the virtualenv, caches and local demo data (keeps models/README.md)
	rm -rf $(VENV) .pytest_cache .ruff_cache data var
