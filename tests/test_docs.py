"""The documentation: the API page covers every public name, and the site builds cleanly."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import revelo

DOCS = Path(__file__).resolve().parents[1] / "docs"
NAMESPACES = ("pp", "tl", "pl", "datasets", "module", "model")

_DIRECTIVE = re.compile(r"^\s*\.\. (?P<kind>[\w:]+)::\s*(?P<arg>\S*)\s*$")
_ENTRY = re.compile(r"^\s+~?(?P<name>[\w.]+)\s*$")


def documented_names(text: str) -> set[str]:
    """Fully qualified names that api.md documents or lists in an autosummary table."""
    names: set[str] = set()
    module = ""
    in_autosummary = False
    for line in text.splitlines():
        directive = _DIRECTIVE.match(line)
        if directive:
            kind, arg = directive["kind"], directive["arg"]
            in_autosummary = kind == "autosummary"
            if kind in {"currentmodule", "module", "py:currentmodule", "py:module"}:
                module = arg
            elif arg and not in_autosummary:
                names.add(arg if arg.startswith("revelo.") else f"{module}.{arg}")
            continue
        entry = _ENTRY.match(line)
        if in_autosummary and entry and not line.lstrip().startswith(":"):
            name = entry["name"]
            names.add(name if name.startswith("revelo.") else f"{module}.{name}")
        elif in_autosummary and line.strip() == "```":
            in_autosummary = False
    return names


def public_model_methods() -> set[str]:
    """Public methods of REVELO defined by revelo itself (its class or its mixins)."""
    names = set()
    for name, value in inspect.getmembers(revelo.REVELO):
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        owner = next(cls for cls in revelo.REVELO.__mro__ if name in vars(cls))
        if owner.__module__.startswith("revelo"):
            names.add(f"revelo.REVELO.{name}")
    return names


def expected_names() -> set[str]:
    expected = {"revelo.REVELO", "revelo.settings"}
    for namespace in NAMESPACES:
        module = importlib.import_module(f"revelo.{namespace}")
        for name in module.__all__:
            if getattr(revelo, name, None) is getattr(module, name):
                continue  # re-exported at the top level, documented there
            expected.add(f"revelo.{namespace}.{name}")
    return expected | public_model_methods()


def test_documented_names_parser():
    text = """
```{eval-rst}
.. currentmodule:: revelo

.. autosummary::
   :toctree: generated

   pp.preprocess
   REVELO.train
```

```{eval-rst}
.. currentmodule:: revelo.module

.. autoclass:: GaussianEncoder
.. data:: revelo.settings
```
"""
    assert documented_names(text) == {
        "revelo.pp.preprocess",
        "revelo.REVELO.train",
        "revelo.module.GaussianEncoder",
        "revelo.settings",
    }


def test_api_page_lists_every_public_name():
    documented = documented_names((DOCS / "api.md").read_text())
    missing = sorted(expected_names() - documented)
    assert not missing, f"public names missing from docs/api.md: {missing}"


def private_paths(names: set[str]) -> list[str]:
    """Documented names with a private component (``revelo.tl._metrics.X``)."""
    return sorted(name for name in names if any(part.startswith("_") for part in name.split(".")))


def resolve(name: str) -> object:
    """The object a dotted name stands for: the longest importable module, then attributes."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            value = getattr(value, part)
        return value
    raise ImportError(name)


def test_private_paths_are_detected():
    text = """
```{eval-rst}
.. autoclass:: revelo.tl._metrics.MetricScores
.. currentmodule:: revelo

.. autosummary::

   tl.velocity_graph
   tl._utils.knn_indices
```
"""
    assert private_paths(documented_names(text)) == [
        "revelo.tl._metrics.MetricScores",
        "revelo.tl._utils.knn_indices",
    ]


def test_api_page_lists_only_public_paths():
    documented = documented_names((DOCS / "api.md").read_text())
    private = private_paths(documented)
    assert not private, f"docs/api.md documents private paths: {private}"
    unresolved = []
    for name in sorted(documented):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            unresolved.append(name)
    assert not unresolved, f"docs/api.md documents names that do not exist: {unresolved}"


def test_shared_docs_fill_at_the_docstring_indentation():
    from revelo._docs import shared_docs

    params = {"x": "x\n    The input."}

    def plot():
        """Draw.

        Parameters
        ----------
        %(x)s
        """

    class Model:
        def query(self):
            """Ask.

            Parameters
            ----------
            %(x)s
            """

    assert shared_docs(params)(plot).__doc__.endswith("----------\nx\n    The input.")
    filled = shared_docs(params, indent=12)(Model.query).__doc__
    assert "\n            x\n                The input.\n" in filled


def test_unfilled_placeholder_fails():
    from revelo._docs import shared_docs

    def plot():
        """Draw %(colour)s."""

    with pytest.raises(KeyError, match="colour"):
        shared_docs({"color": "color\n    Colour."})(plot)


def test_no_public_docstring_keeps_a_placeholder():
    unfilled = []
    for name in sorted(expected_names()):
        value = resolve(name)
        if "%(" in (getattr(value, "__doc__", None) or ""):
            unfilled.append(name)
    assert not unfilled, f"docstrings with unfilled %(name)s placeholders: {unfilled}"


def test_model_methods_are_found():
    methods = public_model_methods()
    assert {"revelo.REVELO.train", "revelo.REVELO.get_velocity"} <= methods
    # inherited from scvi-tools, documented there
    assert "revelo.REVELO.view_anndata_setup" not in methods


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("sphinx_book_theme")
    pytest.importorskip("sphinx_autodoc_typehints")
    env = {**os.environ, "REVELO_DOCS_INTERSPHINX": "0", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    html = (tmp_path / "html" / "model.html").read_text()
    assert "reparameterization" in html.lower()
    assert (tmp_path / "html" / "generated" / "revelo.REVELO.html").is_file()
