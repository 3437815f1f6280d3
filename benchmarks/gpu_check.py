"""One-call GPU check: CuPy agrees with NumPy, and how fast the kernels run on the device.

Usage:
    python benchmarks/gpu_check.py             # GPU machine (pip-installs cupy-cuda12x if missing)
    python benchmarks/gpu_check.py --quick     # same checks, smaller performance sizes
    python benchmarks/gpu_check.py --dry-run   # CPU only: NumPy stands in for the device

Correctness: ``simulate_grid`` (DLN, a tiny-α case included) and ``solve_dmft`` run on the device
backend and on NumPy with identical arguments, in float64 and float32. Random inputs are drawn on
the host with NumPy, so the two must agree to rounding. Each observable is compared by its largest
relative deviation |dev − ref| / max(|ref|, FLOOR_REL · max|ref| of the same run); the DMFT is
compared that way on a short sweep, and on a longer one in units of its Monte-Carlo standard error
(the sweep amplifies rounding, see TOL). Result dtypes must be the requested one. One PASS/FAIL
line is printed per comparison.

Performance (one table, float64 and float32 side by side; device arrays made with the namespace,
``backend.sync`` before and after every timed region, best of 3 (DMFT: best of 2)):
  - GEMM rate of (n×d)@(d×64), the simulator's batched product, in GFLOP/s;
  - device-to-device copy bandwidth, ``xp.asarray(x, copy=True)``, counting read + write bytes;
  - simulator, 64 runs on shared data: 4·n·d flops per run-step (two matrix products) per second
    of the marginal step cost (time of n_steps minus time of 0 steps, so host data generation and
    transfers drop out), and its ratio to the GEMM rate;
  - DMFT, P = 1, 8, 32 points in one call: seconds per point end to end (host-side input
    generation included) and for the device sweep alone, the sweep's memory traffic and flop
    rate from the solver's own count (``dmft.sweep_work``) and their ratios to the copy
    bandwidth and the GEMM rate (the roofline of ``benchmarks/bench_dmft.py``, on the device).

Time budget: ≤ 5 min on one H200 (estimated 1-2 min including CuPy's first-use kernel
compilation, pip install excluded; not yet measured on a GPU); ``--dry-run`` takes 11–22 s on 2 shared CPU
cores (≤ 60 s required), the full sizes on NumPy ~35 s. Exit code: 0 all correctness checks pass, 1 a check failed,
2 no usable GPU (CuPy missing after the install attempt, or no CUDA device).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import subprocess
import sys
import time

import numpy as np

from dln_kernels import backend
from dln_kernels.dmft import solver as dmft_module
from dln_kernels.model.dln_state import alpha_min
from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.sim.simulate import simulate_grid

SIM_OBS = ("e_train", "e_test", "l1_norm", "conservation_drift", "beta_final")
DMFT_OBS = ("e_train", "e_test")
# Relative tolerances. float64: the simulator differs from NumPy only by the summation order of
# the matrix products and reductions. The DMFT's long causal sweep amplifies rounding: each row is
# built from all earlier rows, and the Gram–Schmidt factor L_M of the nearly dependent path
# vectors of a slow, small-α point magnifies ulps step after step. CPU runs with two summation
# orders differ by ~1e-14 at T = 16 but ~4e-5 at T = 61 (α = 0.1). So the DMFT is compared to
# 1e-9 on a short sweep, and on the longer one in units of its Monte-Carlo standard error (the
# differences are pathwise, far below the statistical error: measured up to 6e-4 se in float64
# and 0.35 se in float32, so float32 is only required to agree within one standard error).
TOL = {("simulate", "float64"): 1e-12, ("dmft", "float64"): 1e-9,
       ("simulate", "float32"): 1e-3, ("dmft", "float32"): 1e-3}
SE_TOL = {"float64": 0.01, "float32": 1.0}  # max |dev − ref| / se on the long DMFT sweep
FLOOR_REL = 1e-2  # entries below this fraction of their run's largest |value| are compared absolutely
DMFT_SHORT, DMFT_LONG = 15, 60  # n_steps of the two DMFT comparisons
SIZES = {  # performance sizes: simulator d and steps, copy MB, DMFT points P and time points T
    "full": dict(sim_d=2000, sim_steps=200, copy_mb=256, dmft_p=(1, 8, 32), dmft_t=400),
    "quick": dict(sim_d=2000, sim_steps=100, copy_mb=256, dmft_p=(1, 8), dmft_t=200),
    "dry": dict(sim_d=300, sim_steps=50, copy_mb=32, dmft_p=(1, 2), dmft_t=60),
}
N_RUNS = 64  # simulator runs (α values) on shared data = GEMM right-hand columns


def device_backend(dry_run: bool) -> str:
    """'numpy' for a dry run, else 'cupy' (installing cupy-cuda12x once if it is missing)."""
    if dry_run:
        return "numpy"
    if importlib.util.find_spec("cupy") is None:
        print("CuPy not installed: pip install -q cupy-cuda12x", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "cupy-cuda12x"], check=False)
        importlib.invalidate_caches()
    try:
        backend.get_namespace("cupy")
    except RuntimeError as err:
        print(f"gpu_check: no usable GPU: {err}", file=sys.stderr)
        sys.exit(2)
    return "cupy"


def header(name: str, dry_run: bool) -> str:
    if name == "cupy":
        import cupy

        dev = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        dev = dev.decode() if isinstance(dev, bytes) else dev
        libs = f"CuPy {cupy.__version__}, NumPy {np.__version__}"
    else:
        dev, libs = platform.processor() or platform.machine(), f"NumPy {np.__version__}"
    mark = " | CPU dry run: numbers are not GPU numbers" if dry_run else ""
    return f"# gpu_check: device {dev} (backend {name}); {libs}{mark}"


def deviation(got, ref, se=None) -> float:
    """Largest |got − ref| / scale; inf if the shapes differ or a value is not finite. The scale
    is max(|ref|, FLOOR_REL · max|ref| of the run, i.e. the last axis), or, given ``se`` (the
    Monte-Carlo standard errors of ref), max(se, FLOOR_REL · |ref|)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape or not (np.all(np.isfinite(got)) and np.all(np.isfinite(ref))):
        return float("inf")
    if se is None:
        scale = np.maximum(np.abs(ref), FLOOR_REL * np.max(np.abs(ref), axis=-1, keepdims=True))
    else:
        scale = np.maximum(np.asarray(se, np.float64), FLOOR_REL * np.abs(ref))
    diff = np.abs(got - ref)
    return float(np.max(np.where(diff == 0, 0.0, diff / np.maximum(scale, 1e-300))))


