# Two commands to start:  make run  (a real LoadGen run)   and   make test
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
# The Pythons every dependency has wheels for (setup.py's python_requires says the same)
SUPPORTED_PYTHONS := 3.11 3.12 3.13
VENV := .venv
PY := $(VENV)/bin/python
SCENARIO ?= SingleStream
ARGS ?=
# The commands find the dataset themselves ($$SEQ2CNN_DATASET, ../shared/data beside the checkout, or the
# archive 'python -m qsl.download' saved); DATASET=... points them at another copy.
ifdef DATASET
export SEQ2CNN_DATASET := $(DATASET)
endif

.PHONY: install run evaluate test test-fast campaign docker-test

install: $(VENV)/.installed

# torch is pinned to the tested release before the project so that pip keeps it.
$(VENV)/.installed: setup.py
	@version=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { \
	    echo "make: cannot run $(PYTHON): install Python $(SUPPORTED_PYTHONS) (any one), or name it: make PYTHON=python3.12" >&2; exit 2; }; \
	case " $(SUPPORTED_PYTHONS) " in *" $$version "*) ;; *) \
	    echo "make: $(PYTHON) is Python $$version; this project installs on Python $(SUPPORTED_PYTHONS), for which every dependency has wheels: name one, e.g. make PYTHON=python3.12" >&2; exit 2;; esac
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,ray,gpu,onnx,openvino]'
	touch $@

evaluate: install
	$(PY) -m model.evaluate $(ARGS)

# The whole suite (what CI runs).
test: install
	$(PY) -m pytest -q $(ARGS)

# The edit-test loop: everything but the tests marked slow.
test-fast: install
	$(PY) -m pytest -q -m "not slow" $(ARGS)

run: install
	$(PY) run.py --scenario $(SCENARIO) $(ARGS)

# A whole submission: every run the system type needs, the tree, its check and report (ARGS=--quick: minutes).
SYSTEM ?= configs/systems/example.yaml
campaign: install
	$(PY) -m tools.campaign --system $(SYSTEM) $(ARGS)

# The Docker check (not part of make test): build the image and run it as a user would (docker/test.sh).
docker-test:
	SEQ2CNN_DOCKER_SUITE=bookworm docker/test.sh
	SEQ2CNN_DOCKER_SUITE=trixie docker/test.sh
