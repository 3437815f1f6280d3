# Long-time (static) theory of a sweep: its grid and two dense grids, in one cheap job.


rule static:
    output:
        "results/{sweep}/static.nc",
    params:
        sweep=lambda w: sweep_part(w.sweep, ("grid", "network", "prior", "static")),
        sweep_name=lambda w: w.sweep,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/static.log",
    benchmark:
        "results/{sweep}/benchmarks/static.tsv"
    script:
        "../scripts/static.py"


rule static_figures:
    input:
        static="results/{sweep}/static.nc",
        sims="results/{sweep}/simulations.nc",
    output:
        phase=report(
            "results/{sweep}/figures/static_phase_diagram.png",
            caption="../report/static_phase_diagram.rst",
            category="{sweep}",
            subcategory="long-time theory",
            labels={"sweep": "{sweep}", "figure": "long-time phase diagram"},
        ),
        recovery=report(
            "results/{sweep}/figures/recovery_diagram.png",
            caption="../report/recovery_diagram.rst",
            category="{sweep}",
            subcategory="long-time theory",
            labels={"sweep": "{sweep}", "figure": "recovery diagram"},
        ),
        versus_alpha=report(
            "results/{sweep}/figures/final_error_vs_alpha.png",
            caption="../report/final_error_vs_alpha.rst",
            category="{sweep}",
            subcategory="long-time theory",
            labels={"sweep": "{sweep}", "figure": "final error vs alpha"},
        ),
    params:
        recovery_threshold=lambda w: SWEEPS[w.sweep]["static"]["recovery_threshold"],
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/static_figures.log",
    benchmark:
        "results/{sweep}/benchmarks/static_figures.tsv"
    script:
        "../scripts/static_figures.py"
