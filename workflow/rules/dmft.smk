# DMFT of the same discrete algorithm on the sweep's grid (no d / seed axes), same time steps.


def dmft_ids(sweep):
    return sorted(DMFT_CHUNKS[sweep])


def dmft_chunk_of(wildcards):
    return DMFT_CHUNKS[wildcards.sweep][wildcards.chunk]


def dmft_mem_mb(wildcards):
    """Host memory of a DMFT job in MB: 300 + memory_bytes(P, n_paths, n_steps, n_batches, dtype) / 1e6,

    the solver's own formula (dln_kernels.dmft.memory_bytes) for the job's P points, capped by
    ``dmft.memory_budget_gb`` (the solver batches to stay within it).
    """
    from dln_kernels.dmft import memory_bytes

    sweep, cfg = SWEEPS[wildcards.sweep], SWEEPS[wildcards.sweep]["dmft"]
    need = memory_bytes(len(dmft_chunk_of(wildcards)["points"]), cfg["n_paths"], time_grid(sweep)[0], cfg["n_batches"], sweep["dtype"])
    return 300 + int(min(need, cfg["memory_budget_gb"] * 1e9) / 1e6)


def dmft_runtime_min(wildcards):
    """Wall time of a DMFT job in minutes: max(5, ⌊P·N·T² / (2e8 · 60)⌋ + 1),

    P points, N = n_paths, T = n_steps + 1: the O(N·T²) memory sums at ~2e8 terms per second.
    """
    sweep, cfg = SWEEPS[wildcards.sweep], SWEEPS[wildcards.sweep]["dmft"]
    T = time_grid(sweep)[0] + 1
    work = len(dmft_chunk_of(wildcards)["points"]) * cfg["n_paths"] * T * T
    return max(5, int(work / 2e8 / 60) + 1)


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
        sweep=lambda w: sweep_part(w.sweep, ("grid", "backend", "dtype", "dmft")),
        sweep_name=lambda w: w.sweep,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
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
    log:
        "results/{sweep}/logs/dmft_figures.log",
    benchmark:
        "results/{sweep}/benchmarks/dmft_figures.tsv"
    script:
        "../scripts/dmft_figures.py"
