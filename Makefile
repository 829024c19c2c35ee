# billrun: `make demo` runs a real bill run, `make test` the whole suite.
# Both create .venv and install what they need; only Python 3.11+ is assumed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: help install demo test lint typecheck format bench docs clean chromium

help:
	@echo "make demo       a real bill run with zero configuration (embedded PostgreSQL)"
	@echo "make test       lint, type checks and the whole test suite"
	@echo "make bench      benchmarks (see docs/benchmarks.md)"
	@echo "make docs       regenerate docs/import-schema.json"
	@echo "make format     apply ruff's formatting"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "billrun needs Python 3.11+, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/billrun demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The console's browser tests drive Debian's Chromium (Playwright cannot download
# its own browser here): installed when missing and we may, else a clear refusal.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
		else \
			echo "the console's browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'" >&2; \
			exit 1; \
		fi; \
	fi

test: lint typecheck chromium
	$(BIN)/python -m pytest -q
	$(BIN)/python -m entrypoints.docs --check

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/bill_run.py
	$(BIN)/python bench/projections.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/cli_reads.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/console.py

docs: $(STAMP)
	$(BIN)/python -m entrypoints.docs

clean:
	rm -rf $(VENV) .billrun .pytest_cache .mypy_cache .ruff_cache
