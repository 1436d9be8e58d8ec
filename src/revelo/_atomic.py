"""Writing a file or folder so that a failure never leaves a half-written or lost result.

The new content is written to a hidden sibling of the target first; only once it is complete
does it take the target's place (an earlier result is moved aside, then deleted), so a
failing write leaves any earlier result as it was.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def write_atomically(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(path)`` on a temporary sibling of ``target``, then move it into place.

    Parameters
    ----------
    target
        The file or folder to create or replace.
    write
        Writes the content to the path it is given (which does not exist yet).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    # The suffix stays last: writers such as AnnData's read the format from it.
    staging = target.parent / f".{target.stem}.writing-{tag}{target.suffix}"
    try:
        write(staging)
    except BaseException:
        _remove(staging)
        raise
    if not target.exists():
        staging.rename(target)
        return
    replaced = target.parent / f".{target.name}.replaced-{tag}"
    target.rename(replaced)
    try:
        staging.rename(target)
    except BaseException:
        replaced.rename(target)
        _remove(staging)
        raise
    _remove(replaced)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
