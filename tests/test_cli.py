"""The command line reports bad input as one message, without a traceback, and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import revelo
from revelo.__main__ import _is_input_error, main
from revelo.model import NonFiniteLossError


def test_fit_on_a_missing_file_exits_with_the_message_and_no_traceback(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "revelo", "fit", str(tmp_path / "missing.h5ad"), "-o", "out.h5ad"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0
    assert "does not exist" in done.stderr
    assert "missing.h5ad" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.h5ad").exists()


@pytest.fixture(scope="module")
def raw():
    return revelo.datasets.simulate(n_obs=60, n_vars=8, seed=0)


def test_fit_on_nan_counts_exits_with_the_message(raw, tmp_path, capsys):
    adata = raw.copy()
    unspliced = np.asarray(adata.layers["unspliced"], dtype=np.float32)
    unspliced[4, 2] = np.nan
    adata.layers["unspliced"] = unspliced
    adata.layers["spliced"] = np.asarray(adata.layers["spliced"], dtype=np.float32)
    adata.write_h5ad(tmp_path / "nan.h5ad")

    code = main(["fit", str(tmp_path / "nan.h5ad"), "-o", str(tmp_path / "out.h5ad")])
    err = capsys.readouterr().err
    assert code != 0
    assert "revelo fit: error: Layer 'unspliced' has 1 NaN entries" in err
    assert repr(adata.obs_names[4]) in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.h5ad").exists()


def test_fit_on_a_file_that_is_not_h5ad(tmp_path, capsys):
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    code = main(["fit", str(tmp_path / "bad.h5ad"), "-o", str(tmp_path / "out.h5ad")])
    err = capsys.readouterr().err
    assert code != 0
    assert "cannot read" in err and "write_h5ad" in err


def test_fit_on_missing_layers_lists_the_present_ones(raw, tmp_path, capsys):
    adata = raw.copy()
    del adata.layers["unspliced"]
    adata.write_h5ad(tmp_path / "nolayer.h5ad")
    code = main(["fit", str(tmp_path / "nolayer.h5ad"), "-o", str(tmp_path / "out.h5ad")])
    err = capsys.readouterr().err
    assert code != 0
    assert "'unspliced' is missing; the layers present are:" in err
    assert "'spliced'" in err


def test_only_input_errors_are_reported_without_a_traceback():
    assert _is_input_error(NonFiniteLossError("loss became nan"))
    assert _is_input_error(KeyError("layer"))
    assert not _is_input_error(RuntimeError("a bug"))
    assert not _is_input_error(ZeroDivisionError())
