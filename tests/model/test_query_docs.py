"""The model's shared query parameter text is filled into every docstring that uses it."""

from __future__ import annotations

import inspect

import revelo
from revelo.model._docs import _QUERY_DOCS


def test_query_docstrings_are_filled():
    methods = dict(inspect.getmembers(revelo.REVELO, inspect.isfunction))
    for name, method in methods.items():
        assert "%(" not in (method.__doc__ or ""), name
    # The shared text reaches the queries, each parameter on its own numpydoc entry.
    for name in ("get_velocity", "get_latent_time", "get_marginal_ll", "get_permutation_scores"):
        doc = methods[name].__doc__
        assert "\n        adata\n            AnnData with the same genes" in doc, name
    assert _QUERY_DOCS["n_samples"].split("\n")[1].strip() in methods["get_velocity"].__doc__
