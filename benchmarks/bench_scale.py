"""How a sweep scales with its number of jobs: DAG seconds, aggregation seconds and peak memory.

Usage: python benchmarks/bench_scale.py [--sizes 100 1000 10000 100000] [--measure-up-to 10000]
       [--dag-up-to 10000] [--runs-per-job 10] [--n-times 30] [--workers 2] [--no-dag] [--keep DIR]

For each number of jobs n:

- DAG seconds: ``snakemake -n`` (dry run: Snakemake's start, the config checks, planning the n
  simulation jobs and the aggregation) of a generated sweep ``bench`` with n simulation chunks
  (``--configfile`` of a temporary file next to config.yaml, ``--config sweep=bench``).
- aggregation seconds and peak memory: ``io.aggregate_to_netcdf`` of n synthetic chunks (written
  by the real chunk writer ``io.write_chunk``: valid chunks, random numbers; running the
  simulations would take far longer than aggregating them), in a fresh process so that its peak
  RSS (``ru_maxrss``) is its own; "Δ peak" is that peak less the RSS after the imports. Then one
  chunk (one more seed) is added and aggregated again: the incremental path reads only it.
- a second table keeps the output size fixed (``runs-per-job × 10⁴`` runs) and varies the number
  of chunks: memory bounded by the output, not by the number of chunks, is a flat column there.

Sizes above ``--measure-up-to`` (``--dag-up-to`` for the DAG) are extrapolated from a power law
through the two largest measured sizes, and marked so. Ends with a line on how each column grows
(the slope of log value against log n).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OBSERVABLES = ("e_train", "e_test", "l1_norm", "conservation_drift")  # a simulation chunk's, all (R, T)


# ---- synthetic chunks ----------------------------------------------------------------------------

def synthetic_sweep(n_jobs: int, runs_per_job: int) -> dict:
    """The grid of n_jobs chunks of runs_per_job runs: one chunk per seed, all alphas in each."""
    return {"grid": {"alpha": [float(a) for a in np.geomspace(1e-3, 1.0, runs_per_job)], "delta": [0.5], "rho": [0.3]},
            "seeds": int(n_jobs)}


def chunk_path(folder, seed: int) -> Path:
    return Path(folder) / f"delta0.5_seeds{seed}_synthetic.h5"


def _write_range(args) -> None:
    from dln_kernels.pipeline import io

    folder, seeds, runs_per_job, n_times = args
    alphas = np.asarray(synthetic_sweep(1, runs_per_job)["grid"]["alpha"])
    time_ = np.geomspace(0.01, 10.0, n_times)
    for s in seeds:
        rng = np.random.default_rng(s)
        result = {
            "params": {"alpha": alphas, "delta": np.full(runs_per_job, 0.5), "rho": np.full(runs_per_job, 0.3),
                       "seed": np.full(runs_per_job, s, dtype=np.int64)},
            "time": time_, "step": np.arange(n_times, dtype=np.int64) * 10,
            **{n: rng.random((runs_per_job, n_times)) for n in OBSERVABLES},
        }
        attrs = {"config": json.dumps({"sweep_name": "bench", "chunk": {"delta": 0.5, "seeds": [int(s)]}}),
                 "git_commit": "synthetic", "backend": "numpy", "dtype": "float64",
                 "created": "2026-01-01T00:00:00+00:00"}
        io.write_chunk(chunk_path(folder, s), result, attrs)


def write_synthetic(folder, n_jobs: int, runs_per_job: int, n_times: int, workers: int = 1, start: int = 0) -> list:
    """Write chunks for seeds start..start+n_jobs-1 (skipping those present); return all their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [s for s in range(start, start + n_jobs) if not chunk_path(folder, s).exists()]
    parts = [(folder, todo[i::workers], runs_per_job, n_times) for i in range(workers)] if todo else []
    if workers > 1 and len(todo) > 50:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_range, parts))
    else:
        for p in parts:
            _write_range(p)
    return [chunk_path(folder, s) for s in range(start, start + n_jobs)]


