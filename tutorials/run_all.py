"""Execute the tutorial notebooks from top to bottom and save them with their outputs.

The documentation shows the notebooks as they were last run (it never executes them), so after
a change to revelo that alters results, rerun them at full size and commit the outputs::

    python tutorials/run_all.py                      # every notebook, full size, in place
    python tutorials/run_all.py quickstart           # only the named notebooks
    python tutorials/run_all.py --fast --output-dir /tmp/tutorials   # reduced size, elsewhere

Saving in place needs ipywidgets (``pip install -e ".[doc]"``): without it scvi-tools' import
of ``tqdm.auto`` warns in every notebook, and the runner refuses. ``--fast`` sets
``REVELO_TUTORIAL_FAST=1``, which each notebook reads to pick fewer cells,
genes, epochs and posterior draws; the test suite runs them that way
(``tests/test_tutorials.py``). The kernel is the ``python3`` kernel of the interpreter running
this script. Real data sets are read from ``REVELO_DATA_DIR``, which defaults here to the
``shared/data`` folder next to the repository when it exists (revelo's own default is the
per-user cache ``~/.cache/revelo``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent
SHARED_DATA = TUTORIALS.parents[1] / "shared" / "data"
FAST_VARIABLE = "REVELO_TUTORIAL_FAST"


def notebooks(names: list[str] | None = None) -> list[Path]:
    """The notebooks in ``tutorials/``, or those named (with or without ``.ipynb``)."""
    found = sorted(TUTORIALS.glob("*.ipynb"))
    if not names:
        return found
    by_stem = {path.stem: path for path in found}
    unknown = [name for name in names if Path(name).stem not in by_stem]
    if unknown:
        msg = f"No tutorial named {unknown}; available: {sorted(by_stem)}."
        raise ValueError(msg)
    return [by_stem[Path(name).stem] for name in names]


def kernel_environment(*, fast: bool) -> dict[str, str]:
    """The environment for the notebook kernels: this process's, with the tutorials' settings."""
    env = dict(os.environ)
    if fast:
        env[FAST_VARIABLE] = "1"
    else:
        env.pop(FAST_VARIABLE, None)
    if "REVELO_DATA_DIR" not in env and SHARED_DATA.is_dir():
        env["REVELO_DATA_DIR"] = str(SHARED_DATA)
    # A non-interactive backend (e.g. MPLBACKEND=Agg from `make test`) would keep the figures
    # out of the saved outputs; the kernel's inline backend captures them.
    env.pop("MPLBACKEND", None)
    return env


def execute(path: Path, *, fast: bool, output: Path | None = None, timeout: int = 600) -> float:
    """Run the notebook at ``path``; write it with its outputs to ``output`` (default: in place).

    Nothing is written when a cell fails: :class:`nbclient.exceptions.CellExecutionError` is
    raised with the cell's traceback. Returns the run time in seconds.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # no per-cell timestamps: the committed files diff cleanly
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    start = time.perf_counter()
    client.execute(env=kernel_environment(fast=fast))
    seconds = time.perf_counter() - start
    target = output or path
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--fast", action="store_true", help=f"set {FAST_VARIABLE}=1")
    parser.add_argument("--output-dir", type=Path, help="write here instead of in place")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("ipywidgets") is None and args.output_dir is None:
        # scvi-tools imports tqdm.auto, which warns in every notebook without it, and the
        # warning would be saved with the outputs the documentation shows.
        print(
            "ipywidgets is not installed: the saved notebooks would show tqdm's warning. "
            'Install the documentation extra first: pip install -e ".[doc]"',
            file=sys.stderr,
        )
        return 2

    failed = []
    for path in notebooks(args.names):
        output = args.output_dir / path.name if args.output_dir else None
        print(f"{path.name}: running ({'fast' if args.fast else 'full size'})", flush=True)
        try:
            seconds = execute(path, fast=args.fast, output=output, timeout=args.timeout)
        except Exception as error:  # report every failing notebook, not only the first
            failed.append(path.name)
            print(f"{path.name}: FAILED\n{error}", file=sys.stderr, flush=True)
            continue
        print(f"{path.name}: done in {seconds:.0f} s -> {output or path}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
