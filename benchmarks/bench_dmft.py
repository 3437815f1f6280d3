"""Benchmark of the DMFT solver: time and peak memory per point vs N and T, and the speed-up of
the one-pass causal sweep over a damped fixed-point iteration of the same equations.

Usage: python benchmarks/bench_dmft.py [--quick] [--roofline-only]

Roofline (first table, one run): this machine's measured GEMM rate ((n×n)@(n×n), float64) and
copy bandwidth (read + write bytes of a 256 MB ``np.copyto``), and beside them the solver's
achieved FLOP rate and memory traffic for P = 1, 8, 32 points per job, from the counted work of
``dmft.sweep_work`` (each pass over an N×k history at step k: 2 flops and one read per element)
divided by the measured time; "mv GB/s>=" is the per-point (matrix–vector) traffic over the
whole time, a lower bound on the rate of those passes; "pass GB/s" is the rate of the three
passes over the per-point N×k histories themselves (their minimal traffic, Q twice and the
tangent history once, over their own wall time, ``dmft.PASS_CLOCK``), "pass s" that time. Run it with one BLAS thread (OMP_NUM_THREADS=1 etc.) for the
per-core numbers quoted in docs/dmft.md.

The fixed-point iteration (implemented here, not in the library) is the textbook way to solve
DMFT: guess (C_Δ, G), build K and C_r for the whole horizon, simulate all N paths over all T steps
with the frozen kernels, re-estimate (C_Δ, G), damp, repeat until the change is below a
tolerance. Each iteration costs about as much as one forward sweep; the comparison is made at
equal accuracy (the iteration is stopped once its E_train/E_test agree with the sweep's to
within the sweep's Monte-Carlo standard error, both using the same paths per replica).
"""

from __future__ import annotations

import argparse
import math
import time
import tracemalloc

import numpy as np

import dln_kernels.dmft.solver as dmft_module
from dln_kernels.dmft.solver import memory_bytes, solve_dmft, sweep_work
from bench_simulate import best_of  # best of n wall-clock timings (one helper for both benchmarks)


def run_sweep(point, n_steps, n_paths, n_batches=8):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = solve_dmft([point], n_steps=n_steps, n_paths=n_paths, n_batches=n_batches, progress=False,
                     memory_budget_bytes=None)
    el = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, el, peak


