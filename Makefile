SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_PATHS := gateway tests run.py
PYTEST_ARGS ?=

PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

.PHONY: help venv services browser hsm lint test test-pg chaos chaos-pg contract bench demo db-upgrade fmt clean

help: ## List targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@echo "  Pass extra pytest options with PYTEST_ARGS='...'"

venv: $(STAMP) ## Create .venv and install the package with dev extras

# A file target keyed on pyproject.toml so repeat runs skip pip entirely.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# swagger-ui-bundle (Swagger UI 4, which cannot render OpenAPI 3.1) and its successor
	@# swagger-ui-bundle-v2 share one import name: an older .venv drops both, the install brings back v2.
	@if $(BIN)/python -m pip show --quiet swagger-ui-bundle >/dev/null 2>&1; then \
	  $(BIN)/python -m pip uninstall --quiet -y swagger-ui-bundle swagger-ui-bundle-v2; fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

services: ## Make sure RabbitMQ (and PostgreSQL if installed) are running
	bash scripts/ensure-services.sh

browser: ## Make sure Debian's chromium is installed for the browser tests
	bash scripts/ensure-browser.sh

hsm: ## Make sure SoftHSM2 is installed for the HSM signing tests
	bash scripts/ensure-hsm.sh

lint: venv ## ruff check, ruff format --check, strict mypy over gateway/ and tests/ (files in [tool.mypy])
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

test: venv services browser hsm ## Run the test suite, browser tests included (without chaos, contract, bench)
	$(BIN)/python -m pytest -m "not chaos and not bench and not contract" -q $(PYTEST_ARGS)

test-pg: ## The default suite with every test's database on PostgreSQL (PG_URL names the server)
	GATEWAY_DATABASE_URL=$(PG_URL) $(MAKE) test

chaos: venv services ## Run the chaos tests (slow: kills processes, cuts the broker)
	$(BIN)/python -m pytest -m chaos -q $(PYTEST_ARGS)

chaos-pg: ## The chaos tests with every test's database on PostgreSQL (PG_URL names the server)
	GATEWAY_DATABASE_URL=$(PG_URL) $(MAKE) chaos

contract: venv services ## Schemathesis over /openapi.json: the document says exactly what the API does
	$(BIN)/python -m pytest -m contract -q $(PYTEST_ARGS)

bench: venv services ## Run the benchmarks; writes BENCHMARKS.md
	bash scripts/ensure-bench-tools.sh
	$(BIN)/python -m pytest -m bench -q -s $(PYTEST_ARGS)

demo: venv services ## Run the end-to-end demo (BANKS=60: with 60 banks; PLATFORMS=1: through X-Road and an LGSP)
	$(BIN)/python run.py demo $(if $(BANKS),--banks $(BANKS)) $(if $(PLATFORMS),--platforms)

db-upgrade: venv ## Apply database migrations
	$(BIN)/python run.py db upgrade

fmt: venv ## Format and auto-fix lint findings
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

clean: ## Remove var/ and caches (keeps .venv)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
