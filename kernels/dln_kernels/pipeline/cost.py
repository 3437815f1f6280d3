"""The cost model of a job, one for the plan (``pipeline.budget``), the automatic chunk sizes
(``pipeline.chunks``, ``chunk_size: auto``) and the job resources (``workflow/rules/common.smk``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """Rates of one core: simulation flops per second (4·n·d flops per run and step: X·β and
    Xᵀr) and DMFT memory-sum terms per second (N·T² per point), plus a job's fixed start-up."""

    sim_flops_per_s: float = 1e9
    dmft_terms_per_s: float = 2e8
    job_start_s: float = 10.0

    def sim_run_seconds(self, n: int, d: int, n_steps: int) -> float:
        """Seconds of one simulation run of n samples in d dimensions for n_steps steps."""
        return 4.0 * n * d * n_steps / self.sim_flops_per_s

    def dmft_point_seconds(self, n_paths: float, n_times: int) -> float:
        """Seconds of one DMFT point of n_paths paths over T = n_times times (N·T² terms)."""
        return n_paths * n_times * n_times / self.dmft_terms_per_s


# Conservative on purpose (a cluster core is often slower, a job shares its node): bench_cost.py
# on a busy 2-core machine, 1 thread, measured 10x the simulation rate and 1.75x the DMFT rate
# (docs/cluster.md "Plan and budgets"). Changing a rate changes the automatic chunk sizes, so
# the chunks (and the jobs) of sweeps with ``chunk_size: auto``.
COST = CostModel()
