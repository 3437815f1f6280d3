# `snakemake validate`: DMFT vs large-d simulations on the validation panel, as a table.


rule validation_table:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        csv="results/validation/{sweep}_dmft_vs_simulation.csv",
        md="results/validation/{sweep}_dmft_vs_simulation.md",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/validation_table.log",
    benchmark:
        "results/{sweep}/benchmarks/validation_table.tsv"
    script:
        "../scripts/validation_table.py"


rule validate:
    input:
        "results/validation/validation_dmft_vs_simulation.md",
        final_targets(["validation"]),
