"""The tutorials' stored outputs hold no local paths and no library noise.

The documentation shows the notebooks as they were saved, so an absolute path of the machine
that ran them (a home folder, a build or temporary folder) or a library's warning about its own
set-up would be published with them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.ipynb"))

# An absolute path under a home, build or temporary folder (POSIX, macOS or Windows).
LOCAL_PATH = re.compile(
    r"(?<![\w.~-])(/(root|home|Users|work|tmp|var/folders|private|opt|build|scratch)/"
    r"|[A-Za-z]:\\\\?(Users|Documents and Settings)\\)"
)
NOISE = ("TqdmWarning", "IProgress not found", "Seed set to", "💡 Tip:")


def _texts(notebook: dict) -> list[tuple[int, str]]:
    """Every text output (streams, errors, plain-text and HTML results) with its cell number."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            parts = [output.get("text", ""), *output.get("traceback", [])]
            data = output.get("data", {})
            parts += [data.get(kind, "") for kind in ("text/plain", "text/html", "text/markdown")]
            for part in parts:
                found.append((number, "".join(part) if isinstance(part, list) else part))
    return found


def unclean_outputs(notebook: dict) -> list[str]:
    """The outputs that show a local path or library noise, as ``cell <n>: <excerpt>``."""
    problems = []
    for number, text in _texts(notebook):
        for match in LOCAL_PATH.finditer(text):
            start = max(match.start() - 30, 0)
            problems.append(f"cell {number}: ...{text[start : match.end() + 40]!r}")
        problems += [f"cell {number}: {noise!r}" for noise in NOISE if noise in text]
    return problems


@pytest.mark.parametrize(
    "text",
    [
        "/root/.cache/revelo/pancreas.h5ad",
        "/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning",
        "/tmp/ipykernel_8041/3293498592.py:1: UserWarning: Dropping 322 genes",
        "see /home/ada/data.h5ad",
        "/Users/ada/revelo/x.py",
        "C:\\Users\\ada\\revelo",
    ],
)
def test_local_paths_are_recognised(text):
    notebook = {"cells": [{"outputs": [{"output_type": "stream", "text": [text]}]}]}
    assert unclean_outputs(notebook)


@pytest.mark.parametrize(
    "text",
    [
        "obsm: 'X_umap'",
        "ratio 3/4 of cells",
        "layers['Ms']/var['Ms_scale']",
        "https://x.org/tmp/a",
    ],
)
def test_ordinary_text_passes(text):
    notebook = {"cells": [{"outputs": [{"output_type": "stream", "text": [text]}]}]}
    assert unclean_outputs(notebook) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_outputs_hold_no_local_paths_or_library_noise(path):
    notebook = json.loads(path.read_text())
    problems = unclean_outputs(notebook)
    assert not problems, (
        f"{path.name} was saved with outputs that show local paths or library noise; rerun it "
        "with `python tutorials/run_all.py " + path.stem + "`:\n" + "\n".join(problems)
    )
