# DLN sweep pipeline. Thin on purpose: configuration, includes and the default target.
# Rules live in workflow/rules/, the numerics in kernels/dln_kernels/ (import name `dln_kernels`).
from snakemake.utils import min_version

from dln_kernels.pipeline.sweep import ConfigError, validate_config

min_version("9.0")


configfile: "config.yaml"


# JSON-schema validation (types, ranges, unknown keys) and defaults, before any job is planned,
# with the checks a schema cannot make (numbers read as text, NaN/inf, 2.0 as an integer).
try:
    validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
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
