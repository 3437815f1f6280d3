"""Rules `phenomenon_*`: a phenomenon figure (and its table of measured numbers) of a sweep."""

import matplotlib.pyplot as plt
from _common import json_param, setup_logging
from phenomena_plots import (
    depth_escape,
    grokking_curves,
    grokking_delay,
    incremental,
    lazy_time,
    search_phase,
    sgd_noise,
    step_size,
    timescales,
    tradeoff,
    universality,
)

from dln_kernels.pipeline.io import open_netcdf

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
kind, prior = smk.params.kind, json_param(smk, "prior")
with open_netcdf(smk.input.sims) as sims, open_netcdf(smk.input.dmft) as dmft:
    sims, dmft = sims.load(), dmft.load()
if kind == "search_phase":
    fig, tab = search_phase(sims, dmft, prior)
elif kind == "lazy_time":
    fig, tab = lazy_time(sims, dmft, prior)
elif kind == "incremental":
    fig, tab = incremental(sims, dmft, prior)
elif kind == "grokking_curves":
    fig, tab = grokking_curves(sims, dmft)
elif kind == "grokking_delay":
    fig, tab, summary = grokking_delay(sims, dmft)
    summary.to_csv(smk.output.summary, index=False)
    log.info("delay fit:\n%s", summary.to_string())
elif kind == "tradeoff":
    fig, tab = tradeoff(sims, dmft)
elif kind == "depth_escape":
    fig, tab, fits = depth_escape(sims, dmft, prior)
    fits.to_csv(smk.output.fits, index=False)
    log.info("power-law fits:\n%s", fits.to_string())
elif kind == "universality":
    fig, tab = universality(sims, dmft)
elif kind == "timescales":
    fig, tab = timescales(sims, dmft, prior)
elif kind == "sgd_noise":
    fig, tab = sgd_noise(sims, dmft)
elif kind == "step_size":
    fig, tab = step_size(sims, dmft, prior)
else:
    raise ValueError(f"unknown phenomenon figure {kind!r}")
fig.savefig(smk.output.fig, dpi=130, bbox_inches="tight")
plt.close(fig)
tab.to_csv(smk.output.table, index=False)
log.info("measured:\n%s", tab.to_string())
log.info("wrote %s and %s", smk.output.fig, smk.output.table)
