"""Rule `figures`: learning curves and the α × δ phase diagram of a sweep."""

import matplotlib.pyplot as plt
import xarray as xr
from _common import setup_logging
from sim_plots import learning_curves, phase_diagram

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
with xr.open_dataset(smk.input.sims, engine="h5netcdf") as ds:
    ds = ds.load()
for fig, path in ((learning_curves(ds), smk.output.curves), (phase_diagram(ds), smk.output.phase)):
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)
