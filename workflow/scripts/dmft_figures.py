"""Rule `dmft_figures`: DMFT curves over the simulations, and their relative deviation."""

import matplotlib.pyplot as plt
from _common import setup_logging
from sim_plots import learning_curves, theory_deviation

from dln_kernels.pipeline.io import open_netcdf

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
with open_netcdf(smk.input.sims) as sims, open_netcdf(smk.input.dmft) as dmft:
    sims, dmft = sims.load(), dmft.load()
for fig, path in ((learning_curves(sims, theory=dmft), smk.output.curves), (theory_deviation(sims, dmft), smk.output.deviation)):
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)
