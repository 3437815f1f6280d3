"""Rule `validation_table`: per-point deviation of the simulations from the DMFT."""

from _common import setup_logging

from dln_kernels.measure.compare import deviation_table
from dln_kernels.pipeline.io import open_netcdf

smk = snakemake  # noqa: F821  (injected by Snakemake)
log = setup_logging(smk.log[0])
with open_netcdf(smk.input.sims) as sims, open_netcdf(smk.input.dmft) as dmft:
    table = deviation_table(sims.load(), dmft.load())
table.to_csv(smk.output.csv, index=False, float_format="%.4g")
with open(smk.output.md, "w") as f:
    f.write(f"# DMFT vs simulation, sweep {smk.wildcards.sweep}\n\n")
    f.write("rel. dev. = seed mean / DMFT − 1 over recorded times t > 0 above the DMFT noise floor; "
            "se = seed standard error of the mean ⊕ DMFT Monte-Carlo error, relative.\n\n")
    f.write(table.to_markdown(index=False, floatfmt=".3g"))
    f.write("\n")
log.info("\n%s", table.to_string())
