# resync-sword: `make demo` runs the built-in example, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help demo test lint format bench clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## Mirror the built-in local sources (ResourceSync, OAI-PMH, SAF) into local destinations
	$(PY) tools/demo.py
	$(PY) tools/demo_oai.py

test: $(STAMP) ## Run the unit and integration tests
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff (lint + format check) and mypy on sync/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy sync

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) ## Benchmark against the sequential approach (prints a table)
	$(PY) -m tools.bench

clean: ## Remove the virtual environment, caches and local state
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find state -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
