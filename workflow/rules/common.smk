# Shared state of the rules: the checked sweeps, their chunks and the resource formulas.
from dln_kernels.sweep import ConfigError, check_sweep, make_chunks, make_dmft_chunks, time_grid
from dln_kernels.problem import n_samples

SWEEPS = config["sweeps"]
SELECTED = [config["sweep"]] if isinstance(config["sweep"], str) else list(config["sweep"])
for _name in SELECTED:
    if _name not in SWEEPS:
        raise WorkflowError(f"sweep: unknown sweep {_name!r}; defined sweeps: {sorted(SWEEPS)}")
for _name, _sweep in SWEEPS.items():
    try:
        check_sweep(_name, _sweep)
    except ConfigError as exc:
        raise WorkflowError(f"Invalid configuration: {exc}")

CHUNKS = {name: make_chunks(sweep) for name, sweep in SWEEPS.items()}
DMFT_CHUNKS = {name: make_dmft_chunks(sweep) for name, sweep in SWEEPS.items()}
REPO = workflow.basedir


wildcard_constraints:
    sweep="[A-Za-z0-9_-]+",
    chunk=r"\d{4}",


def run_params(sweep, drop=("grid", "dmft", "static")):
    """The sweep as a job's params, without the keys its kernel does not read (the chunk param
    names its own grid points): editing one grid value then changes, and re-runs, only the
    chunks that hold it. Provenance still records the full sweep (scripts read it from config)."""
    return {k: v for k, v in SWEEPS[sweep].items() if k not in drop}


def chunk_ids(sweep):
    return [f"{c['index']:04d}" for c in CHUNKS[sweep]]


def chunk_of(wildcards):
    return CHUNKS[wildcards.sweep][int(wildcards.chunk)]


def sim_mem_mb(wildcards):
    """Host memory of a simulation job in MB, from its chunk (G seeds × b members, n = δ·d rows):

    mem_mb = 300 + 8 · (G·n·d + 8·G·d·b + 2·G·n·b) / 1e6, i.e. the design, ~8 run-sized
    arrays and the outputs in float64, plus 300 MB for Python and the libraries.
    """
    sweep, chunk = SWEEPS[wildcards.sweep], chunk_of(wildcards)
    g, b, d = len(chunk["seeds"]), len(chunk["members"]), sweep["d"]
    n = n_samples(chunk["delta"], d)
    words = g * n * d + 8 * g * d * b + 2 * g * n * b
    return 300 + int(8 * words / 1e6)


def sim_runtime_min(wildcards):
    """Wall time of a simulation job in minutes, from its chunk:

    runtime = max(5, ⌊4·n·d·b·G·n_steps / (1e9 · 60)⌋ + 1), i.e. 4·n·d·b flops per step and
    data group at a conservative 1 GFLOP/s, at least 5 minutes.
    """
    sweep, chunk = SWEEPS[wildcards.sweep], chunk_of(wildcards)
    n_steps = time_grid(sweep)[0]
    n = n_samples(chunk["delta"], sweep["d"])
    flops = 4.0 * n * sweep["d"] * len(chunk["members"]) * len(chunk["seeds"]) * n_steps
    return max(5, int(flops / 1e9 / 60) + 1)


def job_cpus(wildcards):
    """``cpus_per_task`` of a simulation or DMFT job: the sweep's ``threads`` (BLAS threads)."""
    return int(SWEEPS[wildcards.sweep]["threads"])


def job_gpus(wildcards):
    """GPUs of a simulation or DMFT job: 1 if the sweep's backend is ``cupy``, else 0.

    0 means no GPU request at all (the SLURM plugin adds ``--gpus=N`` only for N > 0);
    ``backend: auto`` requests none and runs on the CPU unless the job lands on a GPU node.
    """
    return 1 if SWEEPS[wildcards.sweep]["backend"] == "cupy" else 0


def final_targets(sweeps):
    """Figures of each selected sweep (DMFT figures where the sweep enables the DMFT)."""
    figs = []
    for s in sweeps:
        names = ["learning_curves", "phase_diagram"]
        if SWEEPS[s]["dmft"]["enabled"]:
            names += ["dmft_vs_simulation", "dmft_deviation"]
        if SWEEPS[s]["static"]["enabled"]:
            names += ["static_phase_diagram", "recovery_diagram", "final_error_vs_alpha"]
        if SWEEPS[s]["dmft"]["enabled"]:
            names += PHENOMENA.get(s, [])  # phenomenon figures of the named sweeps (phenomena.smk)
        figs += [f"results/{s}/figures/{fig}.png" for fig in names]
    return figs
