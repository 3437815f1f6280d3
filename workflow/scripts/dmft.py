"""Rule `dmft`: solve the DMFT for one chunk of grid points and write it as HDF5."""

from _common import plain, setup_logging
from threadpoolctl import threadpool_limits

from dln_kernels.io import DMFT_SCHEMA, write_chunk
from dln_kernels.provenance import provenance
from dln_kernels.sweep import run_dmft_chunk

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
sweep, chunk = plain(smk.params.sweep), plain(smk.params.chunk)
log.info("sweep %s DMFT chunk %d: %d points, %s", smk.params.sweep_name, chunk["index"], len(chunk["points"]), sweep["dmft"])
try:
    with threadpool_limits(limits=smk.threads):
        result = run_dmft_chunk(sweep, chunk)
except Exception:
    log.exception("DMFT chunk %d failed", chunk["index"])
    raise
attrs = provenance(
    # the full sweep (grid included) from the validated config, not the trimmed params
    {"sweep_name": smk.params.sweep_name, "sweep": plain(smk.config["sweeps"][smk.params.sweep_name]), "chunk": chunk},
    backend=result["backend"], dtype=sweep["dtype"], seeds=[sweep["dmft"]["seed"]],
    base_seed=sweep["dmft"]["seed"], repo=smk.params.repo,
)
write_chunk(smk.output[0], result, attrs, schema=DMFT_SCHEMA)
log.info("wrote %s", smk.output[0])
