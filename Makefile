# Two commands do everything on a fresh machine:
#   make run   - install what is missing, start Azurite + the simulator (when no Azure endpoint is set)
#                + the function app on http://localhost:7071; Ctrl-C stops it all
#   make test  - install what is missing, then lint, type-check and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Azure's own Python worker (used to check that function_app.py indexes as in Azure) needs Python 3.13.
PY313 ?= $(shell for p in "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 "$$(command -v python3.13)"; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

.PHONY: run test lint typecheck unit e2e bench bench-smoke infra-check clean help

help:
	@echo "make run    start the gateway locally on http://localhost:7071"
	@echo "make test   run lint, type checks and the full test suite"
	@echo "make bench  run the benchmarks (results in bench/results/)"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.venv-infra/.installed: requirements-infra.txt
	@test -x .venv-infra/bin/python || $(PYTHON) -m venv .venv-infra
	.venv-infra/bin/pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	@touch $@

.venv-py313/.installed: requirements.txt requirements-worker.txt
	@if [ -z "$(PY313)" ]; then \
	  echo "NOTE: Python 3.13 not found (set PY313=/path/to/python3.13); the Azure worker indexing test will be skipped."; \
	else \
	  (test -x .venv-py313/bin/python || "$(PY313)" -m venv .venv-py313) && \
	  .venv-py313/bin/pip install --quiet --disable-pip-version-check -r requirements-worker.txt && \
	  touch $@; \
	fi

deps: $(VENV)/.installed node_modules/.installed

run: deps
	$(PY) -m devhost.run

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test: deps .venv-infra/.installed .venv-py313/.installed lint typecheck
	$(PY) -m pytest

bench: deps
	$(PY) -m bench

bench-smoke: deps
	$(PY) -m bench --smoke

infra-check: .venv-infra/.installed
	CHECKOV=.venv-infra/bin/checkov bash infra/check.sh

clean:
	rm -rf $(VENV) .venv-infra .venv-py313 node_modules .mypy_cache .ruff_cache .pytest_cache
