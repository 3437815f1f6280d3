"""Rule `simulate`: integrate one chunk of a sweep and write it as an HDF5 chunk file."""

import json

from _common import full_sweep, json_param, setup_logging

from dln_kernels.pipeline import chunk_cache
from dln_kernels.model.designs import provenance as design_provenance
from dln_kernels.pipeline.io import write_chunk
from dln_kernels.pipeline.provenance import fixed_threads, provenance
from dln_kernels.pipeline.chunks import chunk_d
from dln_kernels.pipeline.run import run_chunk

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
key = chunk_cache.job_key(smk.params.sweep, smk.params.chunk)
sweep, chunk = json_param(smk, "sweep"), json_param(smk, "chunk")
log.info(
    "sweep %s chunk %s: delta=%s, seeds=%s, %d members, d=%d, backend=%s, %d BLAS threads",
    smk.params.sweep_name, chunk["name"], chunk["delta"], chunk["seeds"], len(chunk["members"]),
    chunk_d(sweep, chunk), sweep["backend"], sweep["threads"],
)
if chunk_cache.restore(smk.output[0], key):  # finished by an earlier, interrupted workflow run
    log.info("reused the finished chunk %s (same params and code; key %s): not computed again", smk.output[0], key)
    raise SystemExit(0)
try:
    with fixed_threads(sweep["threads"]) as threads:  # the sweep's count, not Snakemake's scaled one
        result = run_chunk(sweep, chunk, progress_every=10.0)
except Exception:
    log.exception("simulation of chunk %s failed", chunk["name"])
    raise
attrs = provenance(
    {"sweep_name": smk.params.sweep_name, "sweep": full_sweep(smk), "chunk": chunk},
    backend=result["backend"], dtype=sweep["dtype"], seeds=chunk["seeds"],
    base_seed=sweep["base_seed"], threads=threads,
)
if "design" in chunk:  # source, package version and sha256 of the design's pool
    attrs["design"] = json.dumps(design_provenance(chunk["design"]), sort_keys=True)
write_chunk(smk.output[0], result, attrs)
chunk_cache.store(smk.output[0], key)
log.info("wrote %s (%d runs x %d times)", smk.output[0], *result["e_train"].shape)
