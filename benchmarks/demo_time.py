"""Wall time of ``make demo`` in a fresh clone, as a new user runs it.

Run from the repository root::

    python -m benchmarks.demo_time --busy

The committed ``HEAD`` is cloned into a temporary folder and ``make demo`` runs there twice:
first from nothing (virtual environment, installation, then the demo), then once more (the
demo alone). ``--busy`` keeps one other process spinning on a CPU for the whole run, as on a
shared machine; ``--cold-pip-cache`` gives pip an empty cache, as on a machine that has never
installed these packages (the downloads then depend on the network). The machine's 1-minute
load is recorded before and after each run. Results: a table on stdout and
``benchmarks/results/demo_time.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import THREAD_VARIABLES
from ._common import environment, write_json

OUT = Path(__file__).parent / "results" / "demo_time.json"
ROOT = Path(__file__).resolve().parent.parent


def _spin() -> subprocess.Popen:
    """Another process keeping one CPU busy until it is stopped."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _timed_make(folder: Path, env: dict[str, str]) -> dict:
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(
        ["make", "demo"], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"make demo failed in {folder}:\n{done.stdout}\n{done.stderr}")
    return {"seconds": seconds, "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    """Clone, time both runs of ``make demo``, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="one other process spins meanwhile")
    parser.add_argument("--cold-pip-cache", action="store_true", help="pip starts uncached")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIRTUAL_ENV")}
    # What a new user's shell has: no thread settings of this process, no revelo on the path.
    for key in (*THREAD_VARIABLES, "PYTHONPATH", "REVELO_DATA_DIR"):
        env.pop(key, None)
    spinner = _spin() if args.busy else None
    try:
        with tempfile.TemporaryDirectory(prefix="revelo-demo-") as tmp:
            if args.cold_pip_cache:
                env["PIP_CACHE_DIR"] = str(Path(tmp) / "pip-cache")
            clone = Path(tmp) / "revelo"
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
            runs = {"fresh clone": _timed_make(clone, env), "again": _timed_make(clone, env)}
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    runs["install (difference)"] = {
        "seconds": runs["fresh clone"]["seconds"] - runs["again"]["seconds"]
    }

    print(f"make demo, commit {commit}, {os.cpu_count()} CPUs, busy process: {args.busy}")
    for name, run in runs.items():
        load = (
            f"  load {run['load_before']:.2f} -> {run['load_after']:.2f}"
            if "load_before" in run
            else ""
        )
        print(f"  {name:<22}{run['seconds']:8.1f} s{load}")
    payload = {
        "environment": environment(),
        "commit": commit,
        "cpus": os.cpu_count(),
        "busy_process": args.busy,
        "cold_pip_cache": args.cold_pip_cache,
        "runs": runs,
    }
    print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
