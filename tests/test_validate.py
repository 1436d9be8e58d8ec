from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from revelo._utils import to_dense
from revelo._validation import (
    check_layer,
    check_layers,
    check_min_cells,
    check_not_backed,
    check_spliced_unspliced,
    check_unique_names,
    empty_cells_and_genes,
    gene_mask,
    split_sizes,
)

FORMATS = {
    "dense": np.asarray,
    "csr": sparse.csr_matrix,
    "csc": sparse.csc_matrix,
}


def _adata(spliced, unspliced=None) -> ad.AnnData:
    spliced = np.asarray(spliced)
    unspliced = spliced.copy() if unspliced is None else unspliced
    adata = ad.AnnData(
        X=spliced.copy(), layers={"spliced": spliced, "unspliced": np.asarray(unspliced)}
    )
    adata.obs_names = [f"cell{i}" for i in range(adata.n_obs)]
    adata.var_names = [f"gene{j}" for j in range(adata.n_vars)]
    return adata


def _counts(dtype=np.float32) -> np.ndarray:
    return np.arange(12, dtype=dtype).reshape(4, 3) % 5


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_valid_counts_pass_in_every_format_and_dtype(fmt, dtype):
    counts = FORMATS[fmt](_counts(dtype))
    adata = _adata(_counts(dtype))
    adata.layers["spliced"] = counts
    adata.layers["unspliced"] = counts.copy()
    check_spliced_unspliced(adata, counts=True)
    check_layers(adata, ["spliced"], counts=True)


def test_missing_layer_lists_existing_layers():
    adata = _adata(_counts())
    with pytest.raises(KeyError, match=r"'Ms' is missing.*'spliced', 'unspliced'"):
        check_layers(adata, ["Ms"])


