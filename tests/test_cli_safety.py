"""The command line refuses outputs that would destroy data, before doing any work."""

from __future__ import annotations

import os

import pytest

import revelo
from revelo.__main__ import main

FAST = ["--n-top-genes", "0", "--min-shared-counts", "1", "--n-neighbors", "5"]
FAST += ["--max-epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """Raw counts of 60 simulated cells in an .h5ad file."""
    path = tmp_path_factory.mktemp("counts") / "counts.h5ad"
    revelo.datasets.simulate(n_obs=60, n_vars=8, seed=0).write_h5ad(path)
    return path


@pytest.fixture
def no_preprocessing(monkeypatch):
    """Fail the test if the command gets as far as preprocessing."""

    def refuse(*args, **kwargs):
        msg = "preprocessing started before the output path was checked"
        raise AssertionError(msg)

    monkeypatch.setattr(revelo.pp, "preprocess", refuse)


def test_output_same_as_input_is_refused(counts, capsys, no_preprocessing):
    before = counts.read_bytes()
    code = main(["fit", str(counts), "-o", str(counts), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "is the input file" in err and "counts_revelo.h5ad" in err
    assert counts.read_bytes() == before


def test_output_same_as_input_through_another_spelling_is_refused(counts, capsys):
    other = counts.parent / "." / counts.name
    assert main(["fit", str(counts), "-o", str(other), *FAST]) == 2
    assert "is the input file" in capsys.readouterr().err


def test_existing_output_needs_force(counts, tmp_path, capsys, no_preprocessing):
    output = tmp_path / "out.h5ad"
    output.write_text("an earlier result")
    code = main(["fit", str(counts), "-o", str(output), *FAST])
    assert code == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert output.read_text() == "an earlier result"


def test_output_in_a_missing_folder_is_refused_before_work(
    counts, tmp_path, capsys, no_preprocessing
):
    code = main(["fit", str(counts), "-o", str(tmp_path / "absent" / "out.h5ad"), *FAST])
    assert code == 2
    assert "does not exist; create it" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder_is_refused_before_work(
    counts, tmp_path, capsys, no_preprocessing
):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code = main(["fit", str(counts), "-o", str(folder / "out.h5ad"), *FAST])
    finally:
        folder.chmod(0o700)
    assert code == 2
    assert "Cannot write into" in capsys.readouterr().err


def test_force_replaces_the_output_and_leaves_no_temporary_file(counts, tmp_path):
    import anndata as ad

    output = tmp_path / "out.h5ad"
    output.write_text("an earlier result")
    assert main(["fit", str(counts), "-o", str(output), "--force", *FAST]) == 0
    result = ad.read_h5ad(output)
    assert "velocity" in result.layers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5ad"]
