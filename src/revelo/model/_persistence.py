"""Saving and loading a model: refuse to overwrite by accident, check the genes on load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Self

import torch

from revelo._atomic import write_atomically
from revelo._validation import check_same_genes

if TYPE_CHECKING:
    from anndata import AnnData


class PersistenceMixin:
    """``save`` and ``load`` of a scvi-tools model, with revelo's checks around them."""

    def save(
        self,
        dir_path: str | Path,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **kwargs,
    ) -> None:
        """Save the weights, options and gene names to ``dir_path`` (a folder).

        Parameters
        ----------
        dir_path
            Folder to write; it must not exist unless ``overwrite=True``.
        prefix
            Prefix of the file names.
        overwrite
            Replace what an earlier save wrote in ``dir_path``. The new save is written to a
            temporary folder next to it first and takes its place only when complete, so a
            failing save leaves the earlier one intact.
        save_anndata
            Also write the model's AnnData as ``adata.h5ad``.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save`.
        """
        if Path(dir_path).exists() and not overwrite:
            msg = (
                f"{str(dir_path)!r} already exists; pass overwrite=True to replace what is "
                "saved there, or choose another folder."
            )
            raise ValueError(msg)
        # A failing save must not destroy the previous one: write aside, then swap.
        write_atomically(
            dir_path,
            lambda staging: super(PersistenceMixin, self).save(
                str(staging), prefix=prefix, overwrite=False, save_anndata=save_anndata, **kwargs
            ),
        )

    @classmethod
    def load(cls, dir_path: str | Path, adata: AnnData | None = None, **kwargs) -> Self:
        """Load a model written by :meth:`~revelo.REVELO.save`, in this or any other process.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData with the same genes, in the same order, as the model's training data, and
            the registered layers; it is registered as the model's was, which (re)writes
            ``uns["_scvi_uuid"]`` and ``uns["_scvi_manager_uuid"]`` and nothing else.
            Defaults to the AnnData saved with ``save_anndata=True``.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (``accelerator``,
            ``device``, ``prefix``, ``backup_url``).

        Raises
        ------
        FileNotFoundError
            When ``dir_path`` holds no saved model.
        ValueError
            When the genes of ``adata`` differ from the model's (the message names them).
        """
        model_file = Path(dir_path) / f"{kwargs.get('prefix') or ''}model.pt"
        if not model_file.is_file() and kwargs.get("backup_url") is None:
            msg = f"No saved model at {str(model_file)!r}; pass the folder given to `save`."
            raise FileNotFoundError(msg)
        if adata is not None and adata is not False and model_file.is_file():
            saved = torch.load(model_file, map_location="cpu", weights_only=False)
            check_same_genes(saved["var_names"], adata.var_names)
        return super().load(str(dir_path), adata=adata, **kwargs)
