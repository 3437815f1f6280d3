# Simulations: one job per chunk of the grid, then one aggregated netCDF per sweep.


rule simulate:
    output:
        "results/{sweep}/sim/{chunk}.h5",
    params:
        # What the kernel reads, canonical: changing it re-runs exactly the chunks it affects.
        sweep=lambda w: run_params(w.sweep),
        chunk=lambda w: canonical(chunk_of(w)),
        sweep_name=lambda w: w.sweep,
    threads: lambda w: SWEEPS[w.sweep]["threads"]
    resources:
        mem_mb=sim_mem_mb,
        runtime=sim_runtime_min,
        # SLURM (profiles/slurm): --cpus-per-task = threads; --gpus=1 only for backend cupy.
        cpus_per_task=job_cpus,
        gpu=job_gpus,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/simulate/{chunk}.log",
    benchmark:
        "results/{sweep}/benchmarks/simulate/{chunk}.tsv"
    script:
        "../scripts/simulate.py"


rule aggregate:
    input:
        lambda w: expand("results/{sweep}/sim/{chunk}.h5", sweep=w.sweep, chunk=chunk_ids(w.sweep)),
    output:
        "results/{sweep}/simulations.nc",
    params:
        sweep=lambda w: sweep_part(w.sweep, AGGREGATE_KEYS),
        sweep_name=lambda w: w.sweep,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    log:
        "results/{sweep}/logs/aggregate.log",
    benchmark:
        "results/{sweep}/benchmarks/aggregate.tsv"
    script:
        "../scripts/aggregate.py"
