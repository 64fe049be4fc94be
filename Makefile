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
TEST_WORKERS ?= 2
# The demo's cash forecast: a refit every 6 months on 6 months of rows, small boosters.
DEMO_FORECAST_SET ?= --set refit_months=6 --set train_months=6 --set max_train_rows=300000 \
	--set lightgbm.num_boost_round=40

.PHONY: help install demo test lint format bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt setup.py features/trees/_kernel.cpp
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,dask]"
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install arscore with pinned versions

demo: $(STAMP) ## generate a history, build the dataset, train, promote, forecast cash, load, score, serve
	$(BIN)/arscore generate --claims $(DEMO_CLAIMS) --seed 7 --out $(DEMO_DIR)/history
	$(BIN)/arscore dataset --history $(DEMO_DIR)/history --out $(DEMO_DIR)/dataset.parquet
	$(BIN)/arscore train --snapshots $(DEMO_DIR)/dataset.parquet
	$(BIN)/arscore promote challenger --reason "make demo: first champion on the demo history"
	$(BIN)/arscore models
	$(BIN)/arscore forecast train --history $(DEMO_DIR)/history --origins 3 $(DEMO_FORECAST_SET)
	$(BIN)/arscore promote challenger --model-name arscore-cash --reason "make demo: first cash forecast"
	$(BIN)/arscore forecast cash --history $(DEMO_DIR)/history --as-of 2026-09-30 --weeks 13 \
		--by payer_type,responsibility --out $(DEMO_DIR)/cash_forecast.csv
	$(BIN)/arscore load --history $(DEMO_DIR)/history
	BIN=$(BIN) DEMO_DIR=$(DEMO_DIR) bash scripts/demo_serve.sh

lint: $(STAMP) ## ruff (lint + format check), the import contracts, no import cycles
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_import_cycles.py

format: $(STAMP) ## format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint ## lint, then the whole test suite in TEST_WORKERS processes (TEST_WORKERS=0: serial)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks in bench/ (prints ratios; see bench/README.md)
	$(BIN)/python bench/bench_dataset.py

clean: ## remove the virtualenv, caches and local demo data (keeps models/README.md)
	rm -rf $(VENV) .pytest_cache .ruff_cache data var
