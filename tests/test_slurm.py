"""The real workflow through a real SLURM cluster, with the project's SLURM profile.

Needs a running cluster (CI: ci/slurm/start_cluster.sh) and snakemake-executor-plugin-slurm
(`pip install -e ".[slurm]"`); run with `pytest -m slurm`. Skipped otherwise, unless
DLN_REQUIRE_SLURM=1 (set by .ci/run), where a missing cluster is an error.
"""

import os
import re
import shutil
import signal
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

    from dln_kernels.pipeline.chunks import make_chunks, make_dmft_chunks

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


# A wide sweep: WIDE_CHUNKS one-seed simulation chunks of a few milliseconds each. With the
# earlier profile (`jobs: 100` and array jobs) the SLURM plugin (2.8) dropped the first batch of
# 100 ready chunks because 150 more were waiting, and the run waited forever with nothing in the
# queue (snakemake-executor-plugin-slurm issue #473): any sweep of more than 2 x 100 chunks. The
# rules that avoid it are in profiles/slurm/config.yaml.
WIDE_CHUNKS = 250
WIDE = f"""
sweeps:
  wide:
    grid: {{alpha: [0.1], delta: [0.5], rho: [0.3]}}
    d: 20
    seeds: {WIDE_CHUNKS}
    dt: 0.05
    t_max: 0.5
    output: {{n_times: 3}}
    chunk_size: 1
    dmft: {{enabled: false}}
    static: {{enabled: false}}
"""


def slurm_profile():
    import yaml

    return yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())


def test_slurm_profile_hands_all_ready_array_jobs_to_the_plugin():
    """The profile's rules for array jobs (explained there): no cap on the jobs Snakemake hands
    the plugin at once, and arrays small enough for one sbatch command line."""
    profile = slurm_profile()
    if not profile.get("slurm-array-jobs"):
        pytest.skip("the profile submits no array jobs")
    assert str(profile["jobs"]) == "unlimited"
    assert int(str(profile["max-jobs-per-timespan"]).split("/")[0]) >= 10_000
    assert 2 <= int(profile["slurm-array-limit"]) <= 50


def slurm_tasks(uuid):
    """{job id: state} of every SLURM job of one Snakemake run, one entry per array task."""
    proc = subprocess.run(["squeue", "-r", "--states=all", "--noheader", "--format=%i|%T", "--name", uuid],
                          capture_output=True, text=True, timeout=60, check=True)
    return dict(line.split("|") for line in proc.stdout.split())


