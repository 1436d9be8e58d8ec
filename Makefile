# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= demo_out
PYTEST_ARGS ?=
# Real data sets of the development machine, next to the repository; revelo itself reads
# REVELO_DATA_DIR, else its per-user cache.
SHARED_DATA := $(abspath ../shared/data)
DATA_ENV := $(if $(wildcard $(SHARED_DATA)),REVELO_DATA_DIR=$${REVELO_DATA_DIR:-$(SHARED_DATA)})

.PHONY: demo test install lint docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned first so that later installs keep the local CPU build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(DATA_ENV) OMP_NUM_THREADS=1 $(VENV)/bin/revelo demo --out $(OUT)

test: $(STAMP)
	$(DATA_ENV) OMP_NUM_THREADS=1 MPLBACKEND=Agg $(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[doc]"
	$(PY) -m sphinx -W -n -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(DATA_ENV) OMP_NUM_THREADS=1 $(PY) -m benchmarks.simulation

clean:
	rm -rf $(VENV) docs/_build $(OUT)
