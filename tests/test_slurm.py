"""The real workflow through a real SLURM cluster, with the project's SLURM profile.

Needs a running cluster (CI: ci/slurm/start_cluster.sh) and snakemake-executor-plugin-slurm
(`pip install -e ".[slurm]"`); run with `pytest -m slurm`. Skipped otherwise, unless
DLN_REQUIRE_SLURM=1 (set by .ci/run), where a missing cluster is an error.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from importlib.util import find_spec

import numpy as np
import pytest
import xarray as xr
from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]
# The project's profile plus what this test cluster needs: no accounting storage, so job status
# comes from squeue (MinJobAge=300 keeps finished jobs visible) and there is no account to
# guess; a 2 s first status check instead of 40 s; keep the SLURM logs of successful jobs too.
SLURM = [
    "--profile", str(REPO / "profiles" / "slurm"),
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-no-account",
    "--slurm-keep-successful-logs",
]
TARGETS = ["results/tiny/simulations.nc", "results/tiny/dmft.nc"]


def _chunk_files(sweep_name, config_text=None):
    """{"simulate": [...], "dmft": [...]} output paths of a sweep's chunks (content-named)."""
    import yaml
    from conftest import resolved

    from dln_kernels.sweep import make_chunks, make_dmft_chunks

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    if config_text:
        cfg["sweeps"].update(yaml.safe_load(config_text)["sweeps"])
    sweep = resolved(cfg)["sweeps"][sweep_name]
    return {"simulate": sorted(f"results/{sweep_name}/sim/{c['name']}.h5" for c in make_chunks(sweep)),
            "dmft": sorted(f"results/{sweep_name}/dmft/{c['name']}.h5" for c in make_dmft_chunks(sweep))}


# The jobs behind TARGETS for the tiny sweep: rule -> outputs.
EXPECTED_JOBS = {
    **_chunk_files("tiny"),
    "aggregate": ["results/tiny/simulations.nc"],
    "aggregate_dmft": ["results/tiny/dmft.nc"],
}


def slurm_unavailable():
    """Why the SLURM tests cannot run here (None if they can)."""
    if shutil.which("sinfo") is None:
        return "SLURM is not installed (no `sinfo`); start a test cluster with ci/slurm/start_cluster.sh"
    if find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"no SLURM controller answers (sinfo: {proc.stderr.strip()[:200]})"
    return None


def require_slurm():
    reason = slurm_unavailable()
    if reason:
        if os.environ.get("DLN_REQUIRE_SLURM") == "1":
            pytest.fail(f"DLN_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


def run_uuid(output):
    match = re.search(r"SLURM run ID: ([0-9a-f-]{36})", output)
    assert match, "the SLURM executor did not report a run ID:\n" + output[-3000:]
    return match.group(1)


def slurm_jobs(uuid):
    """{job id: state} of every SLURM job (array tasks as <id>_<task>) of one Snakemake run."""
    proc = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T", "--name", uuid],
                          capture_output=True, text=True, timeout=60, check=True)
    return dict(line.split("|") for line in proc.stdout.split())