@pytest.mark.slurm
def test_wide_sweep_is_submitted_as_array_jobs(tmp_path):
    """All chunks of a 250-chunk sweep reach SLURM as array tasks at once, and they run.

    CI checks the submission and the first tasks, then interrupts the run (~35 s): the 250
    tasks take 15-25 min on the 2-core CI cluster (~7 s of Snakemake start-up each, two at a
    time). DLN_SLURM_WIDE_FULL=1 runs the sweep to the end and checks that every chunk ran in
    an array task and simulations.nc holds every seed.
    """
    require_slurm()
    full = os.environ.get("DLN_SLURM_WIDE_FULL") == "1"
    config_file = tmp_path / "wide.yaml"
    config_file.write_text(WIDE)
    chunks = _chunk_files("wide", WIDE)["simulate"]
    assert len(chunks) == WIDE_CHUNKS
    limit = int(slurm_profile().get("slurm-array-limit", 1000))  # the plugin's default
    wd, log = tmp_path / "wd", tmp_path / "snakemake.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen([*SNAKEMAKE, str(config_file), "-d", str(wd), *SLURM, "--verbose",
                                 "results/wide/simulations.nc", "--config", "sweep=wide"],
                                stdout=out, stderr=subprocess.STDOUT)
    uuid = None

    def wait_for(condition, seconds):
        """Poll SLURM until condition(tasks) holds; (tasks, seconds since the start)."""
        nonlocal uuid
        deadline, tasks = time.monotonic() + seconds, {}
        while time.monotonic() < deadline and proc.poll() is None:
            if uuid is None:
                match = re.search(r"SLURM run ID: ([0-9a-f-]{36})", log.read_text(errors="replace"))
                uuid = match.group(1) if match else None
            tasks = slurm_tasks(uuid) if uuid else {}
            if condition(tasks):
                break
            time.sleep(2)
        return tasks, time.monotonic() - t0

    try:
        # 1. Every chunk is in SLURM within a few minutes, as array tasks (ID <array>_<task>) of
        #    arrays of at most slurm-array-limit tasks, each submitted with its own command.
        tasks, t_submit = wait_for(lambda t: len(t) >= WIDE_CHUNKS, 120)
        text = log.read_text(errors="replace")
        held = re.findall(r"^Array job collection incomplete.*$", text, flags=re.M)
        assert len(tasks) == WIDE_CHUNKS, (
            f"{len(tasks)} of {WIDE_CHUNKS} chunks reached SLURM in {t_submit:.0f} s; held back by the plugin: "
            f"{held[:3]}\n" + text[-3000:])
        assert all(re.fullmatch(r"\d+_\d+", job) for job in tasks), sorted(tasks)[:10]
        per_array = {}
        for job in tasks:
            per_array[job.split("_")[0]] = per_array.get(job.split("_")[0], 0) + 1
        assert max(per_array.values()) <= limit, per_array
        assert "retrying via /dev/stdin script mode" not in text
        print(f"\nwide sweep: {WIDE_CHUNKS} chunks in SLURM after {t_submit:.1f} s as {len(per_array)} array jobs")

        if not full:
            # 2. The first tasks run, each its own chunk, then the run is interrupted (Ctrl-C),
            #    which cancels the rest.
            tasks, t_run = wait_for(lambda t: sum(s == "COMPLETED" for s in t.values()) >= 3, 240)
            done = sorted(job for job, state in tasks.items() if state == "COMPLETED")
            assert len(done) >= 3 and "FAILED" not in tasks.values(), tasks
            executed = [job for j in done for path in (wd / ".snakemake" / "slurm_logs").rglob(f"{j}.log")
                        for job in executed_in(path)]
            assert len(executed) == len(done) and len(set(executed)) == len(done), executed
            assert all(rule == "simulate" and out in chunks and (wd / out).is_file() for rule, out in executed), executed
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
            tasks, _ = wait_for(lambda t: not {"PENDING", "RUNNING"} & set(t.values()), 60)
            assert not {"PENDING", "RUNNING"} & set(tasks.values()), tasks
            print(f"wide sweep: {len(done)} tasks completed after {t_run:.1f} s, run interrupted")
            return

        # 2'. The whole sweep, through SLURM array tasks only, with every seed aggregated.
        assert proc.wait(timeout=3600) == 0, log.read_text(errors="replace")[-3000:]
        text = log.read_text(errors="replace")
        assert f"{WIDE_CHUNKS + 1} of {WIDE_CHUNKS + 1} steps (100%) done" in text
        # (squeue forgets finished jobs after MinJobAge: the SLURM logs, named <array>_<task>.log
        # for array tasks, are the record here.)
        executed = sorted((rule, out, path.stem) for path in (wd / ".snakemake" / "slurm_logs").rglob("*.log")
                          for rule, out in executed_in(path))
        assert [(rule, out) for rule, out, _ in executed] == sorted(
            [("simulate", c) for c in chunks] + [("aggregate", "results/wide/simulations.nc")])
        assert all(re.fullmatch(r"\d+_\d+", job) for rule, _, job in executed if rule == "simulate")
        with xr.open_dataset(wd / "results" / "wide" / "simulations.nc", engine="h5netcdf") as ds:
            assert sorted(ds["seed"].values.tolist()) == list(range(WIDE_CHUNKS))
        print(f"wide sweep: {WIDE_CHUNKS} chunks done through SLURM in {time.monotonic() - t0:.1f} s")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if uuid:  # whatever of this run is still queued
            subprocess.run(["scancel", "--name", uuid], capture_output=True, timeout=60)
