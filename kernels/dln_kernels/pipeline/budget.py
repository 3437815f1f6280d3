"""A sweep's plan before its DAG: runs, jobs, the largest job's memory, disk and core-hours, from
counts (never from the list of jobs), and the refusal of a sweep over its ``budget``.

Printed by ``python -m dln_kernels.pipeline.plan SWEEP``. The cost model (``pipeline.cost.COST``)
is the one the job resources use (``workflow/rules/common.smk``); ``benchmarks/bench_cost.py``
measures its rates on a machine and prints them beside these.
"""

from __future__ import annotations

from dataclasses import dataclass

from dln_kernels.model.problem import n_samples
from dln_kernels.pipeline.cost import COST
from dln_kernels.pipeline.chunks import design_dims, dmft_layout, n_convergence, sim_chunk_bytes, sim_layout
from dln_kernels.pipeline.errors import refuse
from dln_kernels.pipeline.timegrid import n_steps_of
from dln_kernels.registry import observables


@dataclass(frozen=True)
class Plan:
    """What a sweep will run: counts, the largest job's memory (bytes), output disk (bytes) and
    the estimated compute (core-hours, from :data:`COST`)."""

    name: str
    runs: int
    sim_jobs: int
    dmft_points: int
    dmft_jobs: int
    sim_job_bytes: int
    dmft_job_bytes: int
    disk_bytes: int
    core_hours: float

    @property
    def jobs(self) -> int:
        return self.sim_jobs + self.dmft_jobs

    def table(self) -> str:
        """The plan as a short table a person reads before submitting."""
        rows = [("runs (simulation)", f"{self.runs:,}"), ("simulation jobs", f"{self.sim_jobs:,}"),
                ("DMFT points / jobs", f"{self.dmft_points:,} / {self.dmft_jobs:,}"),
                ("largest simulation job", f"{self.sim_job_bytes / 1e9:.3g} GB"),
                ("largest DMFT job", f"{self.dmft_job_bytes / 1e9:.3g} GB"),
                ("output disk", f"{self.disk_bytes / 1e9:.3g} GB"), ("compute", f"{self.core_hours:.3g} core-hours")]
        width = max(len(k) for k, _ in rows)
        return "\n".join([f"plan of sweep {self.name}:"] + [f"  {k:<{width}}  {v}" for k, v in rows])


def sim_core_seconds(sweep: dict, lay: dict | None = None) -> float:
    """Simulation compute of the whole sweep in core-seconds: Σ over designs and δ of
    4·n·d·n_steps per run (:data:`COST`), plus one start-up per job (``lay``: the sweep's
    :func:`~dln_kernels.pipeline.chunks.sim_layout`, if already counted)."""
    n_steps, dims = n_steps_of(sweep), design_dims(sweep)
    lay = lay or sim_layout(sweep)
    per_delta = lay["runs"] / (len(sweep["grid"]["delta"]) * len(dims))
    seconds = sum(COST.sim_run_seconds(n_samples(delta, d), d, n_steps) * per_delta
                  for d in dims for delta in sweep["grid"]["delta"])
    return seconds + lay["jobs"] * COST.job_start_s


def dmft_core_seconds(sweep: dict) -> float:
    """DMFT compute in core-seconds: P·N·T² terms (×1.5 with the convergence-in-N solve)."""
    if not sweep["dmft"]["enabled"]:
        return 0.0
    lay, T = dmft_layout(sweep), n_steps_of(sweep) + 1
    paths = sweep["dmft"]["n_paths"] * (1.5 if n_convergence(sweep) else 1.0)
    return lay["points"] * COST.dmft_point_seconds(paths, T) + lay["jobs"] * COST.job_start_s


def _disk_bytes(sweep: dict, runs: int, points: int) -> int:
    """Chunk files and the aggregated file (×2) of every recorded float: observables × times per
    run or point, and the final β (d floats) per run with ``save_beta``."""
    n_times = int(sweep["output"]["n_times"])
    size = 4 if sweep["dtype"] == "float32" else 8
    d = max(design_dims(sweep))
    per_run = len(observables(f"sim:{sweep['model']}")) * n_times + (d if sweep["save_beta"] else 0)
    per_point = len(observables("dmft")) * n_times
    return 2 * size * (runs * per_run + points * per_point)


def plan_of(name: str, sweep: dict) -> Plan:
    """The :class:`Plan` of a checked sweep, in time independent of its size (counts only)."""
    from dln_kernels.dmft.solver import memory_bytes

    sim, dm = sim_layout(sweep), dmft_layout(sweep)
    enabled = sweep["dmft"]["enabled"]
    dmft_bytes = 0
    if enabled:
        cfg = sweep["dmft"]
        need = memory_bytes(dm["points_per_job"], cfg["n_paths"], n_steps_of(sweep), cfg["n_batches"], sweep["dtype"],
                            sgd=min(sweep["grid"].get("batch_fraction", [1.0])) < 1)
        dmft_bytes = int(min(need, cfg["memory_budget_gb"] * 1e9))
    points = dm["points"] if enabled else 0
    return Plan(name, sim["runs"], sim["jobs"], points, dm["jobs"] if enabled else 0,
                sim_chunk_bytes(sweep, sim["largest"]), dmft_bytes, _disk_bytes(sweep, sim["runs"], points),
                (sim_core_seconds(sweep, sim) + dmft_core_seconds(sweep)) / 3600.0)


def check_budget(key: str, sweep: dict) -> None:
    """Refuse a sweep over its ``budget`` (jobs, disk_gb, core_hours), with the plan's numbers,
    before anything is enumerated. The memory per job has its own keys (``memory_budget_gb``,
    ``dmft.memory_budget_gb``, checked by ``config.check_sim_memory`` / ``check_dmft``)."""
    budget = sweep.get("budget", {})
    plan = plan_of(key.removeprefix("sweeps."), sweep)
    limits = (("jobs", plan.jobs, "jobs", "raise chunk_size (runs per job) or dmft.points_per_job, or fewer grid values or seeds"),
              ("disk_gb", plan.disk_bytes / 1e9, "GB of output", "lower output.n_times, save_beta or the grid"),
              ("core_hours", plan.core_hours, "core-hours (estimated)", "a smaller grid, fewer seeds or a smaller d"))
    for field, need, unit, fix in limits:
        limit = budget.get(field)
        if limit is not None and need > limit:
            raise refuse(f"{key}.budget.{field}", limit, f"the sweep needs {need:,.4g} {unit}",
                         f"{fix}; or raise {key}.budget.{field}", details=plan.table())
