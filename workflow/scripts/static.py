"""Rule `static`: long-time theory on the sweep's grid (root group) and on dense grids (groups);
layout in docs/file_formats.md (``dln_kernels.pipeline.io.static_dataset``)."""

import time

import numpy as np
from _common import full_sweep, json_param, setup_logging

from dln_kernels.pipeline.io import static_dataset, write_netcdf
from dln_kernels.pipeline.provenance import provenance
from dln_kernels.pipeline.run import static_grids, static_on_grid

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
sweep = json_param(smk, "sweep")  # grid, prior, static: what the theory is computed from
attrs = provenance(
    {"sweep_name": smk.params.sweep_name, "sweep": full_sweep(smk)}, backend="numpy", dtype="float64",
    seeds=[], base_seed=full_sweep(smk)["base_seed"],
)
datasets = {}
for name, coords in static_grids(sweep).items():
    t0 = time.perf_counter()
    res = static_on_grid(coords, sweep["prior"], sweep.get("network", "uv"))
    n = res["e_test_final"].size
    n_bad = int((~res["converged"]).sum())
    log.info("%s: %d points in %.2f s (%.0f points/s), %d not converged", name, n,
             time.perf_counter() - t0, n / (time.perf_counter() - t0), n_bad)
    if n_bad:
        log.warning("%s: %d points did not converge (max residual %.3g); their errors are NaN",
                    name, n_bad, float(np.nanmax(np.where(res["converged"], np.nan, res["residual"]))))
    title = f"long-time theory, sweep {smk.params.sweep_name}, grid {name}"
    datasets[name] = static_dataset(name, coords, res, {**attrs, "title": title})

root = datasets.pop("grid")
write_netcdf(root, smk.output[0], groups=datasets)
log.info("wrote %s", smk.output[0])
