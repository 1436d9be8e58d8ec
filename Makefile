# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
OUT ?= demo_out
PYTEST_ARGS ?=
# Real data sets of the development machine, next to the repository; revelo itself reads
# REVELO_DATA_DIR, else its per-user cache.
SHARED_DATA := $(abspath ../shared/data)
DATA_ENV := $(if $(wildcard $(SHARED_DATA)),REVELO_DATA_DIR=$${REVELO_DATA_DIR:-$(SHARED_DATA)})

.PHONY: demo test install lint docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned first so that later installs keep the local CPU build. Bytecode is compiled on
# first import instead of for every installed file (most of which are never imported).
PIP_INSTALL := $(PY) -m pip install --quiet --no-compile

# The package and its dependencies: what `make demo` and `make docs` need.
$(STAMP): pyproject.toml | $(PY)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e .
	touch $(STAMP)

# ... and the test and development extras (scVelo, CellRank, pytest, ruff, ...).
$(TEST_STAMP): $(STAMP)
	$(PIP_INSTALL) -e ".[test,dev]"
	touch $(TEST_STAMP)

install: $(TEST_STAMP)

demo: $(STAMP)
	$(DATA_ENV) OMP_NUM_THREADS=1 $(VENV)/bin/revelo demo --out $(OUT)

test: $(TEST_STAMP)
	$(DATA_ENV) OMP_NUM_THREADS=1 MPLBACKEND=Agg $(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

docs: $(STAMP)
	$(PIP_INSTALL) -e ".[doc]"
	$(PY) -m sphinx -W -n -b html docs docs/_build/html

bench: $(STAMP)
	$(PIP_INSTALL) -e ".[bench]"
	$(DATA_ENV) OMP_NUM_THREADS=1 $(PY) -m benchmarks.simulation

clean:
	rm -rf $(VENV) docs/_build $(OUT)
