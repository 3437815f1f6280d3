"""Throughput of the static (long-time) solver on a dense grid: points per second.

Usage: python benchmarks/bench_static.py [--n-alpha 40] [--n-delta 40] [--repeat 1]
Prints one line per regime (interpolator λ = 0 δ < 1, LASSO λ > 0) with points/s, the number of
non-converged points and the largest residual.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dln_kernels.static.solver import solve_static


def bench(name, grid, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = solve_static(*grid)
        best = min(best, time.perf_counter() - t0)
    n = r["e_test"].size
    print(
        f"{name:<28s} points={n:6d}  time={best:7.2f} s  throughput={n / best:8.1f} points/s  "
        f"non-converged={int((~r['converged']).sum())}  max residual={np.nanmax(r['residual']):.1e}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-alpha", type=int, default=40)
    ap.add_argument("--n-delta", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    alpha = np.geomspace(1e-4, 10.0, args.n_alpha)
    delta = np.linspace(0.05, 0.95, args.n_delta)
    rho = np.array([0.1, 0.3])
    sigma = np.array([0.0, 0.2])
    A, D, R, Sg = np.meshgrid(alpha, delta, rho, sigma, indexing="ij")
    bench("interpolator (λ=0, δ<1)", (A, D, R, Sg, 0.0), args.repeat)
    lam = np.geomspace(1e-3, 1.0, args.n_alpha)
    L, D2, R2, S2 = np.meshgrid(lam, np.linspace(0.1, 2.0, args.n_delta), rho, sigma, indexing="ij")
    bench("LASSO (λ>0)", (1.0, D2, R2, S2, L), args.repeat)


if __name__ == "__main__":
    main()
