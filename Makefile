# seq2seq-serve: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
MODELS_DIR ?= models
PYTEST_ARGS ?=

.PHONY: help venv serve defaults test lint typecheck unit e2e system-deps clean bench train-default eval-default

help:
	@echo "make serve   - set up, build missing default model packages, serve on $(HOST):$(PORT)"
	@echo "make test    - set up and run lint, type checks and the whole test suite"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[export,eval,bench,test]'
	touch $@

venv: $(BIN)/.installed

# Debian packages the tests use as real peers (Prometheus server + promtool).
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

defaults: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m models.defaults --models-dir $(MODELS_DIR)

serve: defaults
	$(BIN)/python -m service --host $(HOST) --port $(PORT) --models-dir $(MODELS_DIR)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: venv system-deps lint typecheck
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