def executed_in_slurm_logs(workdir):
    """[(rule, first output)] of every job executed inside a SLURM job, from the plugin's logs.

    Inside the allocation the job is run by the `slurm-jobstep` executor, which logs it as
    ``localrule NAME:`` followed by its ``output:`` (the ``rule NAME:`` header before it is the
    submission's plan; for array tasks it names the array's first job).
    """
    return [job for path in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")) for job in executed_in(path)]


def executed_in(slurm_log):
    """[(rule, first output)] of the jobs executed in one SLURM job's log."""
    text = slurm_log.read_text(errors="replace")
    return re.findall(r"^localrule (\w+):\n(?:    .*\n)*?    output: (\S+?),?\n", text, flags=re.M)


def same_variables(path_a, path_b):
    """Names of variables/coordinates that differ between two Datasets (empty: bit for bit equal)."""
    with xr.open_dataset(path_a, engine="h5netcdf") as a, xr.open_dataset(path_b, engine="h5netcdf") as b:
        a, b = a.load(), b.load()
        assert set(a.variables) == set(b.variables)
        return [v for v in a.variables if not np.array_equal(a[v].values, b[v].values, equal_nan=a[v].dtype.kind == "f")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny sweep's simulations and DMFT, once through SLURM and once locally."""
    require_slurm()
    out = {}
    for name, extra in (("slurm", [*SLURM, "--verbose"]), ("local", ["--cores", "2"])):
        wd = tmp_path_factory.mktemp(name)
        t0 = time.perf_counter()
        proc = subprocess.run([*SNAKEMAKE, "-d", str(wd), *extra, *TARGETS, "--config", "sweep=tiny"],
                              capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - t0
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        out[name] = {"workdir": wd, "output": proc.stdout + proc.stderr, "seconds": seconds}
    print(f"\ntiny sweep (simulations + DMFT): SLURM {out['slurm']['seconds']:.1f} s, local {out['local']['seconds']:.1f} s")
    return out


@pytest.mark.slurm
def test_every_job_ran_as_a_slurm_job(runs):
    run = runs["slurm"]
    n_jobs = sum(len(v) for v in EXPECTED_JOBS.values())
    assert f"{n_jobs} of {n_jobs} steps (100%) done" in run["output"]
    # The scheduler's own view: one SLURM job (or array task) per Snakemake job, all completed.
    jobs = slurm_jobs(run_uuid(run["output"]))
    assert len(jobs) == n_jobs, jobs
    assert set(jobs.values()) == {"COMPLETED"}, jobs
    # The SLURM job logs (written on the node) show each job executed there, exactly once.
    expected = sorted((rule, out) for rule, outs in EXPECTED_JOBS.items() for out in outs)
    assert sorted(executed_in_slurm_logs(run["workdir"])) == expected
    # What was asked of SLURM: the rules' resources, no GPU for a numpy sweep.
    calls = re.findall(r"^sbatch call: (sbatch .*)$", run["output"], flags=re.M)
    assert calls and all("--cpus-per-task=1" in c and "--mem " in c and " -t " in c and "--gpus" not in c for c in calls)
    # The simulation chunks were submitted as one SLURM array job (profile: slurm-array-jobs).
    assert re.search(r"Submitted array job with Snakemake IDs \S+ and SLURM job ID \d+", run["output"])


@pytest.mark.slurm
def test_slurm_and_local_results_are_identical(runs):
    for target in TARGETS:
        a, b = runs["slurm"]["workdir"] / target, runs["local"]["workdir"] / target
        assert same_variables(a, b) == [], target


CUPY_TINY = """
sweeps:
  tiny_cupy:
    grid: {alpha: [0.01, 1.0], delta: [0.5, 2.0], rho: [0.3]}
    d: 60
    seeds: 2
    dt: 0.05
    t_max: 10.0
    output: {n_times: 12}
    chunk_size: 4
    threads: 2
    backend: cupy
    dmft: {enabled: true, n_paths: 2000, n_batches: 4, points_per_job: 4}
"""


def planned_resources(workdir, config_file, sweep):
    """{(rule, wildcards): resources line} of a dry run (no GPU or cluster needed)."""
    proc = subprocess.run([*SNAKEMAKE, str(config_file), "-d", str(workdir), "-n", "--config", f"sweep={sweep}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)\n    resources: (.*)$", proc.stdout + proc.stderr, flags=re.M)
    return {(rule, wc): dict(kv.split("=", 1) for kv in res.split(", ")) for rule, wc, res in jobs}


def test_gpu_and_cpu_requests_follow_the_sweep(tmp_path):
    """simulate/dmft jobs request cpus_per_task = threads and a GPU only for backend cupy."""
    config_file = tmp_path / "cupy.yaml"
    config_file.write_text(CUPY_TINY)
    for sweep, gpu, cpus in (("tiny", "0", "1"), ("tiny_cupy", "1", "2")):
        res = planned_resources(tmp_path / sweep, config_file, sweep)
        heavy = {k: v for k, v in res.items() if k[0] in ("simulate", "dmft")}
        assert sorted({k[0] for k in heavy}) == ["dmft", "simulate"]
        for key, r in heavy.items():
            assert r["gpu"] == gpu and r["cpus_per_task"] == cpus, (sweep, key, r)
            assert int(r["mem_mb"]) >= 300 and int(r["runtime"]) >= 5
        for key, r in res.items():
            if key[0] not in ("simulate", "dmft"):
                assert "gpu" not in r and "cpus_per_task" not in r, (sweep, key, r)


@pytest.mark.slurm
def test_cupy_sweep_asks_slurm_for_a_gpu(tmp_path):
    """The GPU request reaches sbatch as --gpus=1 (this test cluster has no GPU and refuses it)."""
    require_slurm()
    config_file = tmp_path / "cupy.yaml"
    config_file.write_text(CUPY_TINY)
    proc = subprocess.run([*SNAKEMAKE, str(config_file), "-d", str(tmp_path / "wd"), *SLURM, "--verbose", "--retries", "0",
                           _chunk_files("tiny_cupy", CUPY_TINY)["simulate"][0], "--config", "sweep=tiny_cupy"],
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    calls = re.findall(r"^sbatch call: (sbatch .*)$", out, flags=re.M)
    assert calls and all("--gpus=1" in c and "--cpus-per-task=2" in c for c in calls), calls
    assert "Invalid generic resource (gres) specification" in out
