"""Rules `aggregate` and `aggregate_dmft`: combine chunk files into one netCDF4/HDF5 Dataset."""

import json

from _common import full_sweep, json_param, setup_logging

from dln_kernels.model.designs import provenance as design_provenance
from dln_kernels.model.designs import resolve_designs
from dln_kernels.pipeline.io import CHUNK_SCHEMA, DMFT_SCHEMA, aggregate_chunks, chunk_attrs_summary, write_netcdf
from dln_kernels.pipeline.provenance import provenance

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
sweep = json_param(smk, "sweep")  # the keys this rule reads
is_dmft = smk.rule == "aggregate_dmft"
attrs = provenance(
    {"sweep_name": smk.params.sweep_name, "sweep": full_sweep(smk)},
    backend=sweep["backend"], dtype=sweep["dtype"], seeds=range(full_sweep(smk)["seeds"]),
    base_seed=full_sweep(smk)["base_seed"],
)
what = "DMFT" if is_dmft else "DLN gradient-descent simulations"
attrs["title"] = f"{what}, sweep {smk.params.sweep_name}"
attrs["chunks"] = chunk_attrs_summary(smk.input)
if not is_dmft and "design" in sweep:  # a sweep over designs: where each comes from (with sha256)
    attrs["designs"] = json.dumps([design_provenance(d) for d in resolve_designs(full_sweep(smk))], sort_keys=True)
ds = aggregate_chunks(
    list(smk.input), sweep, attrs,
    schema=DMFT_SCHEMA if is_dmft else CHUNK_SCHEMA, with_seed=not is_dmft,
)
write_netcdf(ds, smk.output[0])
log.info("wrote %s: %s", smk.output[0], dict(ds.sizes))
