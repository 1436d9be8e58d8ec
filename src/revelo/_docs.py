"""Shared parameter text for docstrings, filled into ``%(name)s`` placeholders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


def fill_docs(params: Mapping[str, str]) -> Callable[[_F], _F]:
    """A decorator that fills a docstring's ``%(name)s`` placeholders from ``params``.

    A placeholder sits at its parameter's indentation in the docstring; continuation lines in
    ``params`` carry the docstring's indentation already.
    """

    def decorate(func: _F) -> _F:
        if func.__doc__ is not None:
            func.__doc__ = func.__doc__ % params
        return func

    return decorate
