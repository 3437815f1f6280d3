"""Rules `aggregate` and `aggregate_dmft`: combine chunk files into one netCDF4/HDF5 Dataset."""

from _common import plain, setup_logging

from dln_kernels.io import CHUNK_SCHEMA, DMFT_SCHEMA, aggregate_chunks, chunk_attrs_summary, write_netcdf
from dln_kernels.provenance import provenance

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
sweep = plain(smk.params.sweep)
is_dmft = smk.rule == "aggregate_dmft"
attrs = provenance(
    {"sweep_name": smk.params.sweep_name, "sweep": sweep},
    backend=sweep["backend"], dtype=sweep["dtype"], seeds=range(sweep["seeds"]),
    base_seed=sweep["base_seed"], repo=smk.params.repo,
)
what = "DMFT" if is_dmft else "DLN gradient-descent simulations"
attrs["title"] = f"{what}, sweep {smk.params.sweep_name}"
attrs["chunks"] = chunk_attrs_summary(smk.input)
ds = aggregate_chunks(
    list(smk.input), sweep, attrs,
    schema=DMFT_SCHEMA if is_dmft else CHUNK_SCHEMA, with_seed=not is_dmft,
)
write_netcdf(ds, smk.output[0])
log.info("wrote %s: %s", smk.output[0], dict(ds.sizes))
