# Shared state of the rules: the checked sweeps, their chunks, the resource formulas and the
# phenomena table. Functions and tables only: the rules live in the other .smk files (and
# `snakemake --lint` asks that the two are not mixed in one file).
import json
import os
from functools import lru_cache

from dln_kernels.model.designs import is_default
from dln_kernels.measure.phenomenon_kinds import PHENOMENON_KINDS, phenomenon_figures
from dln_kernels.pipeline.chunks import chunk_d, make_chunks, make_dmft_chunks, n_convergence, sim_chunk_bytes
from dln_kernels.pipeline.cost import COST
from dln_kernels.pipeline.timegrid import n_steps_of
from dln_kernels.model.problem import n_samples
from dln_kernels.registry import implicit

SWEEPS = config["sweeps"]
SELECTED = [config["sweep"]] if isinstance(config["sweep"], str) else list(config["sweep"])
# (the names and every sweep were checked by pipeline.config.check_config in the Snakefile)

# Chunks by content-derived name (dln_kernels.pipeline.chunks.chunk_name): the file of a chunk is named by
# what it computes, so inserting, removing or reordering grid values re-runs only new chunks.
CHUNKS = {name: {c["name"]: c for c in make_chunks(sweep)} for name, sweep in SWEEPS.items()}
DMFT_CHUNKS = {name: {c["name"]: c for c in make_dmft_chunks(sweep)} for name, sweep in SWEEPS.items()}
# Steps per run, resolved once per sweep (the resource functions below run once per job).
N_STEPS = {name: n_steps_of(sweep) for name, sweep in SWEEPS.items()}
# Provenance reads the git commit of the checkout from here. It is deliberately not a param: a
# job's identity must not depend on where the project lies (copied, moved, staged to scratch).
# It is also the checkout that `--use-conda` installs (pip, editable) into the rules' environment
# (envs/pipeline.yaml); declared with `envvars:` so Snakemake passes it on to remote jobs.
os.environ["DLN_SWEEP_REPO"] = workflow.basedir


envvars:
    "DLN_SWEEP_REPO",


wildcard_constraints:
    sweep="[A-Za-z0-9_-]+",
    chunk=r"[A-Za-z0-9_.-]+",


def canonical(obj):
    """A param value that depends only on meaning: JSON with sorted keys.

    Snakemake compares params by their repr, so a dict param would re-run a job when only the
    order of keys changed (a --configfile that restates a default, two swapped lines in
    config.yaml). Scripts read such params with ``json.loads``.
    """
    return json.dumps(obj, sort_keys=True)


@lru_cache(maxsize=None)  # once per (sweep, keys), not once per job: a large DAG asks per job
def sweep_part(sweep, keep):
    """Canonical param of the sweep keys that a rule reads, and nothing else (so a job re-runs
    when, and only when, something it computes from changes). Provenance still records the full
    sweep (scripts read it from the config, which is not part of the job's identity)."""
    # a design key at its default (one i.i.d. Gaussian) is left out: sweeps written before
    # designs existed keep their params, so their jobs do not re-run
    part = {k: SWEEPS[sweep][k] for k in keep
            if not (k == "design" and is_default(SWEEPS[sweep].get(k)))
            and SWEEPS[sweep].get(k) != IMPLICIT_KEYS.get(k, object())}
    if "dmft" in part:  # keys that only choose figures are no part of any job's computation
        part["dmft"] = {k: v for k, v in part["dmft"].items() if k not in FIGURE_ONLY_DMFT_KEYS}
    if "grid" in part:  # the order in which grid values are written is not part of the meaning
        # (and an axis at its implicit default, e.g. batch_fraction [1.0], is not part of it either)
        part["grid"] = {a: sorted(v) for a, v in part["grid"].items() if not implicit(a, v)}
    return canonical(part)


# The sweep keys each kind of job reads (grid values reach the kernels through the chunk param).
# The design is a property of a data group: it reaches a simulation job through its chunk param
# (``chunk["design"]``, resolved, with its d), so adding a design to a sweep's list runs the new
# chunks only. The same for the DMFT: DMFT_KEYS hold no design; the DMFT of a design's spectrum
# reaches its job through the chunk (dln_kernels.pipeline.chunks.make_dmft_chunks), the isotropic
# chunks (shared by the designs with a flat spectrum) are those of a sweep without designs. The
# aggregations read the list (the ``design`` dims of simulations.nc and dmft.nc).
SIM_KEYS = ("model", "network", "prior", "d", "seeds", "base_seed", "dt", "t_max", "output", "backend", "dtype",
            "threads", "save_beta", "batch_sampling", "schedule", "effective_scale", "prediction_risk")
