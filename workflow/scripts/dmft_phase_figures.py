"""Rule `dmft_phase_diagram`: final E_test of the DMFT, the long-time theory and the simulations
over the sweep's two varied axes, and the DMFT / simulation maps at several times (with tables)."""

import matplotlib.pyplot as plt
from _common import setup_logging
from phase_plots import dmft_phase_diagram, dmft_phase_times

from dln_kernels.pipeline.io import open_netcdf
from dln_kernels.measure.phase_diagram import phase_summary, phase_table, phase_time_table

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
# the root group of static.nc: the long-time theory at exactly the sweep's grid values
with open_netcdf(smk.input.sims) as sims, open_netcdf(smk.input.dmft) as dmft, open_netcdf(smk.input.static) as static:
    sims, dmft, static = sims.load(), dmft.load(), static.load()
table = phase_table(dmft, sims, static)
times = phase_time_table(dmft, sims)
summary = phase_summary(table)
log.info("phase diagram over %s, fixed %s: %s", table.attrs["axes"], table.attrs["fixed"], summary)
table.to_csv(smk.output.table, index=False)
times.to_csv(smk.output.times_table, index=False)
for fig, path in ((dmft_phase_diagram(table, summary), smk.output.phase), (dmft_phase_times(times), smk.output.times)):
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)
