# make repro: install (first time) and run the whole DVC pipeline; make test: install and run the tests;
# make test-paper: the paper profile's dry run.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: install repro test test-paper benchmark clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

repro: $(STAMP)
	dvc repro
	dvc checkout --relink -q   # cache.type hardlink: DVC copies new outputs into the cache; relinking stores them once

test: $(STAMP)
	python -m pytest

test-paper: $(STAMP)   # every stage of configs/paper.yaml on CPU, counts shrunk (tests/e2e/test_paper_profile.py)
	python -m pytest -m paper -n 0   # one process with every core's threads (one module: workers would not help)

benchmark: $(STAMP)
	python -m benchmarks.pgd_throughput
	python -m benchmarks.recipe_epochs
	python -m benchmarks.resnet18_throughput
	python -m benchmarks.patch_throughput
	python -m benchmarks.detr_throughput

clean-venv:
	rm -rf $(VENV)
