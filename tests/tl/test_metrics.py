from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import revelo
from revelo.tl import _metrics

SQRT_HALF = np.sqrt(0.5)


def _graph(n_cells: int, pairs: list[tuple[int, int]]) -> sparse.csr_matrix:
    """Symmetric kNN-style graph with unit weights on the given undirected pairs."""
    rows = [i for i, j in pairs] + [j for i, j in pairs]
    cols = [j for i, j in pairs] + [i for i, j in pairs]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_cells, n_cells))


def _toy(velocity, pairs, positions=None, labels=("A", "A", "B", "B")) -> ad.AnnData:
    """Cells of A at x=0 and B at x=1 (y = 0 or 1), with the same 2-D data in gene space."""
    positions = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] if positions is None else positions)
    velocity = np.asarray(velocity, dtype=float)
    adata = ad.AnnData(
        X=np.zeros_like(positions, dtype=float),
        obs=pd.DataFrame(
            {"clusters": pd.Categorical(list(labels))},
            index=[f"cell{i}" for i in range(len(positions))],
        ),
    )
    adata.obsm["X_toy"] = positions.astype(float)
    adata.obsm["velocity_toy"] = velocity
    adata.layers["Ms"] = positions.astype(float)
    adata.layers["velocity"] = velocity
    adata.obsp["connectivities"] = _graph(adata.n_obs, pairs)
    return adata


# A–B edges only horizontal (0–2, 1–3), plus one edge inside each cluster.
HORIZONTAL = [(0, 2), (1, 3), (0, 1), (2, 3)]
EVERYTHING = [(i, j) for i in range(4) for j in range(i + 1, 4)]


@pytest.mark.parametrize(
    ("direction", "expected"), [((1, 0), 1.0), ((-1, 0), -1.0), ((0, 1), 0.0), ((0, -3), 0.0)]
)
@pytest.mark.parametrize("basis", ["toy", None])
def test_cbdir_pure_directions(direction, expected, basis):
    adata = _toy(np.tile(direction, (4, 1)), HORIZONTAL)
    scores, mean = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B")], basis=basis
    )
    assert scores.loc[("A", "B")] == pytest.approx(expected)
    assert mean == pytest.approx(expected)


def test_cbdir_mixed_by_hand():
    # Fully connected: each A cell sees B straight across (cos 1) and diagonally (cos 1/sqrt2)
    # for velocity +x -> (1 + 1/sqrt2) / 2 per cell.
    adata = _toy(np.tile((1, 0), (4, 1)), EVERYTHING)
    result = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B"), ("B", "A")], basis="toy"
    )
    across = (1 + SQRT_HALF) / 2
    assert result.scores.loc[("A", "B")] == pytest.approx(across)
    # B cells moving +x point away from A.
    assert result.scores.loc[("B", "A")] == pytest.approx(-across)
    assert result.mean == pytest.approx(0.0)
    assert list(result.scores.index.names) == ["source", "target"]

    # Cell 0 moves +x (cos 1), cell 1 moves diagonally (cos 1/sqrt2 with its B neighbour).
    adata = _toy([[1, 0], [2, 2], [0, 0], [0, 0]], HORIZONTAL)
    scores, _ = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B")], basis="toy"
    )
    assert scores.loc[("A", "B")] == pytest.approx((1 + SQRT_HALF) / 2)


def test_cbdir_skips_cells_without_target_neighbours():
    # Cell 4 (A, at x=-1) points away from B but has no B neighbour: it must not count.
    adata = _toy(
        [[1, 0], [1, 0], [1, 0], [1, 0], [-1, 0]],
        [*HORIZONTAL, (0, 4)],
        positions=[[0, 0], [0, 1], [1, 0], [1, 1], [-1, 0]],
        labels=("A", "A", "B", "B", "A"),
    )
    scores, mean = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B")], basis="toy"
    )
    assert scores.loc[("A", "B")] == pytest.approx(1.0)
    assert mean == pytest.approx(1.0)


