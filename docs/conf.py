"""Sphinx configuration for the revelo documentation.

Build with ``python -m sphinx -W -n -b html docs docs/_build/html`` (``make docs``): warnings are
errors and every cross-reference must resolve.
"""

from __future__ import annotations

import builtins
import os
import re
import warnings
from datetime import date
from importlib.metadata import version as package_version
from pathlib import Path

# sphinx-autodoc-typehints calls an API that Sphinx 9 deprecates; the notice is not ours to fix.
warnings.filterwarnings("ignore", message=".*set_application.*is deprecated", category=Warning)

# -- Project -------------------------------------------------------------------------------------
project = "revelo"
author = "The revelo developers"
copyright = f"{date.today().year}, {author}"
release = package_version("revelo")
version = ".".join(release.split(".")[:2])

# -- Extensions ----------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx_autodoc_typehints",  # after napoleon, so it sees the converted fields
]

# reStructuredText first: autosummary writes its stubs with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

nitpicky = True

# -- MyST and notebooks --------------------------------------------------------------------------
myst_enable_extensions = ["amsmath", "colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# Notebooks are committed with their outputs; the docs build never runs them.
nb_execution_mode = "off"
nb_merge_streams = True

# -- Autodoc, autosummary, napoleon, type hints ---------------------------------------------------
autosummary_generate = True  # stubs go to docs/generated (git-ignored)
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
# Keep the signature's own spelling (``AnnData``, ``np.ndarray``), not expanded aliases.
autodoc_preserve_defaults = True

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_param = True
napoleon_use_rtype = True
napoleon_use_ivar = True
# Our "Returns" sections are prose (types live only in the signature, see STYLE.md); napoleon
# would read their first line as a type. Rendering the section as a plain titled block keeps
# the prose, and sphinx-autodoc-typehints adds the return type from the annotation.
napoleon_custom_sections = [("Returns", "returns_as_prose")]

typehints_defaults = "comma"
typehints_use_signature = False
typehints_use_signature_return = False
typehints_document_rtype = True
always_use_bars_union = True

# -- Cross-references to other projects -----------------------------------------------------------
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/pandas-docs/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "lightning": ("https://lightning.ai/docs/pytorch/stable", None),
}
intersphinx_timeout = 10

# Offline builds (CI, the test suite, machines without internet) cannot download the
# inventories above, and an unreachable inventory is a warning that -W turns into an error.
# Unless REVELO_DOCS_INTERSPHINX=1 or the build runs on Read the Docs, intersphinx is off and
# references into the projects above render as plain code (see ``_external_as_text``), while
# references inside revelo stay checked by -n.
_ON_READTHEDOCS = os.environ.get("READTHEDOCS") == "True"
if os.environ.get("REVELO_DOCS_INTERSPHINX", "1" if _ON_READTHEDOCS else "0") != "1":
    intersphinx_mapping = {}

_EXTERNAL_PACKAGES = {
    "anndata",
    "builtins",
    "collections",
    "lightning",
    "matplotlib",
    "mpl",
    "np",
    "numpy",
    "os",
    "pandas",
    "pathlib",
    "pd",
    "scanpy",
    "scipy",
    "scvi",
    "torch",
    "typing",
}
_TYPING_NAMES = {"Any", "Callable", "Iterable", "Literal", "Mapping", "Sequence", "Self"}


def _external_as_text(app, env, node, contnode):
    """Resolve a reference into a non-revelo package to its plain text when offline."""
    if app.config.intersphinx_mapping or node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    head = target.split(".")[0]
    if (
        head in _EXTERNAL_PACKAGES
        or target in _TYPING_NAMES
        or (head == target and hasattr(builtins, target))
        or target in {"None", "True", "False"}
    ):
        return contnode
    return None


# -- Tutorials -----------------------------------------------------------------------------------
# docs/tutorials links to the repository's tutorials/ folder. Until it holds a notebook, the
# toctree that globs it would warn (an error under -W), so the page says so instead.
_TOCTREE = re.compile(r"```\{toctree\}.*?```", re.DOTALL)


def _tutorials_placeholder(app, docname, source):
    if docname != "tutorials":
        return
    folder = Path(app.srcdir) / "tutorials"
    if not any(folder.glob("*.ipynb")) and not any(folder.glob("*.md")):
        source[0] = _TOCTREE.sub("No tutorials have been added yet.", source[0])


def setup(app):
    app.connect("missing-reference", _external_as_text)
    app.connect("source-read", _tutorials_placeholder)


# -- HTML ----------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "revelo"
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
