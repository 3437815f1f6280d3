"""Recompute a chunk file from its own provenance, bit for bit.

A chunk stores the resolved sweep, its chunk (grid points, seeds), backend, dtype and the BLAS
thread count its kernel ran with (``threads``). With the same package versions and backend,
running the same kernel under the same thread count reproduces every stored array exactly; a
different thread count changes the last bits (BLAS splits its sums by thread), which is why the
count is recorded and restored here.
"""

from __future__ import annotations

import json

from dln_kernels.pipeline.io import CHUNK_SCHEMA, DMFT_SCHEMA, open_h5
from dln_kernels.pipeline.provenance import fixed_threads


def recompute_chunk(path) -> dict:
    """Recompute the simulation or DMFT chunk at ``path``; returns the kernel's result dict plus
    ``schema`` (the file's schema string). Raises KeyError if the file lacks provenance."""
    from dln_kernels.pipeline.run import run_chunk, run_dmft_chunk

    with open_h5(path) as f:
        schema = str(f.attrs["schema"])
        config = json.loads(f.attrs["config"])
        threads = int(f.attrs.get("threads", config["sweep"]["threads"]))
    with fixed_threads(threads):
        if schema == DMFT_SCHEMA:
            out = run_dmft_chunk(config["sweep"], config["chunk"], progress=False)
        elif schema == CHUNK_SCHEMA:
            out = run_chunk(config["sweep"], config["chunk"], progress_every=None)
        else:
            raise ValueError(f"{path}: schema {schema!r} is not a chunk this module can recompute")
    out["schema"] = schema
    return out