# Keys added after sweeps existed: a job's params leave them out at these (default) values, so the
# jobs of such sweeps keep their identity (the kernels read the same default).
IMPLICIT_KEYS = {"batch_sampling": "bernoulli", "schedule": {"kind": "constant"}, "effective_scale": False,
                 "prediction_risk": False}
# Sub-keys of `dmft` that choose figures only (`final_targets`): left out of every job's params,
# so turning a figure on or off re-runs no DMFT job, and sweeps written before them keep their jobs.
FIGURE_ONLY_DMFT_KEYS = ("phase_diagram",)
DMFT_KEYS = ("model", "network", "prior", "dt", "t_max", "output", "backend", "dtype", "threads", "dmft", "schedule",
             "effective_scale", "prediction_risk")
AGGREGATE_KEYS = ("grid", "seeds", "base_seed", "backend", "dtype", "design")
DMFT_AGGREGATE_KEYS = ("grid", "backend", "dtype", "dmft")


def dmft_aggregate_keys(sweep):
    """Keys of aggregate_dmft: DMFT_AGGREGATE_KEYS, and for a sweep over designs also ``design``
    and ``d`` (which chunk fills which label of the ``design`` dim: resolving the designs needs
    d); a sweep without designs keeps its params."""
    extra = () if is_default(SWEEPS[sweep].get("design")) else ("design", "d")
    return DMFT_AGGREGATE_KEYS + extra


def run_params(sweep, keep=SIM_KEYS):
    return sweep_part(sweep, keep)


def chunk_ids(sweep):
    return sorted(CHUNKS[sweep])


def chunk_of(wildcards):
    return CHUNKS[wildcards.sweep][wildcards.chunk]


def sim_mem_mb(wildcards):
    """Host memory of a simulation job in MB, from its chunk (G seeds × b members, n = δ·d rows):

    mem_mb = 300 + 8 · (G·n·d + 8·G·d·b + 2·G·n·b) / 1e6, i.e. the design, ~8 run-sized
    arrays and the outputs in float64 (dln_kernels.pipeline.chunks.sim_chunk_bytes, the formula the
    sweep's memory_budget_gb is checked with), plus 300 MB for Python and the libraries.
    """
    return 300 + int(sim_chunk_bytes(SWEEPS[wildcards.sweep], chunk_of(wildcards)) / 1e6)


def sim_runtime_min(wildcards):
    """Wall time of a simulation job in minutes, from its chunk:

    runtime = max(5, ⌊4·n·d·b·G·n_steps / (1e9 · 60)⌋ + 1), i.e. 4·n·d·b flops per step and
    data group at the cost model's rate (pipeline.cost.COST, 1 GFLOP/s), at least 5 minutes.
    """
    sweep, chunk = SWEEPS[wildcards.sweep], chunk_of(wildcards)
    n_steps = N_STEPS[wildcards.sweep]
    n = n_samples(chunk["delta"], chunk_d(sweep, chunk))
    flops = 4.0 * n * chunk_d(sweep, chunk) * len(chunk["members"]) * len(chunk["seeds"]) * n_steps
    return max(5, int(flops / COST.sim_flops_per_s / 60) + 1)


def job_cpus(wildcards):
    """``cpus_per_task`` of a simulation or DMFT job: the sweep's ``threads`` (BLAS threads)."""
    return int(SWEEPS[wildcards.sweep]["threads"])


def job_gpus(wildcards):
    """GPUs of a simulation or DMFT job: 1 if the sweep's backend is ``cupy``, else 0.

    0 means no GPU request at all (the SLURM plugin adds ``--gpus=N`` only for N > 0);
    ``backend: auto`` requests none and runs on the CPU unless the job lands on a GPU node.
    """
    return 1 if SWEEPS[wildcards.sweep]["backend"] == "cupy" else 0


def dmft_ids(sweep):
    return sorted(DMFT_CHUNKS[sweep])


def dmft_chunk_of(wildcards):
    return DMFT_CHUNKS[wildcards.sweep][wildcards.chunk]


