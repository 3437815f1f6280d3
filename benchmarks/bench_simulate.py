"""Simulator throughput: B = 1 vs B = 64 runs, with shared and with per-run data.

Prints run-steps × d per second for each case, next to the machine's matrix–matrix and
matrix–vector throughput measured in the same process (so ratios are side by side).
Usage: python benchmarks/bench_simulate.py [--d 1000] [--delta 0.5] [--steps 200] [--backend numpy]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from dln_kernels.backend import get_namespace, resolve_dtype, sync, to_device
from dln_kernels.sim.simulate import simulate_grid


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_gflops(xp, n, d, b, dtype="float64", repeat=5):
    a = to_device(xp, np.random.default_rng(0).standard_normal((n, d)), resolve_dtype(dtype))
    x = to_device(xp, np.random.default_rng(1).standard_normal((d, b)), resolve_dtype(dtype))

    def go():
        for _ in range(repeat):
            a @ x
        sync(xp)

    return 2.0 * n * d * b * repeat / best_of(go) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--delta", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args()
    xp = get_namespace(args.backend)
    n = int(round(args.delta * args.d))
    print(f"# simulator benchmark: d={args.d}, n={n}, steps={args.steps}, backend={args.backend}, "
          f"dtype={args.dtype}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    gemm = matmul_gflops(xp, n, args.d, 64, args.dtype)
    print(f"matmul (n×d)@(d×64): {gemm:8.2f} GFLOP/s")
    print(f"matvec (n×d)@(d×1) : {matmul_gflops(xp, n, args.d, 1, args.dtype):8.2f} GFLOP/s")
    print(f"{'B':>4} {'data':>8} {'seconds':>9} {'run-steps*d/s':>14} {'GFLOP/s (4nd/run-step)':>24} {'of GEMM':>8}")
    for B in (1, 64):
        for share in (True, False):
            if B == 1 and not share:
                continue  # identical to shared with one run
            alphas = list(np.geomspace(0.01, 1.0, B))

            def go():
                simulate_grid(model="dln", d=args.d, delta=args.delta, rho=[0.2], sigma=[0.1], alpha=alphas,
                              weight_decay=[0.0], seeds=[0], dt=0.01, n_steps=args.steps,
                              record_steps=[0, args.steps], backend=args.backend, dtype=args.dtype,
                              share_data=share)

            go()  # warm-up (and data generation caches)
            t = best_of(go, repeat=2)
            rate = B * args.steps * args.d / t
            gflops = 4.0 * n * args.d * B * args.steps / t / 1e9
            print(f"{B:>4} {'shared' if share else 'per-run':>8} {t:9.3f} {rate:14.3e} {gflops:24.2f} "
                  f"{gflops / gemm:8.0%}")
    print("# note: times include drawing the data on the host (per-run data draws B designs).")


if __name__ == "__main__":
    main()