def fixed_point_iteration(point, n_steps, n_paths, damping=0.5, max_iter=200, target=None, seed=0):
    """Damped Picard iteration for the DLN DMFT with frozen kernels per iteration.

    Paths use the same variance reduction as the library (orthogonal noise/probe rows and
    stratified teachers). Returns (e_train, e_test, n_iter, seconds, history of max changes).
    ``target`` = (e_train, e_test, tol_train, tol_test): stop when within tolerance of it.
    """
    from dln_kernels.dmft.solver import _noise_matrix
    from dln_kernels.model.priors import DEFAULT_PRIOR, prior_of

    rng = np.random.default_rng([seed, 0])
    T = n_steps + 1
    n = n_paths
    a, dlt, sig, lam, dt = (point[k] for k in ("alpha", "delta", "sigma", "weight_decay", "dt"))
    bs = prior_of(DEFAULT_PRIOR).stratified(point["rho"], n, rng)
    Z = _noise_matrix(n, T, rng, True, False)
    E = _noise_matrix(n, T, rng, True, True)
    CD = np.outer(np.ones(T), np.ones(T)) * np.mean(bs**2)  # initial guess: frozen at Δ = −β*
    G = np.zeros((T, T))
    t0 = time.perf_counter()
    hist = []
    for it in range(1, max_iter + 1):
        K = np.linalg.inv(np.eye(T) + G / dlt)
        M = sig**2 + CD
        w_eig, V = np.linalg.eigh(M)
        LM = V * np.sqrt(np.clip(w_eig, 0, None))  # any square root of M works for the law of w
        W = LM @ Z  # (T, n): Gaussian process with covariance M
        S = np.zeros((T, n))
        Dh = np.zeros((T, n))
        Xh = np.zeros((T, n))
        u = np.full(n, a)
        v = np.zeros(n)
        du = np.zeros(n)
        dv = np.zeros(n)
        for k in range(T):
            dk = u * v - bs
            Dh[k] = dk
            Xh[k] = v * du + u * dv
            if k == T - 1:
                break
            S[k] = W[k] / math.sqrt(dlt) - dk
            g = K[k, : k + 1] @ S[: k + 1]
            dg = E[k] - K[k, : k + 1] @ Xh[: k + 1]
            u, v, du, dv = (u + dt * (v * g - lam * u), v + dt * (u * g - lam * v),
                            du + dt * (dv * g + v * dg - lam * du), dv + dt * (du * g + u * dg - lam * dv))
        CD_new = Dh @ Dh.T / n
        G_new = np.tril(Xh @ E.T / n, -1)
        change = max(np.abs(CD_new - CD).max(), np.abs(G_new - G).max())
        hist.append(change)
        CD = (1 - damping) * CD + damping * CD_new
        G = (1 - damping) * G + damping * G_new
        K = np.linalg.inv(np.eye(T) + G / dlt)
        Cr = K @ (sig**2 + CD) @ K.T
        e_tr, e_te = np.diag(Cr) / 2, np.diag(CD) / 2
        if target is not None:
            ok_tr = np.all(np.abs(e_tr - target[0]) <= target[2])
            ok_te = np.all(np.abs(e_te - target[1]) <= target[3])
            if ok_tr and ok_te:
                break
        if change < 1e-10:
            break
    return e_tr, e_te, it, time.perf_counter() - t0, hist


