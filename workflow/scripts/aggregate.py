"""Rules `aggregate` and `aggregate_dmft`: combine chunk files into one netCDF4/HDF5 Dataset."""

import json
from pathlib import Path

from _common import full_sweep, json_param, setup_logging

from dln_kernels.model.designs import provenance as design_provenance
from dln_kernels.model.designs import resolve_designs, spectrum_provenance
from dln_kernels.pipeline.chunks import ISOTROPIC, spectra
from dln_kernels.pipeline.io import CHUNK_SCHEMA, DMFT_SCHEMA, aggregate_to_netcdf
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
attrs["chunks"] = None  # filled by aggregate_to_netcdf from the chunks' own attributes (here: the attribute order)
if not is_dmft and "design" in sweep:  # a sweep over designs: where each comes from (with sha256)
    attrs["designs"] = json.dumps([design_provenance(d) for d in resolve_designs(full_sweep(smk))], sort_keys=True)
if is_dmft and spectra(sweep):  # per label of the design dim: which theory its spectrum gives
    attrs["spectra"] = json.dumps([spectrum_provenance(d) for d in resolve_designs(full_sweep(smk))]
                                  + [{"design": ISOTROPIC, "theory": "isotropic", "lambda_max": 1.0}], sort_keys=True)
# Streaming and incremental (pipeline.io.aggregate_to_netcdf): memory bounded by the output, written
# atomically; only chunks the previous output lacks are read. Snakemake deletes an output before its
# job runs, so the previous one is kept as a hard link under results/NAME/.cache/.
out = Path(smk.output[0])
info = aggregate_to_netcdf(list(smk.input), out, sweep, attrs, schema=DMFT_SCHEMA if is_dmft else CHUNK_SCHEMA,
                           with_seed=not is_dmft, previous=out.parent / ".cache" / out.name)
log.info("wrote %s: %s", out, info)
