# Two commands on a fresh machine with Python 3.11:
#   make demo   sets up .venv and runs the demo on the embedded defaults (no keys needed)
#   make test   sets up .venv (with the dev tools) and runs lint, types and the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench serve clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m bot demo

lint: setup
	$(VENV)/bin/ruff check bot tests bench
	$(VENV)/bin/ruff format --check bot tests bench

typecheck: setup
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest -n 2

serve: setup
	$(PY) -m bot serve

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .ideabot .mypy_cache .ruff_cache
