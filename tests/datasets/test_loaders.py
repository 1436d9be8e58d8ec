from __future__ import annotations

import urllib.error
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from revelo import settings
from revelo.datasets import _loaders, dentategyrus, pancreas

SHARED = Path("/work/shared/data")
needs_data = pytest.mark.skipif(
    not (SHARED / "pancreas_739.h5ad").is_file(), reason="shared data not available"
)


@pytest.fixture
def data_dir(monkeypatch):
    monkeypatch.setattr(settings, "_data_dir", SHARED)
    return SHARED


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty data folder and a download that fails as it does without internet."""
    calls = []

    def fail(url, path):
        calls.append((url, path))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(settings, "_data_dir", tmp_path)
    monkeypatch.setattr(_loaders, "_download", fail)
    return calls


@needs_data
@pytest.mark.usefixtures("data_dir")
def test_local_files_are_read():
    small = pancreas(subset="739")
    assert small.shape == (739, 7192)
    assert {"spliced", "unspliced"} <= set(small.layers)
    assert "Ductal" in set(small.obs["clusters"])
    full = pancreas()
    assert full.shape == (3696, 2000)
    dg = dentategyrus()
    assert dg.shape == (200, 530)
    assert "X_umap" in dg.obsm


@needs_data
def test_data_dir_follows_environment_variable(monkeypatch):
    monkeypatch.setattr(settings, "_data_dir", None)
    monkeypatch.setenv("REVELO_DATA_DIR", str(SHARED))
    assert settings.data_dir == SHARED
    assert pancreas(subset="739").n_obs == 739


def test_missing_file_without_network_gives_clear_error(offline, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"downloading https://.*no network.*REVELO_DATA"):
        pancreas()
    with pytest.raises(FileNotFoundError, match=r"dentategyrus_200\.h5ad"):
        dentategyrus()
    assert [url.rsplit("/", 1)[-1] for url, _ in offline] == [
        "endocrinogenesis_day15.h5ad",
        "10X43_1.h5ad",
    ]
    assert all(path.parent == tmp_path for _, path in offline)
    assert list(tmp_path.iterdir()) == []


def test_unpublished_subset_is_not_downloaded(offline):
    with pytest.raises(FileNotFoundError, match=r"not published.*subset='3696'"):
        pancreas(subset="739")
    assert offline == []


def test_download_is_cached(monkeypatch, tmp_path):
    calls = []

    def fake_download(url, path):
        calls.append(url)
        counts = np.ones((3, 2), dtype=np.int32)
        ad.AnnData(counts, layers={"spliced": counts, "unspliced": counts}).write_h5ad(path)

    monkeypatch.setattr(settings, "_data_dir", tmp_path)
    monkeypatch.setattr(_loaders, "_download", fake_download)
    assert pancreas().shape == (3, 2)
    assert pancreas().shape == (3, 2)
    assert len(calls) == 1
    assert (tmp_path / "endocrinogenesis_day15.h5ad").is_file()


def test_invalid_subset():
    with pytest.raises(ValueError, match="subset='100'"):
        pancreas(subset="100")


def test_failed_download_leaves_no_partial_file(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(_loaders.urllib.request, "urlopen", refuse)
    with pytest.raises(OSError, match="offline"):
        _loaders._download("https://example.org/x.h5ad", tmp_path / "sub" / "x.h5ad")
    assert list((tmp_path / "sub").iterdir()) == []
