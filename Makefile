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

# The browser tests (tests/browser) drive Debian's Chromium, never a downloaded browser. CI is "set"
# unless empty, 0, false or no (the same rule as tests/browser/conftest.py).
IS_CI := $(if $(filter-out 0 false False FALSE no,$(CI)),1,)

.PHONY: run test lint typecheck unit e2e bench bench-smoke infra-check clean help browser

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

# Chromium for the browser tests: present (CHROMIUM_PATH or `chromium` on PATH) -> nothing to do;
# missing -> installed from Debian's package, but only as root and under CI or when asked
# (INSTALL_BROWSER=1); otherwise say plainly that the browser tests will be skipped. Under CI a
# Chromium that cannot be installed is an error: CI must never skip them.
browser:
	@if { [ -n "$${CHROMIUM_PATH:-}" ] && [ -x "$${CHROMIUM_PATH}" ]; } || command -v chromium >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && [ -n "$(IS_CI)$(INSTALL_BROWSER)" ]; then \
	  echo "Installing Chromium (Debian package) for the browser tests..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    && command -v chromium >/dev/null; } || { echo "ERROR: installing Chromium failed (see above)." >&2; exit 1; }; \
	elif [ -n "$(IS_CI)" ]; then \
	  echo "ERROR: Chromium is not installed and cannot be installed here (needs root for apt-get)," \
	       "but CI must run the browser tests." >&2; \
	  exit 1; \
	else \
	  echo "NOTE: Chromium is not installed, so the browser tests (tests/browser) will be SKIPPED."; \
	  echo "      Install it with 'sudo apt-get install chromium', 'make browser INSTALL_BROWSER=1' as root,"; \
	  echo "      or point CHROMIUM_PATH at a Chromium binary."; \
	fi

test: deps browser .venv-infra/.installed .venv-py313/.installed lint typecheck
	$(PY) -m pytest

bench: deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@test -x .venv-litellm/bin/litellm || { $(PYTHON) -m venv .venv-litellm && \
	  .venv-litellm/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-litellm.txt; } || \
	  echo "NOTE: LiteLLM could not be installed; bench/results will say why instead of comparing."
	$(PY) -m bench

bench-smoke: deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) -m bench --smoke

infra-check: .venv-infra/.installed
	CHECKOV=.venv-infra/bin/checkov bash infra/check.sh
	.venv-infra/bin/python tests/infra/arm_schema.py --check

clean:
	rm -rf $(VENV) .venv-infra .venv-py313 node_modules .mypy_cache .ruff_cache .pytest_cache