def output_bytes(n_jobs: int, runs_per_job: int, n_times: int) -> int:
    """Bytes of the aggregated observables (float64)."""
    return 8 * n_jobs * runs_per_job * n_times * len(OBSERVABLES)


# ---- aggregation: measured in a fresh process ----------------------------------------------------

def aggregate_case(folder, n_jobs: int, runs_per_job: int, out, incremental: bool = True) -> dict:
    """Aggregate the n_jobs chunks of ``folder`` into ``out`` (in this process); then, with
    ``incremental``, add one chunk and aggregate again. Seconds and what was read."""
    from dln_kernels.pipeline import io

    paths = [chunk_path(folder, s) for s in range(n_jobs)]
    Path(out).unlink(missing_ok=True)
    t0 = time.perf_counter()
    info = io.aggregate_to_netcdf(paths, out, synthetic_sweep(n_jobs, runs_per_job), {"title": "bench", "chunks": None})
    row = {"seconds": time.perf_counter() - t0, "read": info["read"]}
    if incremental:
        extra = chunk_path(folder, n_jobs)
        assert extra.exists(), extra
        t0 = time.perf_counter()
        again = io.aggregate_to_netcdf(paths + [extra], out, synthetic_sweep(n_jobs + 1, runs_per_job),
                                       {"title": "bench", "chunks": None})
        row.update(incremental_seconds=time.perf_counter() - t0, incremental_read=again["read"],
                   incremental=again["incremental"])
    return row


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(folder, n_jobs, runs_per_job, out, incremental) -> None:
    import xarray  # noqa: F401  (the imports belong to the baseline)

    import dln_kernels.pipeline.io  # noqa: F401

    base = _rss_bytes()
    row = aggregate_case(folder, n_jobs, runs_per_job, out, incremental)
    row.update(base_rss=base, peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(row))


def measure_aggregation(folder, n_jobs: int, runs_per_job: int, n_times: int, workers: int, incremental=True) -> dict:
    """Write the synthetic chunks (and one more for the incremental step), aggregate in a fresh process."""
    write_synthetic(folder, n_jobs + (1 if incremental else 0), runs_per_job, n_times, workers)
    out = Path(folder) / "simulations.nc"
    code = ("import sys; sys.path.insert(0, %r); import bench_scale as b; b._worker(%r, %d, %d, %r, %r)"
            % (str(Path(__file__).parent), str(folder), n_jobs, runs_per_job, str(out), incremental))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["output_bytes"] = output_bytes(n_jobs, runs_per_job, n_times)
    return row


# ---- DAG: snakemake -n of a generated sweep --------------------------------------------------------

def _env() -> dict:
    """The environment for Snakemake; where a SLURM client is installed but no controller answers,
    an ``scontrol`` that fails at once goes first on PATH (as tests/conftest.py does): the SLURM
    plugin otherwise waits ~9 s for the controller on every start, which is not the DAG's time."""
    env = dict(os.environ)
    if shutil.which("scontrol"):
        try:
            down = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10).returncode != 0
        except (OSError, subprocess.SubprocessError):
            down = False
        if down:
            stub = Path(tempfile.mkdtemp(prefix="bench-scontrol-"))
            (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
            (stub / "scontrol").chmod(0o755)
            env["PATH"] = f"{stub}{os.pathsep}{env.get('PATH', '')}"
    return env


def dag_config(n_jobs: int, runs_per_job: int, n_times: int) -> dict:
    """A sweep ``bench`` of n_jobs simulation chunks (one seed each, runs_per_job alphas)."""
    return {"sweeps": {"bench": {
        "model": "dln", "grid": synthetic_sweep(n_jobs, runs_per_job)["grid"], "d": 20, "seeds": int(n_jobs),
        "dt": 0.02, "t_max": 1.0, "output": {"n_times": int(n_times)}, "chunk_size": int(runs_per_job),
        "dmft": {"enabled": False}, "static": {"enabled": False},
        "budget": {"jobs": 10 * int(n_jobs)}}}}  # the default budget (20000 jobs) would refuse the large sizes


def dag_seconds(n_jobs: int, runs_per_job: int, n_times: int, workdir, timeout: float = 900, env=None):
    """Seconds of ``snakemake -n`` for the sweep of :func:`dag_config`, and the number of simulate
    jobs it planned (None past ``timeout``)."""
    import yaml

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / f"bench_{n_jobs}.yaml"
    cfg.write_text(yaml.safe_dump(dag_config(n_jobs, runs_per_job, n_times)))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml"),
           str(cfg), "-d", str(workdir / f"wd_{n_jobs}"), "--config", "sweep=bench", "-n", "--quiet", "rules",
           "--", "results/bench/simulations.nc"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())
    except subprocess.TimeoutExpired:
        return None, None
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    m = re.search(r"^simulate\s+(\d+)\s*$", proc.stdout + proc.stderr, re.M)
    return seconds, int(m.group(1)) if m else None


