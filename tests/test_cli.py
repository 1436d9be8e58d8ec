"""The command line reports bad input as one message, without a traceback, and exits non-zero."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import revelo
from revelo.__main__ import _is_input_error, _parser, _root_cells, main
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


def _run(args: list[str], cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "revelo", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", [[], ["fit"], ["demo"]], ids=["revelo", "fit", "demo"])
def test_help_answers_within_a_second_in_plain_text(command, tmp_path):
    start = time.perf_counter()
    done = _run([*command, "--help"], tmp_path, timeout=60)
    seconds = time.perf_counter() - start
    assert done.returncode == 0
    # the interpreter's own start-up is part of the second
    assert seconds < 1.0, f"--help took {seconds:.2f} s"
    assert "``" not in done.stdout and ":func:" not in done.stdout and ":class:" not in done.stdout


def test_every_option_has_help_text():
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"revelo {name} {action.option_strings or action.dest}: no help"
            assert "``" not in action.help


def test_fit_offers_genes_likelihood_batch_and_root_options():
    args = _parser().parse_args(
        [
            "fit",
            "in.h5ad",
            "-o",
            "out.h5ad",
            "--n-top-genes",
            "500",
            "--likelihood",
            "nb",
            "--batch-key",
            "sample",
            "--root-group",
            "clusters=Ductal",
        ]
    )
    assert args.n_top_genes == 500
    assert args.likelihood == "nb"
    assert args.batch_key == "sample"
    assert args.root_group == "clusters=Ductal"
    with pytest.raises(SystemExit):
        _parser().parse_args(["fit", "in.h5ad", "-o", "out.h5ad", "--likelihood", "normal"])


def test_root_group_names_the_cells_of_that_group(raw):
    adata = raw.copy()
    adata.obs["clusters"] = adata.obs["clusters"].astype(str)
    first = adata.obs["clusters"].iloc[0]
    expected = [n for n, c in zip(adata.obs_names, adata.obs["clusters"]) if c == first]
    assert _root_cells(adata, f"clusters={first}") == expected
    assert _root_cells(adata, None) is None
    with pytest.raises(ValueError, match="COLUMN=VALUE"):
        _root_cells(adata, "clusters")
    with pytest.raises(ValueError, match="no cell has"):
        _root_cells(adata, "clusters=nowhere")


def test_fit_prints_progress_and_a_summary_without_library_chatter(tmp_path):
    raw = revelo.datasets.simulate(n_obs=150, n_vars=12, seed=0)
    raw.write_h5ad(tmp_path / "counts.h5ad")
    done = _run(
        [
            "fit",
            "counts.h5ad",
            "-o",
            "result.h5ad",
            "--max-epochs",
            "20",
            "--n-neighbors",
            "10",
            "--n-top-genes",
            "0",
            "--root-group",
            f"clusters={raw.obs['clusters'].iloc[0]}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("epoch")]
    # a line every tenth of the epochs when not on a terminal, each with the time left
    assert len(progress) >= 5
    assert progress[0].startswith("epoch  1/20") and "left" in progress[0]
    # 20 epochs, then a quarter more once each gene's regime is chosen (regimes="auto")
    assert any(line.startswith("epoch 20/20") for line in progress)
    assert progress[-1].startswith("epoch 5/5")
    assert "Training done in" in done.stderr and "all 20 epochs" in done.stderr
    assert "genes kept" in done.stdout and "trained 25 epochs" in done.stdout
    assert "latent_time" in done.stdout and "velocity" in done.stdout
    assert str(tmp_path / "result.h5ad") in done.stdout
    assert (tmp_path / "result.h5ad").is_file()
    for chatter in ("Seed set to", "Tip:", "LeafSpec", "log_every_n_steps", "GPU available"):
        assert chatter not in log


def test_verbose_lets_library_messages_through(tmp_path):
    raw = revelo.datasets.simulate(n_obs=120, n_vars=10, seed=0)
    raw.write_h5ad(tmp_path / "counts.h5ad")
    args = ["fit", "counts.h5ad", "--max-epochs", "2", "--n-neighbors", "10", "--n-top-genes", "0"]
    done = _run([*args, "-o", "verbose.h5ad", "--verbose"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Seed set to 0" in done.stderr
    quiet = _run([*args, "-o", "quiet.h5ad", "--quiet"], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "epoch" not in quiet.stderr and "Seed set to" not in quiet.stderr