def test_cbdir_gene_space_ignores_nan_and_non_velocity_genes():
    # Genes 0-1 hold the 2-D toy; gene 2 is unfitted (NaN); gene 3 moves along y but is no
    # velocity gene (and is constant across the A-B boundary).
    adata = _toy(np.tile((1, 0), (4, 1)), HORIZONTAL)
    velocity = np.column_stack([adata.layers["velocity"], np.full(4, np.nan), np.full(4, 5.0)])
    position = np.column_stack([adata.layers["Ms"], np.zeros(4), [0, 1, 0, 1]])
    adata = ad.AnnData(
        X=np.zeros((4, 4)),
        obs=adata.obs,
        obsp=dict(adata.obsp),
        layers={"velocity": velocity, "Ms": position},
    )
    adata.var["velocity_genes"] = [True, True, True, False]
    scores, _ = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B")]
    )
    assert scores.loc[("A", "B")] == pytest.approx(1.0)
    del adata.var["velocity_genes"]
    scores, _ = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B")]
    )
    assert scores.loc[("A", "B")] == pytest.approx(1 / np.sqrt(26))


def test_graph_metrics_match_naive_loops_and_chunking(monkeypatch):
    rng = np.random.default_rng(0)
    n = 40
    positions, velocity = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    labels = rng.choice(["A", "B", "C"], size=n)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.15]
    adata = _toy(velocity, pairs, positions=positions, labels=labels)
    graph = adata.obsp["connectivities"].toarray() > 0

    def cosine(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    expected = {}
    for source, target in [("A", "B"), ("B", "C")]:
        per_cell = [
            np.mean(
                [
                    cosine(velocity[i], positions[j] - positions[i])
                    for j in np.flatnonzero(graph[i])
                    if labels[j] == target
                ]
            )
            for i in range(n)
            if labels[i] == source and any(labels[j] == target for j in np.flatnonzero(graph[i]))
        ]
        expected[source, target] = np.mean(per_cell)

    edges = list(expected)
    scores, _ = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=edges, basis="toy"
    )
    np.testing.assert_allclose(scores.to_numpy(), list(expected.values()))
    neighbours = [np.flatnonzero(graph[i]) for i in range(n)]
    consistency = [
        np.mean([cosine(velocity[i], velocity[j]) for j in nb])
        for i, nb in enumerate(neighbours)
        if nb.size
    ]
    has_neighbours = [nb.size > 0 for nb in neighbours]
    per_cell, _ = revelo.tl.velocity_consistency(adata, basis="toy")
    np.testing.assert_allclose(per_cell.to_numpy()[has_neighbours], consistency)

    monkeypatch.setattr(_metrics, "_CHUNK_ELEMENTS", 5)
    chunked, _ = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=edges, basis="toy"
    )
    np.testing.assert_allclose(chunked.to_numpy(), scores.to_numpy())


def test_cbdir_errors_and_empty_edge():
    adata = _toy(np.tile((1, 0), (4, 1)), [(0, 1), (2, 3)])
    with pytest.warns(UserWarning, match="No cell"):
        scores, mean = revelo.tl.cross_boundary_correctness(
            adata, cluster_key="clusters", edges=[("A", "B")], basis="toy"
        )
    assert np.isnan(scores.loc[("A", "B")])
    assert np.isnan(mean)
    with pytest.raises(ValueError, match="unknown: \\['Z'\\]"):
        revelo.tl.cross_boundary_correctness(adata, cluster_key="clusters", edges=[("A", "Z")])
    with pytest.raises(KeyError, match=r"velocity_embedding\(adata, basis='umap'\)"):
        adata.obsm["X_umap"] = adata.obsm["X_toy"]
        revelo.tl.cross_boundary_correctness(
            adata, cluster_key="clusters", edges=[("A", "B")], basis="umap"
        )
    with pytest.raises(KeyError, match="clusters_fine"):
        revelo.tl.cross_boundary_correctness(adata, cluster_key="clusters_fine", edges=[])
    del adata.obsp["connectivities"]
    with pytest.raises(KeyError, match=r"scanpy\.pp\.neighbors"):
        revelo.tl.cross_boundary_correctness(adata, cluster_key="clusters", edges=[("A", "B")])


def test_neighbors_key_reads_named_graph():
    adata = _toy(np.tile((1, 0), (4, 1)), EVERYTHING)
    adata.obsp["hv_connectivities"] = _graph(4, HORIZONTAL)
    adata.uns["hv"] = {"connectivities_key": "hv_connectivities"}
    scores, _ = revelo.tl.cross_boundary_correctness(
        adata, cluster_key="clusters", edges=[("A", "B")], basis="toy", neighbors_key="hv"
    )
    assert scores.loc[("A", "B")] == pytest.approx(1.0)


