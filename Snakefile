# DLN sweep pipeline. Thin on purpose: configuration, includes and the default target.
# Rules live in workflow/rules/, the numerics in kernels/ (import name `dln_kernels`).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


# JSON-schema validation (types, ranges, unknown keys) and defaults, before any job is planned.
validate(config, "workflow/schemas/config.schema.yaml")


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
