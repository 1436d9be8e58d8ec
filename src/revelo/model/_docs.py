"""Parameter text shared by the model's queries (``%(name)s`` placeholders)."""

from __future__ import annotations

from revelo._docs import shared_docs

_QUERY_DOCS: dict[str, str] = {
    "adata": """\
adata
    AnnData with the same genes as the model's; defaults to the model's.""",
    "indices": """\
indices
    Cells to use; all by default.""",
    "n_samples": """\
n_samples
    Posterior draws of z to average.""",
    "batch_size": """\
batch_size
    Cells per minibatch of the query.""",
    "gene_list": """\
gene_list
    Names of the genes to return, in ``adata``'s order whatever the order given; all by
    default. Unknown names raise a ``KeyError``.""",
    "return_mean": """\
return_mean
    Return the mean over the ``n_samples`` draws; ``False`` returns every draw.""",
    "return_numpy": """\
return_numpy
    Return an array instead of a DataFrame indexed by cells with genes as columns. ``None``
    (the default) means a DataFrame, except for separate draws (``n_samples > 1`` and
    ``return_mean=False``), which always come as an array.""",
    "n_samples_overall": """\
n_samples_overall
    Return this many cells, drawn with replacement from ``indices`` (from torch's global
    generator, which ``revelo.settings.seed`` seeds), one posterior draw each: ``n_samples``
    is then 1. The rows are named after the cells drawn.""",
    "returns_draws": """\
With ``n_samples > 1`` and ``return_mean=False``, an array draws × cells × genes. Otherwise
cells × genes: a DataFrame (cell names as index, gene names as columns), or an array with
``return_numpy=True``. The arguments and the shapes are VeloVI's.""",
}

#: Fills the shared query parameters into a model method's docstring (indented by 8).
query_docs = shared_docs(_QUERY_DOCS, indent=8)
