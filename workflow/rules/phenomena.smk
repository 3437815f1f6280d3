# Phenomena (docs/phenomena.md): timescales, incremental learning, grokking-like delays and the
# rate/generalisation trade-off, measured on the simulations and the DMFT of a named sweep.
#
# One rule definition for every phenomenon figure, driven by the phenomena table PHENOMENON_KINDS
# (dln_kernels/measure/phenomenon_kinds.py: kind -> sweep, caption, label, outputs). It is instantiated
# once per kind, as `phenomenon_KIND`, because Snakemake fixes a rule's report caption and its
# set of outputs when the rule is defined: neither may depend on a wildcard.
#
# The rule sits two columns in, so that its directives and values stand where those of the six
# rules it replaces stood: Snakemake's "code" rerun trigger compares the source line of `script:`,
# indentation included, and results finished before this change must not re-run.


for _kind in PHENOMENON_KINDS:
  rule:
    name:
        f"phenomenon_{_kind}"
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_outputs(_kind),
    params:
        kind=_kind,
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        f"results/{{sweep}}/logs/phenomenon_{_kind}.log",
    script:
        "../scripts/phenomena_figure.py"
