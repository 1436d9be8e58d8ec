"""Benchmarks of revelo against VeloVI and scVelo (run as ``python -m benchmarks.<name>``).

Thread pools are sized when numpy, torch and numba are first imported, so the limits are set
here, before any benchmark module imports them. Set the variables yourself to override them.
Real data sets are read from ``REVELO_DATA_DIR``, which defaults here to the ``shared/data``
folder next to the repository when it exists (revelo's own default is the per-user cache).
"""

import os
from pathlib import Path

#: The thread-pool variables set to 1 here unless already set.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
for _name in THREAD_VARIABLES:
    os.environ.setdefault(_name, "1")

_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if _SHARED_DATA.is_dir():
    os.environ.setdefault("REVELO_DATA_DIR", str(_SHARED_DATA))