@pytest.mark.parametrize(
    ("value", "what"), [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"), (-1, "neg")]
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_values_report_count_and_first_location(fmt, value, what):
    values = _counts() + 1
    values[2, 1] = value
    values[3, 2] = value
    adata = _adata(_counts())
    adata.layers["unspliced"] = FORMATS[fmt](values)
    with pytest.raises(ValueError, match=rf"'unspliced' has 2 {what}.*'cell2', gene 'gene1'"):
        check_layers(adata, ["spliced", "unspliced"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_integer_values_rejected_only_for_counts(fmt):
    values = _counts()
    values[1, 2] = 0.5
    adata = _adata(_counts())
    adata.layers["spliced"] = FORMATS[fmt](values)
    check_layers(adata, ["spliced"], counts=False)
    with pytest.raises(ValueError, match=r"1 non-integer.*'cell1', gene 'gene2'.*raw counts"):
        check_layers(adata, ["spliced"], counts=True)


def test_float16_and_bool_rejected_with_fix():
    adata = _adata(_counts())
    adata.layers["spliced"] = _counts().astype(np.float16)
    with pytest.raises(TypeError, match=r"float16.*astype\('float32'\)"):
        check_layers(adata, ["spliced"])
    adata.layers["spliced"] = _counts() > 0
    with pytest.raises(TypeError, match="boolean"):
        check_layers(adata, ["spliced"])


def test_spliced_unspliced_dtype_mismatch():
    adata = _adata(_counts(np.int64))
    adata.layers["unspliced"] = _counts(np.float32)
    with pytest.raises(TypeError, match=r"differ in dtype.*astype\('int64'\)"):
        check_spliced_unspliced(adata)


def test_duplicated_names_suggest_make_unique():
    adata = _adata(_counts())
    adata.obs_names = ["a", "b", "a", "c"]
    with pytest.raises(ValueError, match=r"1 obs_names.*'a'.*obs_names_make_unique\(\)"):
        check_unique_names(adata)
    adata = _adata(_counts())
    adata.var_names = ["g", "g", "h"]
    with pytest.raises(ValueError, match=r"var_names_make_unique\(\)"):
        check_unique_names(adata)
    check_unique_names(_adata(_counts()))


def test_backed_adata_suggests_to_memory(tmp_path):
    path = tmp_path / "small.h5ad"
    _adata(_counts()).write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        with pytest.raises(ValueError, match=r"backed mode.*to_memory\(\)"):
            check_not_backed(backed)
    finally:
        backed.file.close()
    check_not_backed(_adata(_counts()))


def test_views_are_read_without_being_modified():
    adata = _adata(_counts())
    adata.layers["spliced"] = sparse.csr_matrix(adata.layers["spliced"])
    adata.layers["unspliced"] = sparse.csr_matrix(adata.layers["unspliced"])
    view = adata[1:3]
    check_spliced_unspliced(view, counts=True)
    check_unique_names(view)
    assert view.is_view


def test_empty_cells_and_genes():
    values = _counts()
    values[0] = 0
    values[:, 1] = 0
    adata = _adata(values)
    adata.layers["unspliced"] = sparse.csr_matrix(values)
    cells, genes = empty_cells_and_genes(adata)
    np.testing.assert_array_equal(cells, [True, False, False, False])
    np.testing.assert_array_equal(genes, [False, True, False])


def test_min_cells():
    check_min_cells(31, 30)
    with pytest.raises(ValueError, match=r"Only 10 cells.*n_neighbors=9 or fewer"):
        check_min_cells(10, 30)
    with pytest.raises(ValueError, match="n_neighbors=2 or more"):
        check_min_cells(10, 1)


def test_large_sparse_matrix_is_never_densified():
    # Densifying 10^5 × 10^5 float32 would need 40 GB; validation must only read stored values.
    n = 100_000
    rows, cols = np.array([5, 70, 99_999]), np.array([99_998, 3, 0])
    matrix = sparse.csr_matrix((np.full(3, 3.0, np.float32), (rows, cols)), shape=(n, n))
    adata = ad.AnnData(
        obs={"i": np.arange(n)}, var={"j": np.arange(n)}, layers={"spliced": matrix}
    )
    adata.layers["unspliced"] = matrix.tocsc()
    check_spliced_unspliced(adata, counts=True)
    matrix.data[0] = -2
    with pytest.raises(ValueError, match="1 negative"):
        check_layers(adata, ["spliced"])


def test_check_layer_names_the_call_to_make():
    adata = _adata(np.ones((3, 2)))
    check_layer(adata, "spliced")
    with pytest.raises(KeyError, match=r"no 'velocity': run model\.add_outputs\(adata\) first"):
        check_layer(adata, "velocity")
    with pytest.raises(KeyError, match="no 'Ms': compute the moments"):
        check_layer(adata, "Ms", "compute the moments")


def test_gene_mask_from_names_mask_or_none():
    names = pd.Index(["a", "b", "c", "d"])
    np.testing.assert_array_equal(gene_mask(names, None), [True] * 4)
    np.testing.assert_array_equal(gene_mask(names, ["d", "b"]), [False, True, False, True])
    chosen = np.array([True, False, False, True])
    mask = gene_mask(names, chosen)
    np.testing.assert_array_equal(mask, chosen)
    mask[0] = False
    assert chosen[0], "the caller's mask must not change when the result is modified"


def test_gene_mask_rejects_unknown_empty_and_misshaped():
    names = pd.Index(["a", "b", "c"])
    with pytest.raises(KeyError, match=r"`gene_list` are not in adata\.var_names: \['z'\]"):
        gene_mask(names, ["a", "z"], name="gene_list")
    with pytest.raises(ValueError, match="`genes` is empty"):
        gene_mask(names, [])
    with pytest.raises(ValueError, match=r"needs 3 entries .*not \(2,\)"):
        gene_mask(names, np.array([True, False]))


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_to_dense_keeps_values_and_casts(fmt):
    values = np.array([[0, 1.5], [2, 0]], dtype=np.float32)
    dense = to_dense(FORMATS[fmt](values))
    assert isinstance(dense, np.ndarray)
    assert dense.dtype == np.float32
    np.testing.assert_array_equal(dense, values)
    cast = to_dense(FORMATS[fmt](values), np.float64)
    assert cast.dtype == np.float64
    np.testing.assert_array_equal(cast, values.astype(np.float64))


def test_split_sizes_round_training_up_and_validation_down():
    assert split_sizes(100, 0.8, 0.1) == (80, 10)
    assert split_sizes(11, 0.5, None) == (6, 5)
    assert split_sizes(7, 1.0, None) == (7, 0)
    # validation takes at most what training leaves
    assert split_sizes(3, 0.5, 0.5) == (2, 1)
    with pytest.raises(ValueError, match="must be fractions"):
        split_sizes(10, 0.8, 0.3)
    with pytest.raises(ValueError, match="must be fractions"):
        split_sizes(10, 0.0, None)
