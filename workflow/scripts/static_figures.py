"""Rule `static_figures`: long-time phase diagram, recovery diagram and final error vs α."""

import matplotlib.pyplot as plt
import xarray as xr
from _common import json_param, setup_logging
from static_plots import fig_alpha_delta, fig_delta_rho, fig_error_vs_alpha

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
prior = json_param(smk, "prior")
with xr.open_dataset(smk.input.sims, engine="h5netcdf") as sims:
    sims = sims.load()
groups = {}
for group in ("alpha_delta", "delta_rho"):
    with xr.open_dataset(smk.input.static, engine="h5netcdf", group=group) as ds:
        groups[group] = ds.load()
alpha_small = float(sims["alpha"].min())
below_one = sims["delta"].values[sims["delta"].values < 1]
delta_fixed = float(below_one[0]) if below_one.size else float(sims["delta"].values[0])
figures = (
    (fig_alpha_delta(groups["alpha_delta"], sims), smk.output.phase),
    (fig_delta_rho(groups["delta_rho"], sims, alpha=alpha_small, prior=prior, threshold=smk.params.recovery_threshold), smk.output.recovery),
    (fig_error_vs_alpha(groups["alpha_delta"], sims, delta=delta_fixed, prior=prior), smk.output.versus_alpha),
)
for fig, path in figures:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)
