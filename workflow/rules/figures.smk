# Figures of a sweep, wrapped in report() so `snakemake --report results/report.html` shows them.


rule figures:
    input:
        sims="results/{sweep}/simulations.nc",
    output:
        curves=report(
            "results/{sweep}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="{sweep}",
            subcategory="simulations",
            labels={"sweep": "{sweep}", "figure": "learning curves"},
        ),
        phase=report(
            "results/{sweep}/figures/phase_diagram.png",
            caption="../report/phase_diagram.rst",
            category="{sweep}",
            subcategory="simulations",
            labels={"sweep": "{sweep}", "figure": "phase diagram"},
        ),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/figures.log",
    benchmark:
        "results/{sweep}/benchmarks/figures.tsv"
    script:
        "../scripts/figures.py"