def machine_rates(n_gemm=1000, copy_mb=256):
    """(GEMM GFLOP/s, copy GB/s read+write, matrix–vector GB/s) of this machine, float64."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n_gemm, n_gemm)), rng.standard_normal((n_gemm, n_gemm))
    np.matmul(a, b)
    gemm = 2.0 * n_gemm**3 / best_of(lambda: np.matmul(a, b)) / 1e9
    x = np.ones(int(copy_mb * 2**20) // 8)
    y = np.empty_like(x)
    np.copyto(y, x)
    copy = 2.0 * x.nbytes / best_of(lambda: np.copyto(y, x)) / 1e9
    m = rng.standard_normal((4000, 4000))
    v = rng.standard_normal(4000)
    gemv = m.nbytes / best_of(lambda: m @ v) / 1e9
    return gemm, copy, gemv


def roofline(quick: bool):
    """Side-by-side table: machine rates and the solver's achieved rates for P = 1, 8, 32."""
    gemm, copy, gemv = machine_rates()
    print(f"# machine (float64, this process's BLAS threads): GEMM {gemm:.1f} GFLOP/s, copy {copy:.2f} GB/s "
          f"(read+write), matrix-vector {gemv:.2f} GB/s (matrix bytes)")
    n_paths, n_steps = (4000, 150) if quick else (8000, 200)
    print(f"# DMFT sweep, N = {n_paths} paths/point, B = 8 replicas, T = {n_steps + 1}, alpha geomspaced in [0.1, 1]")
    print(f"{'P':>3} {'s/point':>9} {'ns/(N T^2)':>11} {'GFLOP/s':>8} {'/GEMM':>6} {'GB/s':>6} {'/copy':>6} "
          f"{'mv GB/s>=':>9} {'/copy':>6} {'pass GB/s':>9} {'/copy':>6} {'pass s':>7} {'mv passes':>9} {'mm passes':>9}")
    # one-time costs of a process (loading the compiled CPU loops) are not per point: pay them first
    solve_dmft({"alpha": [0.5], "delta": [0.5], "rho": [0.3], "sigma": [0.1], "dt": [0.05]}, n_steps=10,
               n_paths=64, n_batches=8, progress=False)
    for P in (1, 8, 32):
        pts = {"alpha": list(np.geomspace(0.1, 1.0, P)), "delta": [0.5], "rho": [0.3], "sigma": [0.1], "dt": [0.05]}
        dmft_module.PASS_CLOCK = clock = {"seconds": 0.0}
        t0 = time.perf_counter()
        solve_dmft(pts, n_steps=n_steps, n_paths=n_paths, n_batches=8, progress=False, memory_budget_bytes=None)
        el = time.perf_counter() - t0
        dmft_module.PASS_CLOCK = None
        w = sweep_work(P, n_paths, n_steps, 8)
        rate = w["bytes_histories"] / clock["seconds"] / 1e9
        print(f"{P:3d} {el / P:9.3f} {1e9 * el / (P * n_paths * (n_steps + 1) ** 2):11.3f} {w['flops'] / el / 1e9:8.2f} "
              f"{w['flops'] / el / 1e9 / gemm:6.3f} {w['bytes'] / el / 1e9:6.2f} {w['bytes'] / el / 1e9 / copy:6.3f} "
              f"{w['bytes_mv'] / el / 1e9:9.2f} {w['bytes_mv'] / el / 1e9 / copy:6.3f} "
              f"{rate:9.2f} {rate / copy:6.3f} {clock['seconds']:7.2f} "
              f"{w['passes_mv']:9.3g} {w['passes_mm']:9.3g}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller grid")
    ap.add_argument("--roofline-only", action="store_true", help="only the roofline table")
    args = ap.parse_args()
    roofline(args.quick)
    if args.roofline_only:
        return
    point = dict(alpha=1.0, delta=0.5, rho=0.3, sigma=0.1, weight_decay=0.0, dt=0.05)
    Ns = [2000, 8000] if args.quick else [2000, 8000, 20000]
    Ts = [100, 200] if args.quick else [100, 200, 400, 800]
    print("# one-pass sweep: time and peak (traced) memory per point, n_batches = 8")
    print(f"{'N':>7} {'T':>5} {'seconds':>9} {'peak MB':>9} {'formula MB':>11} {'ns/(N T^2)':>11}")
    for n in Ns:
        for T in Ts:
            _, el, peak = run_sweep(point, T, n)
            print(f"{n:7d} {T:5d} {el:9.2f} {peak / 1e6:9.1f} {memory_bytes(1, n, T, 8) / 1e6:11.1f} "
                  f"{1e9 * el / (n * T * T):11.3f}", flush=True)

    print("\n# damped fixed-point iteration vs one-pass sweep, equal accuracy, one replica of N paths")
    n_rep, T = 1000, 100 if args.quick else 200
    sweep, el_sweep, _ = run_sweep(point, T, 8 * n_rep)
    tol_tr = 2 * sweep["e_train_se"][0] + 1e-12
    tol_te = 2 * sweep["e_test_se"][0] + 1e-12
    # a single replica of the sweep, timed alone (the iteration below also runs one replica)
    t0 = time.perf_counter()
    solve_dmft([point], n_steps=T, n_paths=2 * n_rep, n_batches=2, progress=False)
    el_one = (time.perf_counter() - t0) / 2
    for damping in (1.0, 0.5):
        e_tr, e_te, it, el, hist = fixed_point_iteration(
            point, T, n_rep, damping=damping, target=(sweep["e_train"][0], sweep["e_test"][0], tol_tr, tol_te))
        conv = np.all(np.abs(e_tr - sweep["e_train"][0]) <= tol_tr) and np.all(np.abs(e_te - sweep["e_test"][0]) <= tol_te)
        print(f"damping {damping}: {it} iterations, {el:.2f} s, reached 2 se of the sweep: {conv}; "
              f"one-pass sweep (one replica) {el_one:.2f} s -> speed-up {el / el_one:.1f}x; "
              f"last changes {['%.1e' % h for h in hist[-3:]]}", flush=True)


if __name__ == "__main__":
    main()
