"""Messages point to the next step; progress and summaries are shown, libraries' chatter is not."""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pytest

import revelo
from revelo.model._progress import format_seconds


@pytest.fixture
def raw():
    return revelo.datasets.simulate(n_obs=120, n_vars=12, seed=0)


@pytest.fixture
def info_level():
    before = revelo.settings.verbosity
    revelo.settings.verbosity = "info"
    yield
    revelo.settings.verbosity = before


def test_missing_moments_point_to_preprocess_and_the_count_likelihoods(raw):
    adata = raw.copy()
    with pytest.raises(KeyError) as error:
        revelo.REVELO.setup_anndata(adata)
    message = error.value.args[0]
    assert "'Ms' is missing" in message
    assert "revelo.pp.preprocess(adata)" in message
    # either quote style
    assert re.search(r"likelihood=[\"']nb[\"']", message)
    assert re.search(r"setup_anndata\(adata, [\"']spliced[\"'], [\"']unspliced[\"']\)", message)
    assert "velocyto" not in message


def test_a_missing_count_layer_still_names_the_tools_that_write_it(raw):
    adata = raw.copy()
    del adata.layers["unspliced"]
    with pytest.raises(KeyError, match="velocyto, STARsolo or alevin-fry"):
        revelo.REVELO.setup_anndata(adata, "spliced", "unspliced")


def test_gaussian_on_raw_counts_warns_and_names_both_ways_out(raw):
    adata = raw.copy()
    revelo.REVELO.setup_anndata(adata, "spliced", "unspliced")
    with pytest.warns(UserWarning, match="hold raw integer counts") as record:
        revelo.REVELO(adata, n_hidden=16)
    message = str(record[0].message)
    assert "revelo.pp.preprocess(adata)" in message
    assert 'likelihood="nb"' in message


def test_no_warning_for_moments_or_for_a_count_likelihood(raw):
    moments = revelo.pp.preprocess(raw, n_top_genes=None, n_neighbors=10, compute_umap=False)
    counts = raw.copy()
    revelo.REVELO.setup_anndata(moments)
    revelo.REVELO.setup_anndata(counts, "spliced", "unspliced")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*raw integer counts")
        revelo.REVELO(moments, n_hidden=16)
        revelo.REVELO(counts, n_hidden=16, likelihood="nb")


def test_preprocess_logs_what_each_gene_filter_removed(raw, capsys, info_level):
    adata = raw.copy()
    spliced = np.asarray(adata.layers["spliced"]).copy()
    unspliced = np.asarray(adata.layers["unspliced"]).copy()
    spliced[:, :2] = 0  # two genes without a count
    unspliced[:, :2] = 0
    adata.layers["spliced"], adata.layers["unspliced"] = spliced, unspliced
    min_shared = 200
    with pytest.warns(UserWarning, match="Dropping 2 genes"):
        out = revelo.pp.preprocess(
            adata, n_top_genes=6, n_neighbors=10, min_shared_counts=min_shared, compute_umap=False
        )
    err = capsys.readouterr().err
    # the shared-count filter, computed here independently
    shared = (spliced * (unspliced > 0)).sum(0) + (unspliced * (spliced > 0)).sum(0)
    n_low = int(((shared < min_shared) & (shared > 0)).sum())
    n_passing = int((shared >= min_shared).sum())
    assert n_passing > 6, "the example must leave work for the variable-gene filter"
    steps = out.uns["revelo_preprocess"]
    assert f"preprocess kept {out.n_vars} of 12 genes" in err
    assert "2 without any spliced or unspliced count" in err
    assert f"{n_low} with fewer than min_shared_counts={min_shared} shared counts" in err
    assert f"{n_passing - 6} outside the n_top_genes=6 most variable" in err
    assert f"{steps['n_genes_highly_variable'] - out.n_vars} without a usable steady-state" in err


def test_verbosity_keeps_library_chatter_out_unless_debug(caplog):
    before = revelo.settings.verbosity
    caplog.set_level(logging.DEBUG)

    def seed_messages():
        return [r for r in caplog.records if r.getMessage().startswith("Seed set to")]

    try:
        revelo.settings.verbosity = "info"
        revelo.settings.seed = 0
        assert not seed_messages()
        assert not logging.getLogger("scvi.data._download").isEnabledFor(logging.INFO)
        revelo.settings.verbosity = "debug"
        assert logging.getLogger("scvi.data._download").isEnabledFor(logging.INFO)
        revelo.settings.seed = 0
        assert [r.getMessage() for r in seed_messages()] == ["Seed set to 0"]
        with pytest.raises(ValueError, match="not a level"):
            revelo.settings.verbosity = "loud"
    finally:
        revelo.settings.verbosity = before
        revelo.settings.seed = 0


def test_train_reports_progress_and_a_summary(raw, capsys, info_level):
    adata = revelo.pp.preprocess(raw, n_top_genes=None, n_neighbors=10, compute_umap=False)
    revelo.REVELO.setup_anndata(adata)
    revelo.settings.seed = 0
    # one fit: with regimes="auto" a second one follows (tested in test_regimes.py)
    model = revelo.REVELO(adata, n_hidden=16, regimes="full")
    model.train(max_epochs=20, early_stopping=False)
    err = capsys.readouterr().err
    progress = [line for line in err.splitlines() if line.startswith("epoch")]
    # not a terminal: the first epoch, then every second one (a tenth of 20)
    assert [line.split()[1] for line in progress] == ["1/20"] + [
        f"{e}/20" for e in range(2, 21, 2)
    ]
    assert all("elbo_train" in line and "elapsed" in line for line in progress)
    assert "left" in progress[0] and "left" not in progress[-1]
    assert "Training done in" in err and f"{adata.n_vars} genes, all 20 epochs" in err
    final = float(model.history["elbo_train"].iloc[-1, 0])
    assert f"elbo_train {final:.4g}" in err

    model.train(max_epochs=4, early_stopping=False, enable_progress_bar=False)
    err = capsys.readouterr().err
    assert "epoch" not in err.split("Training done")[0]
    assert "Training done" in err


def test_early_stopping_is_said_once_in_the_summary(raw, capsys, info_level):
    adata = revelo.pp.preprocess(raw, n_top_genes=None, n_neighbors=10, compute_umap=False)
    revelo.REVELO.setup_anndata(adata)
    revelo.settings.seed = 0
    model = revelo.REVELO(adata, n_hidden=16)
    model.train(max_epochs=200, early_stopping_patience=2, lr=0.1)
    out, err = capsys.readouterr()
    assert "early stopping after epoch" in err
    # scvi-tools' early stopping prints its own reason on teardown, to stdout.
    assert "did not improve" not in out + err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (3725, "1 h 02 min")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
