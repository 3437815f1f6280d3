# DLN sweep pipeline. Thin on purpose: configuration, includes and the default target.
# Rules live in workflow/rules/, the numerics in kernels/dln_kernels/ (import name `dln_kernels`).
from snakemake.utils import min_version

from dln_kernels.pipeline.config import ConfigError, check_config

min_version("9.0")


configfile: "config.yaml"


# Every check before the DAG, in Python (dln_kernels.pipeline.config.check_config): the schema
# with its defaults, what a schema cannot say (numbers read as text, NaN/inf, 2.0 as an integer,
# keys that do nothing), the selected sweep names, and each sweep's values against each other
# (steps against the tail-aware stability bound, memory, budgets) — before anything is enumerated.
try:
    check_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
except ConfigError as exc:
    raise WorkflowError(f"Invalid configuration: {exc}")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/dmft.smk"
include: "workflow/rules/static.smk"
include: "workflow/rules/phenomena.smk"
include: "workflow/rules/validate.smk"


rule all:
    default_target: True
    input:
        final_targets(SELECTED),