def dmft_mem_mb(wildcards):
    """Host memory of a DMFT job in MB: 300 + memory_bytes(P, n_paths, n_steps, n_batches, dtype, sgd) / 1e6,

    the solver's own formula (dln_kernels.dmft.solver.memory_bytes) for the job's P points, capped by
    ``dmft.memory_budget_gb`` (the solver batches to stay within it).
    """
    from dln_kernels.dmft.solver import memory_bytes

    sweep, cfg = SWEEPS[wildcards.sweep], SWEEPS[wildcards.sweep]["dmft"]
    points = dmft_chunk_of(wildcards)["points"]
    sgd = any(p.get("batch_fraction", 1.0) < 1 for p in points)  # one more path history (the SGD noise rows)
    need = memory_bytes(len(points), cfg["n_paths"], N_STEPS[wildcards.sweep], cfg["n_batches"], sweep["dtype"], sgd=sgd)
    return 300 + int(min(need, cfg["memory_budget_gb"] * 1e9) / 1e6)


def dmft_runtime_min(wildcards):
    """Wall time of a DMFT job in minutes: max(5, ⌊P·N·T² / (2e8 · 60)⌋ + 1),

    P points, N = n_paths (1.5 n_paths with the convergence-in-N solve of half the paths,
    ``dmft.n_convergence``), T = n_steps + 1: the O(N·T²) memory sums at pipeline.cost.COST's 2e8 terms per second.
    """
    sweep, cfg = SWEEPS[wildcards.sweep], SWEEPS[wildcards.sweep]["dmft"]
    T = N_STEPS[wildcards.sweep] + 1
    paths = cfg["n_paths"] * (1.5 if n_convergence(sweep) else 1)
    work = len(dmft_chunk_of(wildcards)["points"]) * paths * T * T
    return max(5, int(work / COST.dmft_terms_per_s / 60) + 1)


# The phenomena table (docs/phenomena.md): one row per phenomenon figure, drawn by the one rule
# definition in phenomena.smk (workflow/scripts/phenomena_figure.py, param `kind`). The table is
# dln_kernels.measure.phenomenon_kinds.PHENOMENON_KINDS (per kind: the sweep that draws it, the
# caption workflow/report/CAPTION.rst, the figure's label in the report, named outputs beyond the
# figure and its CSV table, the time axes its measurement reads, its measure and drawing
# functions); its PHENOMENA lists, per named sweep, the figures it draws in table order
# (`final_targets` adds them), and phenomenon_figures(name, sweep) those a sweep draws.


def phenomenon_outputs(kind):
    """Named outputs of the phenomenon figure `kind`, i.e. the figure (in the report, with the
    kind's caption and label), the CSV of the measured numbers and the row's extra outputs.

    Call it inside the rule's ``output:``: the caption path is taken relative to the file that
    defines the rule (workflow/rules/).
    """
    row = PHENOMENON_KINDS[kind]
    return dict(
        fig=report(
            f"results/{{sweep}}/figures/{kind}.png",
            caption=f"../report/{row.caption}.rst",
            category="{sweep}",
            subcategory="phenomena",
            labels={"sweep": "{sweep}", "figure": row.label},
        ),
        table=f"results/{{sweep}}/phenomena/{kind}.csv",
        **row.extra_outputs,
    )


def final_targets(sweeps):
    """Figures of each selected sweep (DMFT figures where the sweep enables the DMFT, the DMFT
    phase diagram where it sets ``dmft.phase_diagram``)."""
    figs = []
    for s in sweeps:
        if not is_default(SWEEPS[s].get("design")):
            # a sweep over designs (any name) has a `design` dim the generic figures do not draw:
            # its figure is the universality figure (each design against the isotropic DMFT and
            # the DMFT of its own spectrum)
            figs.append(f"results/{s}/figures/universality.png" if SWEEPS[s]["dmft"]["enabled"]
                        else f"results/{s}/simulations.nc")
            continue
        names = ["learning_curves", "phase_diagram"]
        if SWEEPS[s]["dmft"]["enabled"]:
            names += ["dmft_vs_simulation", "dmft_deviation"]
        if SWEEPS[s]["static"]["enabled"]:
            names += ["static_phase_diagram", "recovery_diagram", "final_error_vs_alpha"]
        if SWEEPS[s]["dmft"]["enabled"] and SWEEPS[s]["dmft"]["phase_diagram"]:
            names += ["dmft_phase_diagram", "dmft_phase_times"]  # over (α, δ) or (δ, ρ): config.check_phase_diagram
        names += phenomenon_figures(s, SWEEPS[s])
        figs += [f"results/{s}/figures/{fig}.png" for fig in names]
    return figs
