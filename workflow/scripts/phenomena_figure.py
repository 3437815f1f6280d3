"""Rules `phenomenon_*`: a phenomenon figure (and its table of measured numbers) of a sweep."""

import matplotlib.pyplot as plt
from _common import json_param, setup_logging
import phenomena_plots

from dln_kernels.measure.phenomenon_kinds import PHENOMENON_KINDS
from dln_kernels.pipeline.io import open_netcdf

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
kind, prior = smk.params.kind, json_param(smk, "prior")
with open_netcdf(smk.input.sims) as sims, open_netcdf(smk.input.dmft) as dmft:
    sims, dmft = sims.load(), dmft.load()
row = PHENOMENON_KINDS[kind]  # the phenomena table: measurement, drawing function, extra outputs
m = row.measure(sims, dmft, prior) if row.reads_prior else row.measure(sims, dmft)
fig, tab = getattr(phenomena_plots, row.figure)(m, sims, dmft, prior), m["table"]
for name in row.extra_outputs:  # further tables of the measurement (e.g. a fit's coefficients)
    m[name].to_csv(getattr(smk.output, name), index=False)
    log.info("%s:\n%s", name, m[name].to_string())
fig.savefig(smk.output.fig, dpi=130, bbox_inches="tight")
plt.close(fig)
tab.to_csv(smk.output.table, index=False)
log.info("measured:\n%s", tab.to_string())
log.info("wrote %s and %s", smk.output.fig, smk.output.table)
