"""Loaders for published RNA-velocity data sets.

Each loader first looks in :attr:`revelo.settings.data_dir` for a prepared file, then for a
previously downloaded original, and only then downloads the original into that folder.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anndata as ad

from .._settings import settings
from .._validation import check_choice

if TYPE_CHECKING:
    from anndata import AnnData

_PANCREAS_URL = (
    "https://github.com/theislab/scvelo_notebooks/raw/master/data/Pancreas/"
    "endocrinogenesis_day15.h5ad"
)
_DENTATEGYRUS_URL = (
    "https://github.com/theislab/scvelo_notebooks/raw/master/data/DentateGyrus/10X43_1.h5ad"
)


def pancreas(*, subset: Literal["3696", "739"] = "3696") -> AnnData:
    """Pancreatic endocrinogenesis at E15.5 (Bastidas-Ponce et al. 2019).

    Expected flow: Ductal → Ngn3 low EP → Ngn3 high EP → Pre-endocrine → Alpha, Beta, Delta and
    Epsilon cells.

    Parameters
    ----------
    subset
        ``"3696"``: all 3,696 cells (``pancreas_3696.h5ad``: 2,000 genes; when absent, the
        published original with every gene, ``endocrinogenesis_day15.h5ad``, is read or
        downloaded). ``"739"``: a random subsample of 739 cells with 7,192 genes
        (``pancreas_739.h5ad``), available locally only.

    Returns
    -------
    AnnData with raw counts in ``layers["spliced"]`` and ``layers["unspliced"]`` and cell types
    in ``obs["clusters"]``.

    Raises
    ------
    FileNotFoundError
        When the file is absent and cannot be downloaded.
    """
    check_choice("subset", subset, ("3696", "739"))
    if subset == "739":
        path = settings.data_dir / "pancreas_739.h5ad"
        if not path.is_file():
            msg = (
                f"{path} does not exist and this subsample is not published for download. "
                "Set `revelo.settings.data_dir` (or REVELO_DATA_DIR) to the folder holding "
                "pancreas_739.h5ad, or use `pancreas(subset='3696')`."
            )
            raise FileNotFoundError(msg)
        return _read(path)
    return _read_or_download("pancreas_3696.h5ad", "endocrinogenesis_day15.h5ad", _PANCREAS_URL)


def dentategyrus() -> AnnData:
    """Dentate gyrus neurogenesis (Hochgerner et al. 2018).

    Reads ``dentategyrus_200.h5ad`` (200 cells, 530 genes, published UMAP) from
    :attr:`revelo.settings.data_dir`; when absent, the published original with every cell and
    gene (``dentategyrus_10X43_1.h5ad``) is read or downloaded.

    Returns
    -------
    AnnData with raw counts in ``layers["spliced"]`` and ``layers["unspliced"]`` and cell types
    in ``obs["clusters"]``.

    Raises
    ------
    FileNotFoundError
        When the file is absent and cannot be downloaded.
    """
    return _read_or_download(
        "dentategyrus_200.h5ad", "dentategyrus_10X43_1.h5ad", _DENTATEGYRUS_URL
    )


def _read_or_download(prepared: str, original: str, url: str) -> AnnData:
    """Read ``prepared`` or ``original`` from the data folder; download ``original`` if need be."""
    folder = settings.data_dir
    for name in (prepared, original):
        if (folder / name).is_file():
            return _read(folder / name)
    path = folder / original
    try:
        _download(url, path)
    except OSError as error:
        msg = (
            f"Neither {folder / prepared} nor {path} exists, and downloading {url} failed "
            f"({error}). Download it by hand to {path}, or point `revelo.settings.data_dir` "
            "(or the REVELO_DATA_DIR environment variable) to a folder holding "
            f"{prepared}."
        )
        raise FileNotFoundError(msg) from error
    return _read(path)


def _read(path: Path) -> AnnData:
    """Read a cached data set; a damaged file is named with how to replace it."""
    try:
        return ad.read_h5ad(path)
    except Exception as error:  # h5py and anndata raise several types for a damaged file
        msg = (
            f"The data file {path} cannot be read ({type(error).__name__}: {error}); it is "
            "damaged or incomplete. Delete it so that it is downloaded again, or replace it "
            "with a good copy."
        )
        raise ValueError(msg) from error


def _download(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` through a temporary file, so no partial file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError:  # includes urllib's URLError
            tmp.close()
            Path(tmp.name).unlink(missing_ok=True)
            raise
    Path(tmp.name).replace(path)
