"""Project velocities into a low-dimensional embedding through transition probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from revelo._threads import with_thread_limit
from revelo._validation import HINT_VELOCITY, check_layer

from ._graph import velocity_graph
from ._utils import velocity_gene_mask

if TYPE_CHECKING:
    from anndata import AnnData

# axes box of a default matplotlib figure (6.4 x 4.8 in, default subplot margins), in inches:
# scVelo sizes its arrows with a quiver drawn on such a figure, so the same box keeps them equal
_AXES_WIDTH = 6.4 * (0.9 - 0.125)
_AXES_HEIGHT = 4.8 * (0.88 - 0.11)
_AXES_MARGIN = 0.05


@with_thread_limit
def velocity_embedding(
    adata: AnnData,
    *,
    basis: str = "umap",
    vkey: str = "velocity",
    scale: float = 10,
    autoscale: bool = True,
    direct_pca: bool = False,
    copy: bool = False,
) -> AnnData | None:
    r"""Project velocities into an embedding as expected displacements.

    With transition probabilities :math:`p_{ij} \propto \exp(\pi_{ij}\,\text{scale}) - 1`
    from the velocity graph (negative cosines give negative weights, the self-transition
    counts in the normalisation) and unit displacements
    :math:`\hat\delta_{ij} = (e_j - e_i) / \lVert e_j - e_i \rVert` in the embedding,

    .. math::
        \tilde v_i = \sum_{j} (p_{ij} - \bar p_i)\, \hat\delta_{ij},

    where :math:`\bar p_i` is the mean over :math:`i`'s neighbours, so that a uniform
    distribution gives no arrow. This matches scVelo's ``tl.velocity_embedding``.

    Parameters
    ----------
    adata
        Annotated data with ``obsm[f"X_{basis}"]`` and ``layers[vkey]``. The velocity graph is
        computed with :func:`~revelo.tl.velocity_graph` when ``uns[f"{vkey}_graph"]`` is missing.
    basis
        Embedding to project into, read from ``obsm[f"X_{basis}"]``.
    vkey
        Name of the velocities (layer and graph prefix).
    scale
        Inverse kernel width: larger values concentrate the transitions on the best-aligned
        neighbours.
    autoscale
        Rescale the arrows to a readable length for quiver plots (the same factor scVelo uses
        on a default-sized figure).
    direct_pca
        With ``basis="pca"``, project the velocities linearly with ``varm["PCs"]`` instead of
        going through the graph. Exploratory only: it ignores the data's local geometry.
    copy
        Return a modified copy instead of writing to ``adata``.

    Returns
    -------
    Returns ``None``, or a copy of ``adata`` if ``copy=True``, with these fields set:

    ``obsm[f"{vkey}_{basis}"]``
        Velocity vectors in the embedding, one row per cell.
    ``uns[f"{vkey}_params"]["embeddings"]``
        Gains ``basis`` (only when ``uns[f"{vkey}_params"]`` exists).

    If the graph has to be computed, the fields of :func:`~revelo.tl.velocity_graph` are set too.
    """
    adata = adata.copy() if copy else adata
    if f"X_{basis}" not in adata.obsm:
        msg = (
            f"adata.obsm has no 'X_{basis}': compute the embedding first, "
            f"e.g. scanpy.tl.{basis}(adata)."
        )
        raise KeyError(msg)
    check_layer(adata, vkey, HINT_VELOCITY)
    embedding = np.asarray(adata.obsm[f"X_{basis}"], dtype=np.float64)

    if direct_pca:
        if basis != "pca" or "PCs" not in adata.varm:
            msg = "direct_pca=True needs basis='pca' and adata.varm['PCs']: run scanpy.pp.pca."
            raise ValueError(msg)
        genes = velocity_gene_mask(adata, vkey)
        velocity = np.asarray(adata.layers[vkey][:, genes], dtype=np.float64)
        projected = (velocity - velocity.mean(0)) @ adata.varm["PCs"][genes]
    else:
        if f"{vkey}_graph" not in adata.uns:
            velocity_graph(adata, vkey=vkey)
        transitions = transition_matrix(adata, vkey=vkey, scale=scale)
        projected = _expected_displacement(transitions, embedding)

    if autoscale:
        projected /= 3 * _quiver_scale(embedding, projected)
    if f"{vkey}_params" in adata.uns:
        params = adata.uns[f"{vkey}_params"]
        params["embeddings"] = [*params.get("embeddings", []), basis]
    adata.obsm[f"{vkey}_{basis}"] = projected
    return adata if copy else None


def transition_matrix(
    adata: AnnData, *, vkey: str = "velocity", scale: float = 10
) -> sparse.csr_matrix:
    r"""Transition weights between neighbouring cells from the velocity graph.

    The weights that :func:`velocity_embedding` projects with: :math:`\exp(\pi_{ij}\,
    \text{scale}) - 1` for the cosines :math:`\pi_{ij}` of ``uns[f"{vkey}_graph"]``, minus
    :math:`\exp(-\pi^-_{ij}\,\text{scale}) - 1` for those of ``uns[f"{vkey}_graph_neg"]``, plus a
    self-transition that is larger for cells whose best transition is weak; each row is divided
    by the sum of its absolute weights, then the self-transition is removed.

    Parameters
    ----------
    adata
        Annotated data with the velocity graph, from :func:`~revelo.tl.velocity_graph`.
    vkey
        Name of the velocities (graph prefix).
    scale
        Inverse kernel width: larger values concentrate the transitions on the best-aligned
        neighbours.

    Returns
    -------
    Cells × cells CSR matrix of transition weights (negative where the velocity points away
    from a neighbour), with an empty diagonal.
    """
    if f"{vkey}_graph" not in adata.uns:
        msg = (
            f"adata.uns has no {vkey + '_graph'!r}: run "
            f"revelo.tl.velocity_graph(adata, vkey={vkey!r}) first."
        )
        raise KeyError(msg)
    graph = sparse.csr_matrix(adata.uns[f"{vkey}_graph"], dtype=np.float64)
    confidence = graph.max(1).toarray().ravel()
    # cells whose best transition is weak keep more probability on themselves
    self_prob = np.clip(np.percentile(confidence, 98) - confidence, 0, 1)
    graph = graph + sparse.diags(self_prob)
    weights = graph.expm1() if scale == 1 else (graph * scale).expm1()
    if f"{vkey}_graph_neg" in adata.uns:
        graph_neg = sparse.csr_matrix(adata.uns[f"{vkey}_graph_neg"], dtype=np.float64)
        # negative cosines push the arrow away from the cell they point against
        weights = weights - (-graph_neg * scale).expm1()
    weights = sparse.csr_matrix(weights)
    row_sums = np.asarray(abs(weights).sum(1)).ravel()
    with np.errstate(divide="ignore"):
        inverse = np.where(row_sums > 0, 1 / row_sums, 0)
    weights = sparse.diags(inverse) @ weights
    weights.setdiag(0)
    weights.eliminate_zeros()
    return sparse.csr_matrix(weights)


def _expected_displacement(transitions: sparse.csr_matrix, embedding: np.ndarray) -> np.ndarray:
    """Sum over neighbours of (probability - mean probability) times the unit displacement."""
    n_obs = embedding.shape[0]
    counts = np.diff(transitions.indptr)
    rows = np.repeat(np.arange(n_obs), counts)
    displacement = embedding[transitions.indices] - embedding[rows]
    length = np.linalg.norm(displacement, axis=1, keepdims=True)
    displacement = np.divide(
        displacement, length, out=np.zeros_like(displacement), where=length > 0
    )
    mean_prob = np.asarray(transitions.sum(1)).ravel() / np.maximum(counts, 1)
    centred = transitions.data - mean_prob[rows]
    return np.column_stack(
        [
            np.bincount(rows, weights=centred * displacement[:, dim], minlength=n_obs)
            for dim in range(embedding.shape[1])
        ]
    )


def _quiver_scale(embedding: np.ndarray, arrows: np.ndarray) -> float:
    """Matplotlib's automatic quiver scale for these arrows on a default figure.

    Matplotlib sets the scale so that the mean arrow, measured on screen, is a fixed fraction of
    the axes width; the axes span the data range plus margins. Computing that in closed form
    avoids drawing a figure and does not depend on the user's plotting settings.
    """
    span = np.ptp(embedding[:, :2], axis=0) * (1 + 2 * _AXES_MARGIN)
    span[span == 0] = 1
    on_screen = np.hypot(
        arrows[:, 0] / span[0], arrows[:, 1] * _AXES_HEIGHT / _AXES_WIDTH / span[1]
    )
    mean_length = on_screen.mean()
    if mean_length == 0:
        return 1.0
    return 1.8 * max(10, np.sqrt(len(arrows))) * mean_length
