# Two commands on a fresh machine with Python 3.11:
#   make demo   sets up .venv and runs the demo on the embedded defaults (no keys needed)
#   make test   sets up .venv (with the dev tools) and runs lint, types and the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench serve clean build-IdeabotFunction

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
	$(VENV)/bin/ruff check bot tests bench deploy
	$(VENV)/bin/ruff format --check bot tests bench deploy

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

# `sam build` (template.yaml, BuildMethod: makefile) runs this with ARTIFACTS_DIR set: the project
# and its dependencies for Lambda's python3.12 runtime, without what Lambda never loads
# (deploy/lambda_bundle.py; bench/bundle_size.py measures it). LAMBDA_BUNDLE_FLAGS=--with-llm
# keeps LangChain for LLM_MODEL.
build-IdeabotFunction:
	$(PYTHON) deploy/lambda_bundle.py "$(ARTIFACTS_DIR)" $(LAMBDA_BUNDLE_FLAGS)
	# The flag file, if the team keeps one here (FEATURE_FLAGS_FILE=flags.json in template.yaml).
	if [ -f flags.json ]; then cp flags.json "$(ARTIFACTS_DIR)/"; fi
