"""The tutorial notebooks: well formed, and they run from top to bottom at reduced size."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def _runner():
    """``tutorials/run_all.py``, which also executes the notebooks for the committed versions."""
    spec = importlib.util.spec_from_file_location("tutorials_run_all", TUTORIALS / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_tutorials():
    assert {path.stem for path in NOTEBOOKS} >= {
        "quickstart",
        "reparameterization",
        "simulation_benchmark",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_well_formed(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    # the documentation takes the page title from the first cell's heading
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert re.match(r"# \S", first.source)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert _runner().FAST_VARIABLE in code, "the notebook must offer a reduced run for CI"
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, "the notebook was saved with an error in its outputs"


# About a minute for all three on two idle cores; a cell may take up to 600 s on a busy machine.
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # CI machines have 2 cores; one torch thread per kernel avoids oversubscription.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    # raises CellExecutionError, with the failing cell's traceback, when a cell fails
    _runner().execute(path, fast=True, output=tmp_path / path.name, timeout=600)
    assert (tmp_path / path.name).is_file()


def test_saving_in_place_needs_ipywidgets(monkeypatch, capsys):
    """Without ipywidgets every saved notebook would show tqdm's warning: the runner refuses."""
    runner = _runner()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "ipywidgets" else find_spec(name, *args),
    )
    executed = []
    monkeypatch.setattr(runner, "execute", lambda *args, **kwargs: executed.append(args))
    assert runner.main(["quickstart"]) == 2
    assert executed == []
    assert 'pip install -e ".[doc]"' in capsys.readouterr().err
