"""Rule `static_figures`: long-time phase diagram, recovery diagram and final error vs α."""

import matplotlib.pyplot as plt
from _common import json_param, setup_logging
from static_plots import fig_alpha_delta, fig_delta_rho, fig_error_vs_alpha

from dln_kernels.pipeline.io import open_netcdf
from dln_kernels.registry import PHASE_PLANES

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
prior = json_param(smk, "prior")
with open_netcdf(smk.input.sims) as sims:
    sims = sims.load()
groups = {}
for group in PHASE_PLANES:
    with open_netcdf(smk.input.static, group=group) as ds:
        # the plots select on the grid axes by name: alpha_dense -> alpha (a group has one of each)
        groups[group] = ds.load().rename({d: d.removesuffix("_dense") for d in ds.dims if d.endswith("_dense")})
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