def compare(kernel, dtype, label, dev, ref, names, in_se=False) -> bool:
    """One PASS/FAIL line per observable: deviation (relative, or in standard errors) and dtype."""
    ok_all = True
    tol = SE_TOL[dtype] if in_se else TOL[(kernel, dtype)]
    for k in names:
        dtype_ok = dev[k].dtype == ref[k].dtype == np.dtype(dtype)
        err = deviation(dev[k], ref[k], ref[k + "_se"] if in_se else None)
        ok = dtype_ok and err <= tol
        ok_all &= ok
        what = "max dev / se" if in_se else "max rel dev "
        print(f"{'PASS' if ok else 'FAIL'} {kernel:8s} {dtype} {label:22s} {k:18s} {what} {err:8.1e} "
              f"(tol {tol:.0e}), dtype {'ok' if dtype_ok else f'{dev[k].dtype}/{ref[k].dtype}'}", flush=True)
    return ok_all


def correctness(dev_name: str) -> bool:
    """Device vs NumPy, same arguments: simulator (12 runs × 2 seeds) and DMFT (3 points)."""
    ok = True
    for dtype in ("float64", "float32"):
        tiny = max(1e-30, alpha_min(dtype))  # the (a, b) state is exact only for α ≥ alpha_min(dtype)
        print(f"# {dtype}: tiny alpha {tiny:.3g}", flush=True)
        sim = dict(model="dln", d=200, delta=0.5, rho=[0.2], sigma=[0.0, 0.1], alpha=[tiny, 1e-3, 0.5],
                   weight_decay=[0.0, 0.01], seeds=[0, 1], dt=0.05, n_steps=300,
                   record_steps=[0, 1, 10, 100, 300], dtype=dtype, save_beta=True)
        res = [simulate_grid(backend=b, **sim) for b in (dev_name, "numpy")]
        ok &= compare("simulate", dtype, "24 runs, 300 steps", *res, SIM_OBS)
        pts = {"alpha": [tiny, 0.1, 1.0], "delta": [0.5], "rho": [0.3], "sigma": [0.0]}
        for n_steps in (DMFT_SHORT, DMFT_LONG):
            dm = dict(n_steps=n_steps, dt=0.05, n_paths=1600, dtype=dtype, progress=False, n_batches=8)
            res = [device_dmft(dev_name, pts, dm), solve_dmft(pts, backend="numpy", **dm)]
            ok &= compare("dmft", dtype, f"3 points, T={n_steps + 1}", *res, DMFT_OBS, in_se=n_steps == DMFT_LONG)
    return ok


