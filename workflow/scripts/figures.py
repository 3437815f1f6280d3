"""Rule `figures`: learning curves and the α × δ phase diagram of a sweep."""

import matplotlib.pyplot as plt
from _common import setup_logging
from sim_plots import learning_curves, phase_diagram

from dln_kernels.pipeline.io import open_netcdf

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
with open_netcdf(smk.input.sims) as ds:
    ds = ds.load()
for fig, path in ((learning_curves(ds), smk.output.curves), (phase_diagram(ds), smk.output.phase)):
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)
