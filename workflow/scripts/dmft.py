"""Rule `dmft`: solve the DMFT for one chunk of grid points and write it as HDF5."""

import json

from _common import full_sweep, json_param, setup_logging

from dln_kernels.model.designs import spectrum_provenance
from dln_kernels.pipeline import chunk_cache
from dln_kernels.pipeline.io import DMFT_SCHEMA, write_chunk
from dln_kernels.pipeline.provenance import fixed_threads, provenance
from dln_kernels.pipeline.run import run_dmft_chunk

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
key = chunk_cache.job_key(smk.params.sweep, smk.params.chunk)
sweep, chunk = json_param(smk, "sweep"), json_param(smk, "chunk")
log.info("sweep %s DMFT chunk %s: %d points, %s, %d BLAS threads, spectrum of design %s", smk.params.sweep_name,
         chunk["name"], len(chunk["points"]), sweep["dmft"], sweep["threads"],
         chunk["design"]["name"] if "design" in chunk else "none (isotropic)")
if chunk_cache.restore(smk.output[0], key):  # finished by an earlier, interrupted workflow run
    log.info("reused the finished chunk %s (same params and code; key %s): not computed again", smk.output[0], key)
    raise SystemExit(0)
try:
    with fixed_threads(sweep["threads"]) as threads:  # the sweep's count, not Snakemake's scaled one
        result = run_dmft_chunk(sweep, chunk)
except Exception:
    log.exception("DMFT chunk %s failed", chunk["name"])
    raise
attrs = provenance(
    {"sweep_name": smk.params.sweep_name, "sweep": full_sweep(smk), "chunk": chunk},
    backend=result["backend"], dtype=sweep["dtype"], seeds=[sweep["dmft"]["seed"]],
    base_seed=sweep["dmft"]["seed"], threads=threads,
)
if "design" in chunk:  # the spectrum this chunk solved (its theory, lambda_max, sha256)
    attrs["spectrum"] = json.dumps(spectrum_provenance(chunk["design"]), sort_keys=True)
write_chunk(smk.output[0], result, attrs, schema=DMFT_SCHEMA)
chunk_cache.store(smk.output[0], key)
log.info("wrote %s", smk.output[0])
