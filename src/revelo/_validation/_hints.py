"""The call that writes each prerequisite, quoted by the checks' error messages."""

from __future__ import annotations

HINT_VELOCITY = "run model.add_outputs(adata) first"
HINT_MOMENTS = "run revelo.pp.preprocess(adata) first"
HINT_NEIGHBORS = "run scanpy.pp.neighbors(adata) (or revelo.pp.preprocess(adata)) first"
