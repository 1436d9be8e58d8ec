"""Benchmarks of revelo against VeloVI and scVelo (run as ``python -m benchmarks.<name>``).

Thread pools are sized when numpy, torch and numba are first imported, so the limits are set
here, before any benchmark module imports them. Set the variables yourself to override them.
"""

import os

for _name in (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ.setdefault(_name, "1")