# ---- table ---------------------------------------------------------------------------------------

def slope(ns, values) -> float:
    """Exponent b of values ~ n^b: least-squares slope of log value against log n."""
    ok = [(n, v) for n, v in zip(ns, values) if v is not None and v > 0]
    if len(ok) < 2:
        return float("nan")
    x, y = np.log([n for n, _ in ok]), np.log([v for _, v in ok])
    return float(np.polyfit(x, y, 1)[0])


def extrapolate(ns, values, n) -> float:
    """Power law through the two largest measured sizes, evaluated at n."""
    (n1, v1), (n2, v2) = [(a, b) for a, b in zip(ns, values) if b is not None][-2:]
    b = math.log(v2 / v1) / math.log(n2 / n1)
    return v2 * (n / n2) ** b


def _fmt(v, unit="", width=9, extrapolated=False):
    if v is None:
        return f"{'—':>{width}s}"
    s = f"{v:.1f}{unit}" if v >= 10 else f"{v:.2f}{unit}"
    return f"{s + ('*' if extrapolated else ''):>{width}s}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    ap.add_argument("--measure-up-to", type=int, default=10000, help="aggregate synthetic chunks up to this many jobs")
    ap.add_argument("--dag-up-to", type=int, default=10000, help="run snakemake -n up to this many jobs")
    ap.add_argument("--runs-per-job", type=int, default=10)
    ap.add_argument("--n-times", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2, help="processes writing the synthetic chunks")
    ap.add_argument("--no-dag", action="store_true")
    ap.add_argument("--no-fixed", action="store_true", help="skip the fixed-output table")
    ap.add_argument("--keep", type=Path, help="folder for the chunks (kept; reused by a later run)")
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    R, T = args.runs_per_job, args.n_times
    print(f"bench_scale: {os.cpu_count()} CPUs; chunks of {R} runs × {T} times × {len(OBSERVABLES)} observables "
          f"(float64); folder {root}", flush=True)
    env = _env()
    dag_start = None
    if not args.no_dag:
        dag_start, _ = dag_seconds(1, R, T, root / "dag", env=env)
        print(f"snakemake -n of a 1-job sweep (start-up, config checks): {dag_start:.1f} s", flush=True)
    rows = []
    for n in sorted(args.sizes):
        row = {"n": n}
        if not args.no_dag and n <= args.dag_up_to:
            row["dag"], planned = dag_seconds(n, R, T, root / "dag", env=env)
            if planned is not None and planned != n:
                raise RuntimeError(f"snakemake planned {planned} simulate jobs, expected {n}")
        if n <= args.measure_up_to:
            row.update(measure_aggregation(root / f"jobs{n}", n, R, T, args.workers))
            if args.keep is None:
                shutil.rmtree(root / f"jobs{n}")
        rows.append(row)
        print(f"  measured n={n}: {row}", flush=True)
    ns = [r["n"] for r in rows]
    cols = {"dag": "DAG s", "seconds": "aggr. s", "incremental_seconds": "+1 chunk s", "delta_peak": "Δ peak MB",
            "peak": "peak RSS MB", "output": "output MB"}
    for r in rows:
        if "peak_rss" in r:
            r["peak"], r["delta_peak"] = r["peak_rss"] / 2**20, (r["peak_rss"] - r["base_rss"]) / 2**20
        r["output"] = output_bytes(r["n"], R, T) / 2**20
    extrapolated = {}
    for key in cols:
        measured = [r.get(key) for r in rows]
        if key != "peak" and sum(v is not None for v in measured) >= 2:
            for r in rows:
                if r.get(key) is None and (key != "dag" or not args.no_dag):
                    r[key] = extrapolate(ns, measured, r["n"])
                    extrapolated[(r["n"], key)] = True
    bases = [r["base_rss"] / 2**20 for r in rows if "base_rss" in r]
    for r in rows:  # peak RSS = the imports' RSS (the same in every process) + the extrapolated Δ peak
        if r.get("peak") is None and r.get("delta_peak") is not None and bases:
            r["peak"], extrapolated[(r["n"], "peak")] = float(np.mean(bases)) + r["delta_peak"], True
    print()
    print(f"{'jobs':>8s} " + " ".join(f"{c:>11s}" for c in cols.values()))
    for r in rows:
        print(f"{r['n']:>8d} " + " ".join(_fmt(r.get(k), width=11, extrapolated=extrapolated.get((r["n"], k), False))
                                          for k in cols))
    if extrapolated:
        print("* extrapolated: a power law through the two largest measured sizes "
              f"(aggregation measured up to {args.measure_up_to}, DAG up to {args.dag_up_to} jobs)")
    meas = lambda k: ([r["n"] for r in rows if not extrapolated.get((r["n"], k))],  # noqa: E731
                      [r.get(k) for r in rows if not extrapolated.get((r["n"], k))])
    parts = []
    for k, label in (("dag", "DAG"), ("seconds", "aggregation"), ("delta_peak", "Δ peak memory"),
                     ("output", "output size"), ("incremental_seconds", "adding one chunk")):
        x, y = meas(k)
        if sum(v is not None for v in y) >= 2:
            tail = f" (last decade n^{slope(x[-2:], y[-2:]):.2f})" if len(x) > 2 else ""
            parts.append(f"{label} ~ n^{slope(x, y):.2f}{tail}")
    print(f"grows like (fit of log value vs log n over the measured sizes): {'; '.join(parts)}")
    if dag_start is not None:
        print(f"  (the DAG column includes ~{dag_start:.1f} s of Snakemake start-up and config checks: "
              "the slope of the last decade is the per-job cost)")
    print("  (adding one chunk reads the previous output and writes the new one: it grows with the output, "
          "not with the number of chunks)")

    if not args.no_fixed:
        total = R * 10000
        print(f"\nfixed output ({total} runs × {T} times, {output_bytes(1, total, T) / 2**20:.0f} MB), "
              "more chunks of fewer runs:")
        print(f"{'chunks':>8s} {'runs/chunk':>11s} {'aggr. s':>11s} {'Δ peak MB':>11s} {'peak RSS MB':>11s}")
        fx, fy = [], []
        for n in (100, 1000, 10000):
            if total % n:
                continue
            r = measure_aggregation(root / f"fixed{n}", n, total // n, T, args.workers, incremental=False)
            if args.keep is None:
                shutil.rmtree(root / f"fixed{n}")
            d = (r["peak_rss"] - r["base_rss"]) / 2**20
            fx.append(n), fy.append(d)
            print(f"{n:>8d} {total // n:>11d} {_fmt(r['seconds'], width=11)} {_fmt(d, width=11)} "
                  f"{_fmt(r['peak_rss'] / 2**20, width=11)}", flush=True)
        print(f"grows like: Δ peak memory ~ chunks^{slope(fx, fy):.3f} at a fixed output "
              f"(from {fy[0]:.1f} to {fy[-1]:.1f} MB over {fx[0]}–{fx[-1]} chunks)")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