def test_in_cluster_coherence():
    adata = _toy(np.tile((3, 4), (4, 1)), EVERYTHING)
    scores, mean = revelo.tl.in_cluster_coherence(adata, cluster_key="clusters")
    np.testing.assert_allclose(scores.to_numpy(), [1.0, 1.0])
    assert mean == pytest.approx(1.0)

    # A's two cells are orthogonal (0), B's agree (1); opposite cross-cluster pairs are ignored.
    adata = _toy([[1, 0], [0, 1], [-1, 0], [-1, 0]], EVERYTHING)
    scores, mean = revelo.tl.in_cluster_coherence(adata, cluster_key="clusters", basis="toy")
    assert scores.index.name == "clusters"
    assert scores["A"] == pytest.approx(0.0)
    assert scores["B"] == pytest.approx(1.0)
    assert mean == pytest.approx(0.5)


def test_velocity_consistency_cosine_and_pearson():
    # Path 0-1-2: cell 0 agrees with 1 (1), cell 1 sees +1 and -1 (0), cell 2 disagrees (-1).
    velocity = [[1, 0], [1, 0], [-1, 0]]
    adata = _toy(velocity, [(0, 1), (1, 2)], positions=np.zeros((3, 2)), labels="AAA")
    scores, mean = revelo.tl.velocity_consistency(adata)
    np.testing.assert_allclose(scores.to_numpy(), [1.0, 0.0, -1.0])
    assert list(scores.index) == ["cell0", "cell1", "cell2"]
    assert mean == pytest.approx(0.0)

    # Shifted vectors: Pearson 1, cosine below 1; an isolated cell gets NaN.
    velocity = [[1, 2, 3], [2, 3, 4], [1, 1, 1]]
    adata = _toy(velocity, [(0, 1)], positions=np.zeros((3, 3)), labels="AAA")
    pearson, mean = revelo.tl.velocity_consistency(adata, method="pearson")
    np.testing.assert_allclose(pearson.to_numpy()[:2], [1.0, 1.0])
    assert np.isnan(pearson.iloc[2])
    assert mean == pytest.approx(1.0)
    cosine, _ = revelo.tl.velocity_consistency(adata, method="cosine")
    assert cosine.iloc[0] == pytest.approx(20 / np.sqrt(14 * 29))
    with pytest.raises(ValueError, match="method"):
        revelo.tl.velocity_consistency(adata, method="spearman")


def test_velocity_accuracy_known_flips():
    truth = np.ones((3, 5))
    velocity = np.ones((3, 5))
    velocity[0, 0] = velocity[1, 2] = -1.0  # two flipped entries out of 12 compared
    velocity[:, 4] = np.nan  # unfitted gene
    adata = ad.AnnData(X=np.zeros((3, 5)), layers={"velocity": velocity, "true_velocity": truth})
    result = revelo.tl.velocity_accuracy(adata)
    assert result["sign_agreement"] == pytest.approx(10 / 12)
    # Per cell: (4 - 2) / 4 = 0.5 for the two cells with a flip, 1 for the third.
    assert result["cosine"] == pytest.approx(2 / 3)

    subset = revelo.tl.velocity_accuracy(adata, genes=adata.var_names[[1, 3]])
    assert subset == pytest.approx({"sign_agreement": 1.0, "cosine": 1.0})
    mask = revelo.tl.velocity_accuracy(adata, genes=np.array([True, False, False, False, False]))
    assert mask["sign_agreement"] == pytest.approx(2 / 3)


def test_velocity_accuracy_ignores_zero_truth():
    truth = np.array([[1.0, 0.0], [1.0, 1.0]])
    velocity = np.array([[1.0, -1.0], [2.0, 1.0]])
    adata = ad.AnnData(X=np.zeros((2, 2)), layers={"velocity": velocity, "true_velocity": truth})
    result = revelo.tl.velocity_accuracy(adata)
    assert result["sign_agreement"] == pytest.approx(1.0)
    assert result["cosine"] == pytest.approx((SQRT_HALF + 3 / np.sqrt(10)) / 2)
    del adata.layers["true_velocity"]
    with pytest.raises(KeyError, match="true_velocity"):
        revelo.tl.velocity_accuracy(adata)