def device_dmft(dev_name: str, pts, kw):
    """solve_dmft on the device. On a device the passes over Q are one matmul each, on NumPy the
    fused CPU loops (dmft.FUSE_PRODUCTS); with NumPy standing in (--dry-run) the matmul twin is
    forced, so the dry run compares the same two code paths as a GPU run."""
    if dev_name != "numpy":
        return solve_dmft(pts, backend=dev_name, **kw)
    saved, dmft_module.FUSE_PRODUCTS = dmft_module.FUSE_PRODUCTS, True
    try:
        return solve_dmft(pts, backend="numpy", **kw)
    finally:
        dmft_module.FUSE_PRODUCTS = saved


def best_of(xp, fn, repeat=3) -> float:
    """Shortest wall time of ``repeat`` calls of fn, synchronised with the device."""
    times = []
    for _ in range(repeat):
        backend.sync(xp)
        t0 = time.perf_counter()
        fn()
        backend.sync(xp)
        times.append(time.perf_counter() - t0)
    return min(times)


def rate(xp, op, work: float, reps: int) -> float:
    """work · reps / (best time of ``reps`` calls of op), in units of 1e9/s; one warm-up round."""
    def go():
        for _ in range(reps):
            op()

    go()
    return work * reps / best_of(xp, go) / 1e9


def gemm_gflops(xp, n, d, b, dtype) -> float:
    """GFLOP/s of (n×d)@(d×b) with xp.matmul (2·n·d·b flops)."""
    rng, dt = np.random.default_rng(0), backend.xp_dtype(xp, dtype)
    a = xp.asarray(rng.standard_normal((n, d)), dtype=dt)
    x = xp.asarray(rng.standard_normal((d, b)), dtype=dt)
    return rate(xp, lambda: xp.matmul(a, x), 2.0 * n * d * b, reps=50)


