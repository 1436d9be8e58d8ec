"""Shared parameter text for docstrings: docrep fills the ``%(name)s`` placeholders.

Shared text is written at indentation 0, as it reads in a dedented docstring: the parameter name
on one line, its description indented by four spaces below. A placeholder stands at the
parameter's indentation in the docstring.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from docrep import DocstringProcessor

_F = TypeVar("_F", bound=Callable[..., Any])


def shared_docs(params: Mapping[str, str], *, indent: int | None = None) -> Callable[[_F], _F]:
    """A decorator that fills a docstring's ``%(name)s`` placeholders from ``params``.

    Parameters
    ----------
    params
        Shared text by placeholder name, written at indentation 0.
    indent
        Indentation of the docstrings it decorates: the text's continuation lines are indented
        by this much (8 for a method's docstring). `None` dedents the docstring first instead,
        as scvi-tools' ``setup_anndata_dsp.dedent`` does.

    Returns
    -------
    The decorator. It raises a :class:`KeyError` when a docstring names a placeholder that
    ``params`` lacks, so that no placeholder stays unfilled.
    """
    processor = DocstringProcessor(**params)
    fill = processor.dedent if indent is None else processor.with_indent(indent)

    def decorate(func: _F) -> _F:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SyntaxWarning)
            func = fill(func)
        unknown = [str(w.message) for w in caught if issubclass(w.category, SyntaxWarning)]
        if unknown:
            msg = (
                f"The docstring of {func.__qualname__} has placeholders without shared text: "
                f"{', '.join(unknown)}. Add the text to the shared parameters or fix the name."
            )
            raise KeyError(msg)
        return func

    return decorate
