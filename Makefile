# Zicht: one-command tasks. `make help` lists them.
# Needs only Python 3.11, pip and make: the first target bootstraps uv into .tools/ and
# installs the locked environment into .venv/ (no Python download, no global installs).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= region
SEED ?= 7
export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help setup browser postgres run test lint format bench clean

help: ## List the tasks
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced ## Install the locked environment into .venv (once)

run: setup ## The main job: world, features, benchmark, SHAP, predict, publish and reports for all tasks (SCALE=region)
	$(BIN)/zicht run --scale $(SCALE) --seed $(SEED)

browser: ## Install Debian's Chromium for the report's browser test (when it is missing)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO timeout 900 apt-get update -qq && $$SUDO timeout 900 apt-get install -y -qq chromium; }

postgres: ## Install Debian's PostgreSQL for `zicht server` and its tests (when it is missing)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO timeout 900 apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq postgresql; }

test: setup browser postgres ## Run the test suite (fails when a test fails or when no test ran)
	$(BIN)/python -m pytest

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup ## Time and measure peak memory of world generation per scale (SCALES="tiny region")
	$(BIN)/python benchmarks/generate.py $(SCALES)

clean: ## Remove the environments and caches (not ./data)
	rm -rf .tools $(VENV) .pytest_cache .ruff_cache .mypy_cache
