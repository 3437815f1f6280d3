"""Rule `simulate`: integrate one chunk of a sweep and write it as an HDF5 chunk file."""

from _common import plain, setup_logging
from threadpoolctl import threadpool_limits

from dln_kernels.io import write_chunk
from dln_kernels.provenance import provenance
from dln_kernels.sweep import run_chunk

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
sweep, chunk = plain(smk.params.sweep), plain(smk.params.chunk)
log.info(
    "sweep %s chunk %d: delta=%s, seeds=%s, %d members, d=%d, backend=%s",
    smk.params.sweep_name, chunk["index"], chunk["delta"], chunk["seeds"], len(chunk["members"]),
    sweep["d"], sweep["backend"],
)
try:
    with threadpool_limits(limits=smk.threads):
        result = run_chunk(sweep, chunk, progress_every=10.0)
except Exception:
    log.exception("simulation of chunk %d failed", chunk["index"])
    raise
attrs = provenance(
    # the full sweep (grid included) from the validated config, not the trimmed params
    {"sweep_name": smk.params.sweep_name, "sweep": plain(smk.config["sweeps"][smk.params.sweep_name]), "chunk": chunk},
    backend=result["backend"], dtype=sweep["dtype"], seeds=chunk["seeds"],
    base_seed=sweep["base_seed"], repo=smk.params.repo,
)
write_chunk(smk.output[0], result, attrs)
log.info("wrote %s (%d runs x %d times)", smk.output[0], *result["e_train"].shape)
