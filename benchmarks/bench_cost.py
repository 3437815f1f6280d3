"""Measure the cost model's rates on this machine and print them beside the ones the plan and the
job resources use (``dln_kernels.pipeline.cost.COST``).

    python benchmarks/bench_cost.py [--threads 1]

Simulation: a chunk-shaped stack (G seeds × b runs, n = δ·d rows), rate = 4·n·d·b·G·n_steps / s
(the flops of X·β and Xᵀr per step). DMFT: one point, rate = N·T² / s (the memory sums). The
plan is safe where the measured rate is at least the model's (it then over-estimates the time).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.model.problem import n_samples
from dln_kernels.pipeline.cost import COST
from dln_kernels.sim.simulate import simulate_grid


def sim_rate(d=1000, delta=1.0, runs=8, seeds=2, n_steps=300) -> float:
    n = n_samples(delta, d)
    t0 = time.perf_counter()
    simulate_grid(model="dln", d=d, delta=delta, rho=[0.2], sigma=[0.0], alpha=list(np.geomspace(0.01, 1, runs)),
                  weight_decay=[0.0], seeds=list(range(seeds)), dt=0.02, n_steps=n_steps, record_steps=np.array([0, n_steps]))
    return 4.0 * n * d * runs * seeds * n_steps / (time.perf_counter() - t0)


def dmft_rate(n_paths=4000, n_steps=400) -> float:
    t0 = time.perf_counter()
    solve_dmft([dict(alpha=0.5, delta=1.5, rho=0.2)], n_steps=n_steps, dt=0.02, n_paths=n_paths, n_batches=4, progress=False)
    return n_paths * (n_steps + 1) ** 2 / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        sim_rate(n_steps=20), dmft_rate(n_steps=50)  # warm-up (imports, first allocations)
        rows = [("simulation flops/s", sim_rate(), COST.sim_flops_per_s),
                ("DMFT terms/s", dmft_rate(), COST.dmft_terms_per_s)]
    print(f"{'rate (threads=' + str(args.threads) + ')':<24} {'measured':>12} {'model':>12} {'measured/model':>15}")
    for name, measured, model in rows:
        print(f"{name:<24} {measured:12.3g} {model:12.3g} {measured / model:15.2f}")


if __name__ == "__main__":
    main()
