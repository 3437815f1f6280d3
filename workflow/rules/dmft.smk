# DMFT of the same discrete algorithm on the sweep's grid (no d / seed axes), same time steps.

# Chunks and resource formulas: dmft_ids, dmft_chunk_of, dmft_mem_mb, dmft_runtime_min (common.smk).


rule dmft:
    output:
        "results/{sweep}/dmft/{chunk}.h5",
    params:
        sweep=lambda w: run_params(w.sweep, DMFT_KEYS),
        chunk=lambda w: canonical(dmft_chunk_of(w)),
        sweep_name=lambda w: w.sweep,
    threads: lambda w: SWEEPS[w.sweep]["threads"]
    resources:
        mem_mb=dmft_mem_mb,
        runtime=dmft_runtime_min,
        # SLURM (profiles/slurm): --cpus-per-task = threads; --gpus=1 only for backend cupy.
        cpus_per_task=job_cpus,
        gpu=job_gpus,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/dmft/{chunk}.log",
    benchmark:
        "results/{sweep}/benchmarks/dmft/{chunk}.tsv"
    script:
        "../scripts/dmft.py"


rule aggregate_dmft:
    input:
        lambda w: expand("results/{sweep}/dmft/{chunk}.h5", sweep=w.sweep, chunk=dmft_ids(w.sweep)),
    output:
        "results/{sweep}/dmft.nc",
    params:
        sweep=lambda w: sweep_part(w.sweep, dmft_aggregate_keys(w.sweep)),
        sweep_name=lambda w: w.sweep,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/aggregate_dmft.log",
    benchmark:
        "results/{sweep}/benchmarks/aggregate_dmft.tsv"
    script:
        "../scripts/aggregate.py"


rule dmft_figures:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        curves=report(
            "results/{sweep}/figures/dmft_vs_simulation.png",
            caption="../report/dmft_vs_simulation.rst",
            category="{sweep}",
            subcategory="DMFT",
            labels={"sweep": "{sweep}", "figure": "DMFT vs simulation"},
        ),
        deviation=report(
            "results/{sweep}/figures/dmft_deviation.png",
            caption="../report/dmft_deviation.rst",
            category="{sweep}",
            subcategory="DMFT",
            labels={"sweep": "{sweep}", "figure": "relative deviation"},
        ),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/dmft_figures.log",
    benchmark:
        "results/{sweep}/benchmarks/dmft_figures.tsv"
    script:
        "../scripts/dmft_figures.py"


# DMFT phase diagram over the sweep's two varied axes, (α, δ) or (δ, ρ), for sweeps with
# `dmft.phase_diagram` (final_targets): the measurement is dln_kernels.measure.phase_diagram, the tables
# are written beside the figures.
rule dmft_phase_diagram:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
        static="results/{sweep}/static.nc",
    output:
        phase=report(
            "results/{sweep}/figures/dmft_phase_diagram.png",
            caption="../report/dmft_phase_diagram.rst",
            category="{sweep}",
            subcategory="DMFT",
            labels={"sweep": "{sweep}", "figure": "DMFT phase diagram"},
        ),
        times=report(
            "results/{sweep}/figures/dmft_phase_times.png",
            caption="../report/dmft_phase_times.rst",
            category="{sweep}",
            subcategory="DMFT",
            labels={"sweep": "{sweep}", "figure": "DMFT maps over time"},
        ),
        table="results/{sweep}/phenomena/dmft_phase_diagram.csv",
        times_table="results/{sweep}/phenomena/dmft_phase_times.csv",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/dmft_phase_diagram.log",
    benchmark:
        "results/{sweep}/benchmarks/dmft_phase_diagram.tsv"
    script:
        "../scripts/dmft_phase_figures.py"
