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
}

#: Fills the shared query parameters into a model method's docstring (indented by 8).
query_docs = shared_docs(_QUERY_DOCS, indent=8)
