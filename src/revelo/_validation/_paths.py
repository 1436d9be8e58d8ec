"""Checks of a path a result will be written to, made before any work is done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_output_path(output: str | Path, *, inputs: tuple[str | Path, ...], force: bool) -> None:
    """Raise unless ``output`` can be written without destroying an input or an earlier result.

    Parameters
    ----------
    output
        The file to write.
    inputs
        Files the run reads; none of them may be ``output``.
    force
        Allow replacing an existing ``output``.

    Raises
    ------
    ValueError
        When ``output`` is one of ``inputs`` or a folder.
    FileExistsError
        When ``output`` exists and ``force`` is off.
    FileNotFoundError
        When the folder of ``output`` does not exist.
    PermissionError
        When nothing can be written into the folder of ``output``.
    """
    output = Path(output)
    for path in map(Path, inputs):
        same = output.resolve() == path.resolve() or (
            output.exists() and path.exists() and os.path.samefile(output, path)
        )
        if same:
            msg = (
                f"The output {str(output)!r} is the input file; writing it would replace the "
                "raw data. Choose another output path, e.g. "
                f"{str(path.with_name(path.stem + '_revelo.h5ad'))!r}."
            )
            raise ValueError(msg)
    if output.is_dir():
        msg = f"The output {str(output)!r} is a folder; give the path of an .h5ad file to write."
        raise ValueError(msg)
    if output.exists() and not force:
        msg = (
            f"The output {str(output)!r} already exists; pass --force to replace it, or choose "
            "another path."
        )
        raise FileExistsError(msg)
    folder = output.parent
    if not folder.is_dir():
        msg = (
            f"The folder {str(folder)!r} of the output does not exist; create it "
            f"(`mkdir -p {folder}`) or choose another path."
        )
        raise FileNotFoundError(msg)
    try:
        # os.access misses read-only file systems and ACLs; a real file does not.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".revelo-write-check-"):
            pass
    except OSError as error:
        msg = (
            f"Cannot write into {str(folder)!r} ({error.strerror or error}); choose an output "
            "path in a folder you can write to."
        )
        raise PermissionError(msg) from error
