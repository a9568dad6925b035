# Set-up and the README's two commands: `make run` and `make test`.
# TORCH pins the torch build; on this project's machines torch==2.13.0 is a CPU wheel on disk.
# Elsewhere, TORCH_INDEX=https://download.pytorch.org/whl/cpu avoids the multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
RECIPE ?= recipes/pointrec.yaml
BIN := $(VENV)/bin

.PHONY: setup models run test

setup: $(VENV)/.installed models

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

models: $(VENV)/.installed
	$(BIN)/mint-distill models pull

run: setup
	$(BIN)/mint-distill run $(RECIPE)

test: setup
	$(BIN)/python -m pytest