def test_latent_time_accuracy_known_permutations():
    n = 10
    true_t = np.arange(n, dtype=float)
    swapped = true_t.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    # Spearman = 1 - 6 * sum(d^2) / (n (n^2 - 1)) with sum(d^2) = 2.
    rho_swapped = 1 - 6 * 2 / (n * (n**2 - 1))
    adata = ad.AnnData(
        X=np.zeros((n, 5)),
        obs=pd.DataFrame(
            {"true_t": true_t, "latent_time": swapped}, index=[str(i) for i in range(n)]
        ),
    )
    result = revelo.tl.latent_time_accuracy(adata)
    assert result["spearman"] == pytest.approx(rho_swapped)
    assert np.isnan(result["median_gene_spearman"])

    # Genes: exact (1), reversed (-1), swapped; a constant and an unfitted gene are skipped.
    adata.layers["fit_t"] = np.column_stack(
        [true_t, true_t[::-1], swapped, np.full(n, 2.0), np.full(n, np.nan)]
    )
    result = revelo.tl.latent_time_accuracy(adata)
    assert result["median_gene_spearman"] == pytest.approx(rho_swapped)

    adata.obs["latent_time"] = true_t[::-1]
    assert revelo.tl.latent_time_accuracy(adata)["spearman"] == pytest.approx(-1.0)
    with pytest.raises(KeyError, match=r"revelo.tl.latent_time\(adata\)"):
        revelo.tl.latent_time_accuracy(adata, time_key="shared_time")


def test_metrics_leave_adata_untouched():
    adata = _toy(np.tile((1, 0), (4, 1)), EVERYTHING)
    adata.layers["true_velocity"] = adata.layers["velocity"] * 2
    adata.obs["true_t"] = [0.0, 1.0, 2.0, 3.0]
    adata.obs["latent_time"] = [0.0, 1.0, 2.0, 3.0]
    before = adata.copy()
    revelo.tl.cross_boundary_correctness(adata, cluster_key="clusters", edges=[("A", "B")])
    revelo.tl.in_cluster_coherence(adata, cluster_key="clusters")
    revelo.tl.velocity_consistency(adata, method="pearson")
    revelo.tl.velocity_accuracy(adata)
    revelo.tl.latent_time_accuracy(adata)
    for attr in ("obs", "var", "obsm", "obsp", "layers", "uns"):
        assert list(getattr(adata, attr).keys()) == list(getattr(before, attr).keys())
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    for key in adata.layers:
        np.testing.assert_array_equal(adata.layers[key], before.layers[key])


def _mixing_data(positions, batches):
    adata = ad.AnnData(
        obs=pd.DataFrame({"batch": batches}, index=[f"c{i}" for i in range(len(batches))])
    )
    adata.obsm["X_revelo"] = np.asarray(positions, dtype=float).reshape(len(batches), -1)
    return adata


def test_batch_mixing_separated_and_interleaved_by_hand():
    # Two batches far apart: every neighbour is from the cell's own batch.
    separated = _mixing_data([0, 1, 2, 3, 100, 101, 102, 103], ["a"] * 4 + ["b"] * 4)
    scores, mean = revelo.tl.batch_mixing(separated, batch_key="batch", n_neighbors=2)
    assert mean == 0.0 and (scores == 0).all()

    # Alternating on a line, 1 neighbour each: the nearest cell is always the other batch.
    # Observed other-batch fraction 1, expected (8 - 4) / 7, so the score is 7 / 4.
    alternating = _mixing_data([0, 1, 2, 3, 4, 5, 6, 7], ["a", "b"] * 4)
    scores, mean = revelo.tl.batch_mixing(alternating, batch_key="batch", n_neighbors=1)
    assert mean == pytest.approx(7 / 4)

    # Unequal batches: cell at 0 (batch a, 1 of 4 cells) has neighbours 1 and 2 (b, b):
    # other fraction 1, expected 3/3 → 1. Cells of b: expected 1/3.
    unequal = _mixing_data([0, 1, 2, 3], ["a", "b", "b", "b"])
    scores, _ = revelo.tl.batch_mixing(unequal, batch_key="batch", n_neighbors=2)
    assert scores["a"] == pytest.approx(1.0)
    # b at 1: neighbours 0 (a) and 2 (b) → 1/2 other; b at 2: 1, 3 → 0; b at 3: 2, 1 → 0.
    assert scores["b"] == pytest.approx(np.mean([0.5 / (1 / 3), 0.0, 0.0]))


def test_batch_mixing_errors():
    adata = _mixing_data([0, 1, 2], ["a", "a", "a"])
    with pytest.raises(ValueError, match="single batch"):
        revelo.tl.batch_mixing(adata, batch_key="batch", n_neighbors=1)
    with pytest.raises(KeyError, match="obsm has no 'X_latent'"):
        revelo.tl.batch_mixing(adata, batch_key="batch", use_rep="X_latent")