def copy_gbs(xp, mbytes, dtype) -> float:
    """GB/s of a device-to-device copy of ``mbytes`` MiB, counting read + write."""
    x = xp.ones((int(mbytes * 2**20) // np.dtype(dtype).itemsize,), dtype=backend.xp_dtype(xp, dtype))
    return rate(xp, lambda: xp.asarray(x, copy=True), 2.0 * mbytes * 2**20, reps=10)


def sim_gflops(name, d, steps, dtype) -> float:
    """4·n·d flops per run-step over the marginal time per step (t(steps) − t(0)) / steps."""
    xp = backend.get_namespace(name)
    n = int(round(0.5 * d))

    def run(k):
        simulate_grid(model="dln", d=d, delta=0.5, rho=[0.2], sigma=[0.1],
                      alpha=list(np.geomspace(1e-3, 1.0, N_RUNS)), weight_decay=[0.0], seeds=[0],
                      dt=0.01, n_steps=k, record_steps=[0, k] if k else [0], backend=name, dtype=dtype)

    run(2)  # warm-up: kernel compilation, allocator pools
    t_full, t_zero = best_of(xp, lambda: run(steps)), best_of(xp, lambda: run(0))
    return 4.0 * n * d * N_RUNS * steps / max(t_full - t_zero, 1e-9) / 1e9


def dmft_timing(name, n_points, T, dtype):
    """(end-to-end s/point, sweep s/point, sweep GB/s) of a solve_dmft call of n_points points.

    End to end includes drawing the random inputs on the host (QR factorisations) and moving them
    to the device; the sweep time is that of the device sweep alone (``dmft._sweep``, wrapped
    here with a synchronised timer; NaN if that private function is renamed). Bytes and flops:
    the solver's own count ``dmft.sweep_work`` (per point three matrix–vector passes over an N×k
    history at step k, and two matrix–matrix passes over the shared noise and probes, per call),
    N = n_paths of the point. Returns also the achieved GFLOP/s.
    """
    xp = backend.get_namespace(name)
    n_paths = 8 * T  # 8 replicas of T paths (as in the first measurements, for comparison)
    pts = {"alpha": list(np.geomspace(1e-3, 1.0, n_points)), "delta": [0.5], "rho": [0.3], "sigma": [0.1]}
    sweeps = []  # device sweep seconds, one entry per solve_dmft call
    inner = getattr(dmft_module, "_sweep", None)

    def timed_sweep(inp):  # the solver's forward sweep of one chunk (its resolved inputs ``inp``)
        backend.sync(inp.xp)
        t0 = time.perf_counter()
        out = inner(inp)
        backend.sync(inp.xp)
        sweeps[-1] += time.perf_counter() - t0
        return out

    def go():
        sweeps.append(0.0)
        solve_dmft(pts, n_steps=T - 1, dt=0.05, n_paths=n_paths, backend=name, dtype=dtype,
                   progress=False, n_batches=8, memory_budget_bytes=None)

    if inner is not None:
        dmft_module._sweep = timed_sweep
    try:
        t = best_of(xp, go, repeat=2)
    finally:
        if inner is not None:
            dmft_module._sweep = inner
    t_sweep = min(sweeps) if inner is not None else float("nan")
    work = dmft_module.sweep_work(n_points, n_paths, T - 1, 8, dtype)
    return t / n_points, t_sweep / n_points, work["bytes"] / t_sweep / 1e9, work["flops"] / t_sweep / 1e9


def performance(name: str, size: dict) -> list[tuple[str, list[float], str]]:
    """Table rows (label, [float64, float32], unit)."""
    xp = backend.get_namespace(name)
    d, steps = size["sim_d"], size["sim_steps"]
    n = int(round(0.5 * d))
    rows = {k: [] for k in ("gemm", "copy", "sim", "ratio")}
    dm = {P: {k: [] for k in ("dmft", "sweep", "bw", "bw_ratio", "fl", "fl_ratio")} for P in size["dmft_p"]}
    for dtype in ("float64", "float32"):
        rows["gemm"].append(gemm_gflops(xp, n, d, N_RUNS, dtype))
        rows["copy"].append(copy_gbs(xp, size["copy_mb"], dtype))
        rows["sim"].append(sim_gflops(name, d, steps, dtype))
        rows["ratio"].append(rows["sim"][-1] / rows["gemm"][-1])
        for P, r in dm.items():
            for key, val in zip(("dmft", "sweep", "bw", "fl"), dmft_timing(name, P, size["dmft_t"], dtype)):
                r[key].append(val)
            r["bw_ratio"].append(r["bw"][-1] / rows["copy"][-1])
            r["fl_ratio"].append(r["fl"][-1] / rows["gemm"][-1])
    T = size["dmft_t"]
    table = [
        (f"GEMM ({n}x{d})@({d}x{N_RUNS})", rows["gemm"], "GFLOP/s"),
        (f"device copy {size['copy_mb']} MB (read+write)", rows["copy"], "GB/s"),
        (f"simulator {N_RUNS} runs d={d}, per step", rows["sim"], "GFLOP/s"),
        ("simulator / GEMM", rows["ratio"], "ratio"),
    ]
    for P, r in dm.items():
        table += [
            (f"DMFT P={P} T={T} N={8 * T}, end to end", r["dmft"], "s/point"),
            (f"DMFT P={P} device sweep alone", r["sweep"], "s/point"),
            (f"DMFT P={P} sweep traffic (dmft.sweep_work)", r["bw"], "GB/s"),
            (f"DMFT P={P} sweep traffic / copy", r["bw_ratio"], "ratio"),
            (f"DMFT P={P} sweep flops (dmft.sweep_work)", r["fl"], "GFLOP/s"),
            (f"DMFT P={P} sweep flops / GEMM", r["fl_ratio"], "ratio"),
        ]
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU only: NumPy as the device, small sizes")
    ap.add_argument("--quick", action="store_true", help="smaller performance sizes")
    args = ap.parse_args()
    t0 = time.perf_counter()
    name = device_backend(args.dry_run)
    head = header(name, args.dry_run)
    print(head, flush=True)
    ok = correctness(name)
    size = SIZES["dry" if args.dry_run else "quick" if args.quick else "full"]
    table = performance(name, size)
    print(f"\n{head}")
    print(f"{'quantity':44s} {'float64':>10s} {'float32':>10s}  unit")
    for label, vals, unit in table:
        print(f"{label:44s} {vals[0]:10.4g} {vals[1]:10.4g}  {unit}")
    print(f"# correctness: {'all PASS' if ok else 'FAILED'}; total {time.perf_counter() - t0:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
