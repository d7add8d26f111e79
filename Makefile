# Two commands to start:  make run  (a real LoadGen run)   and   make test
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The labeled IMDB archive beside the checkout if there is one, else where
# `python -m qsl.download` saves the official archive. Override with DATASET=...
DATASET ?= $(firstword $(wildcard ../shared/data/aclImdb_labeled.tar.gz) $(HOME)/.cache/seq2cnn/aclImdb_v1.tar.gz)
SCENARIO ?= SingleStream
ARGS ?=

.PHONY: install run evaluate test

install: $(VENV)/.installed

# torch is pinned to the tested release before the project so that pip keeps it.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

evaluate: install
	$(PY) -m model.evaluate --dataset-path "$(DATASET)" $(ARGS)

test: install
	SEQ2CNN_TEST_DATASET="$(DATASET)" $(PY) -m pytest -q $(ARGS)

run: install
	$(PY) run.py --scenario $(SCENARIO) --dataset-path "$(DATASET)" $(ARGS)
