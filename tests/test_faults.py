"""Injected faults, with real processes: killed jobs, diverging runs, corrupted chunks, cancelled
SLURM jobs; and provenance: a chunk re-run from its stored attributes, parameter edits that re-run
only the affected chunks.

Each test uses small sweeps defined here (a config file merged over config.yaml), in temporary
working directories.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO

from dln_kernels.pipeline.io import ChunkFileError, read_chunk
from dln_kernels.pipeline.run import run_chunk

# Two chunks (one per δ, 2 seeds × 2 α each) of ~1 s and ~3 s of computing: long enough to kill
# a job while it computes.
FAULTS = {
    "model": "dln",
    "grid": {"alpha": [0.1, 1.0], "delta": [0.5, 2.0], "rho": [0.3]},
    "d": 200,
    "seeds": 2,
    "dt": 0.05,
    "t_max": 2500.0,
    "output": {"n_times": 20},
    "chunk_size": 4,
}
# Passes the configuration check (dt = 0.34 is below the d → ∞ bound 2/(1 + 1/√δ)² ≈ 0.343 of
# the linear model) but at d = 4 the spectrum of XᵀX/δ fluctuates above that edge for seed 6,
# which therefore diverges. Chunks: seeds 0-3 (stable) and 4-7 (seed 6 diverges).
DIVERGING = {
    "model": "linear",
    "grid": {"alpha": [0.5], "delta": [0.5], "rho": [1.0]},
    "d": 4,
    "seeds": 8,
    "dt": 0.34,
    "t_max": 680.0,
    "output": {"n_times": 10},
    "chunk_size": 4,
}
SIMS = "results/{}/simulations.nc"


def chunk_name(sweep: dict, delta: float, seed: int) -> str:
    """Content-derived name of the simulation chunk of ``sweep`` holding (δ, seed)."""
    from conftest import resolved

    from dln_kernels.pipeline.chunks import make_chunks

    full = resolved({"sweeps": {"s": json.loads(json.dumps(sweep))}})["sweeps"]["s"]
    (name,) = [c["name"] for c in make_chunks(full) if c["delta"] == delta and seed in c["seeds"]]
    return name


# the two chunks of FAULTS (one per δ) and of DIVERGING (seeds 0-3 stable, 4-7 with seed 6)
F0, F1 = chunk_name(FAULTS, 0.5, 0), chunk_name(FAULTS, 2.0, 0)
D0, D1 = chunk_name(DIVERGING, 0.5, 0), chunk_name(DIVERGING, 0.5, 6)


def write_config(path, **sweeps):
    path.write_text(yaml.safe_dump({"sweeps": sweeps}))
    return path


def snakemake(config_file, workdir, *args):
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
            "--configfile", str(REPO / "config.yaml"), str(config_file), "-d", str(workdir), *args]


def run(cmd, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def variables(path):
    """{name: values} of every variable and coordinate of an aggregated Dataset."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return {k: ds[k].values.copy() for k in ds.variables}


def assert_same(a, b):
    assert set(a) == set(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def wait_for(predicate, timeout, what):
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def started(log_path, chunk):
    """The simulate script of ``chunk`` has started computing (its first log line is written)."""
    return log_path.exists() and f"chunk {chunk}:" in log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("cfg") / "faults.yaml", faults=FAULTS, diverging=DIVERGING)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config_file):
    """An uninterrupted local run of the faults sweep."""
    wd = tmp_path_factory.mktemp("reference")
    proc = run(snakemake(config_file, wd, "--cores", "2", SIMS.format("faults"), "--config", "sweep=faults"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wd


# --- killed jobs ------------------------------------------------------------------------------


def test_sigkill_mid_write_leaves_no_complete_file(tmp_path):
    """SIGKILL a process while kernels/dln_kernels/pipeline/io.py writes a (large) chunk: nothing under the chunk's
    name, and what is left under the temporary name is rejected as a chunk."""
    target = tmp_path / "sim" / "chunk.h5"
    code = (
        "import numpy as np, sys\n"
        "from dln_kernels.pipeline.io import write_chunk\n"
        "R, T, d = 1000, 20, 20000\n"
        "rng = np.random.default_rng(0)\n"
        "res = {'params': {'alpha': np.ones(R)}, 'time': np.arange(T) * 1.0, 'step': np.arange(T),\n"
        "       'e_train': rng.random((R, T)), 'beta_final': rng.standard_normal((R, d))}\n"
        "print('writing', flush=True)\n"
        f"write_chunk({str(target)!r}, res, {{'config': '{{}}'}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    tmp_name = f".{target.name}.tmp-{proc.pid}"
    tmp = target.with_name(tmp_name)
    try:
        assert proc.stdout.readline().strip() == "writing"
        # Wait until the compressed β (160 MB) is being written, i.e. well after the file opened.
        wait_for(lambda: tmp.exists() and tmp.stat().st_size > 2_000_000, 60, "the write to start")
        assert proc.poll() is None, "the writer finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    assert os.listdir(target.parent) == [tmp_name]  # only the partial file, under a hidden temporary name
    with pytest.raises(ChunkFileError, match=re.escape(tmp_name)):
        read_chunk(tmp)


def test_killed_workflow_reruns_to_identical_results(tmp_path, config_file, reference):
    """SIGKILL Snakemake and its running jobs while a simulation computes; no chunk file that looks
    complete is left, and a rerun (after --unlock) completes with the uninterrupted run's numbers."""
    wd = tmp_path / "killed"
    wd.mkdir()
    log = wd / f"results/faults/logs/simulate/{F1}.log"
    with open(tmp_path / "first.log", "w") as out:
        proc = subprocess.Popen(snakemake(config_file, wd, "--cores", "2", SIMS.format("faults"), "--config", "sweep=faults"),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: started(log, F1), 120, "chunk 1 to start computing")
            time.sleep(0.3)
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the jobs it started
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert "wrote" not in log.read_text(), "chunk 1 finished before the kill; make it longer"
    time.sleep(1.0)  # a surviving job would write its chunk now
    sim = wd / "results/faults/sim"
    assert not (sim / f"{F1}.h5").exists()
    for path in sim.glob("*.h5"):  # chunk 0 may have finished before the kill: then it is whole
        read_chunk(path)
    assert not (wd / SIMS.format("faults")).exists()

    # Snakemake's lock survives a SIGKILL: the rerun says so, --unlock clears it.
    again = snakemake(config_file, wd, "--cores", "2", "--rerun-incomplete", SIMS.format("faults"), "--config", "sweep=faults")
    proc = run(again)
    assert proc.returncode != 0 and "--unlock" in proc.stdout + proc.stderr
    assert run(snakemake(config_file, wd, "--unlock", "--config", "sweep=faults")).returncode == 0
    proc = run(again)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"chunk={F1}" in proc.stdout + proc.stderr
    assert_same(variables(wd / SIMS.format("faults")), variables(reference / SIMS.format("faults")))


# --- diverging runs ---------------------------------------------------------------------------


def test_diverging_chunk_is_reported_and_not_aggregated(tmp_path, config_file):
    wd = tmp_path / "diverging"
    proc = run(snakemake(config_file, wd, "--cores", "2", "--keep-going", SIMS.format("diverging"), "--config", "sweep=diverging"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(rf"Error in rule simulate:.*?{D1}\.h5", out, flags=re.S)
    log = (wd / f"results/diverging/logs/simulate/{D1}.log").read_text()
    # The offending parameters: the chunk (δ and its seeds) and the first diverging run (α, λ, step).
    assert "DivergenceError" in log and "diverged" in log
    assert "delta=0.5, seeds=[4, 5, 6, 7]" in log and "alpha=0.5, weight_decay=0" in log
    sim = wd / "results/diverging/sim"
    assert (sim / f"{D0}.h5").exists() and not (sim / f"{D1}.h5").exists()
    assert not (wd / SIMS.format("diverging")).exists()

    # A chunk with non-finite values that reaches aggregation anyway (here written by hand in the
    # chunk format, e.g. by an older version) is refused there, naming the file.
    from dln_kernels.pipeline.io import write_chunk

    good = read_chunk(sim / f"{D0}.h5")
    bad = {"params": dict(good["params"]), "time": good["time"], "step": good["step"], **good["observables"]}
    bad["params"]["seed"] = bad["params"]["seed"] + 4
    bad["e_train"] = bad["e_train"].copy()
    bad["e_train"][2, -3:] = np.nan
    write_chunk(sim / f"{D1}.h5", bad, {k: v for k, v in good["attrs"].items() if k not in ("schema", "schema_version", "complete")})
    proc = run(snakemake(config_file, wd, "--cores", "2", SIMS.format("diverging"), "--config", "sweep=diverging"))
    assert proc.returncode != 0
    agg_log = (wd / "results/diverging/logs/aggregate.log").read_text()
    assert f"{D1}.h5: observable e_train has non-finite values; the chunk is not data" in agg_log
    assert not (wd / SIMS.format("diverging")).exists()


# --- corrupted chunks -------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "flip_time", "flip_e_train"])
def test_corrupted_chunk_is_named_at_aggregation(tmp_path, reference, config_file, damage):
    """A damaged chunk makes the (re-triggered) aggregation fail with a message naming the file;
    the old aggregate is not left behind looking current."""
    wd = tmp_path / "wd"
    shutil.copytree(reference, wd, symlinks=True)
    chunk = wd / f"results/faults/sim/{F1}.h5"
    with h5py.File(chunk, "r") as f:
        where = {"flip_time": f["time"], "flip_e_train": f["observables/e_train"]}.get(damage)
        info = where.id.get_chunk_info(0) if where is not None else None
    data = bytearray(chunk.read_bytes())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:  # one flipped bit inside the dataset's stored bytes
        data[info.byte_offset + info.size // 2] ^= 0x04
    chunk.write_bytes(bytes(data))
    proc = run(snakemake(config_file, wd, "--cores", "2", SIMS.format("faults"), "--config", "sweep=faults"))
    assert proc.returncode != 0
    assert "rule aggregate:" in proc.stdout + proc.stderr  # the newer chunk re-triggered aggregation
    msg = (wd / "results/faults/logs/aggregate.log").read_text()
    assert f"{chunk.relative_to(wd)}: unreadable or corrupted" in msg
    assert "delete it and rerun" in msg
    assert not (wd / SIMS.format("faults")).exists()


# --- provenance and reruns ---------------------------------------------------------------------


def test_chunk_reruns_exactly_from_its_stored_attributes(reference):
    path = reference / f"results/faults/sim/{F0}.h5"
    stored = read_chunk(path)
    attrs = stored["attrs"]
    for key in ("config", "git_commit", "package_versions", "backend", "dtype", "seeds", "base_seed", "created"):
        assert key in attrs, key
    config = json.loads(attrs["config"])
    assert config["sweep_name"] == "faults"
    again = run_chunk(config["sweep"], config["chunk"], progress_every=None)
    assert again["backend"] == attrs["backend"]
    np.testing.assert_array_equal(again["time"], stored["time"])
    np.testing.assert_array_equal(again["step"], stored["step"])
    for col, values in stored["params"].items():
        assert np.array_equal(again["params"][col], values), col
    for name, values in stored["observables"].items():
        assert np.array_equal(again[name], values), name  # bit for bit


def planned_jobs(config, workdir):
    """[(rule, output, reason)] of a dry run of the faults sweep's simulations."""
    proc = run(snakemake(config, workdir, "-n", SIMS.format("faults"), "--config", "sweep=faults"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    pattern = r"^rule (\w+):\n(?:    .*\n)*?    output: (\S+?)\n(?:    .*\n)*?    reason: (.*)$"
    return sorted(re.findall(pattern, out, flags=re.M)), out


def edited_config(tmp_path):
    """The faults sweep with one grid value edited: δ = 2.0 (chunk 1 only) becomes 2.5."""
    edited = dict(FAULTS, grid=dict(FAULTS["grid"], delta=[0.5, 2.5]))
    return write_config(tmp_path / "edited.yaml", faults=edited, diverging=DIVERGING)


@pytest.fixture(scope="module")
def edited_plan(tmp_path_factory, reference):
    """The dry run of the reference after the grid edit: one Snakemake call, read by the two
    tests below (a dry run changes nothing in the working directory)."""
    return planned_jobs(edited_config(tmp_path_factory.mktemp("edited")), reference)


def test_changed_grid_value_reruns_its_chunk(reference, config_file, edited_plan):
    jobs, out = planned_jobs(config_file, reference)
    assert jobs == [] and "Nothing to be done" in out
    jobs, out = edited_plan
    new = chunk_name(dict(FAULTS, grid=dict(FAULTS["grid"], delta=[0.5, 2.5])), 2.5, 0)
    assert any(job[:2] == ("simulate", f"results/faults/sim/{new}.h5") for job in jobs), out[-3000:]
    assert ("aggregate", "results/faults/simulations.nc") in [j[:2] for j in jobs]


def test_changed_grid_value_reruns_only_affected_chunks(edited_plan):
    jobs, out = edited_plan
    new = chunk_name(dict(FAULTS, grid=dict(FAULTS["grid"], delta=[0.5, 2.5])), 2.5, 0)
    assert [j[:2] for j in jobs] == [
        ("aggregate", "results/faults/simulations.nc"),
        ("simulate", f"results/faults/sim/{new}.h5"),
    ], out[-3000:]


# --- SLURM: a cancelled job ------------------------------------------------------------------


@pytest.mark.slurm
def test_scancelled_job_is_reported_and_rerun(tmp_path, config_file, reference):
    """scancel the SLURM job of a computing chunk: Snakemake reports it as CANCELLED and, with
    the profile's `retries: 1`, resubmits it; the sweep completes with the reference numbers."""
    from test_slurm import SLURM, executed_in, executed_in_slurm_logs, require_slurm

    require_slurm()
    wd = tmp_path / "slurm"
    wd.mkdir()
    chunk_log = wd / f"results/faults/logs/simulate/{F1}.log"
    slurm_logs = wd / ".snakemake/slurm_logs/rule_simulate"

    def job_of_chunk_1():
        """SLURM id of the job (or array task) whose log shows it running chunk 1, if any."""
        for path in sorted(slurm_logs.rglob("*.log")) if slurm_logs.exists() else []:
            if ("simulate", f"results/faults/sim/{F1}.h5") in executed_in(path):
                return path.stem
        return None

    out_path = tmp_path / "snakemake.log"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(snakemake(config_file, wd, *SLURM, SIMS.format("faults"), "--config", "sweep=faults"),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: started(chunk_log, F1) and job_of_chunk_1(), 240, "chunk 1 to compute in a SLURM job")
            job = job_of_chunk_1()
            assert "wrote" not in chunk_log.read_text(), "chunk 1 finished before scancel; make it longer"
            subprocess.run(["scancel", job], check=True, timeout=30)
            proc.wait(timeout=400)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=60)
    output = out_path.read_text()
    assert proc.returncode == 0, output[-4000:]
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in output, output[-4000:]
    assert re.search(r"Trying to restart job \d+", output)  # retries: 1 in profiles/slurm
    runs_of_chunk_1 = [j for j in executed_in_slurm_logs(wd) if j == ("simulate", f"results/faults/sim/{F1}.h5")]
    assert len(runs_of_chunk_1) == 2  # the cancelled job and its resubmission
    assert_same(variables(wd / SIMS.format("faults")), variables(reference / SIMS.format("faults")))


def test_orphaned_job_chunk_is_not_computed_twice(tmp_path, config_file, reference):
    """SIGKILL only Snakemake while chunk 1 computes: the orphaned job finishes and writes its
    chunk, which Snakemake's metadata still calls incomplete. The README's recovery (`--unlock`,
    then `--rerun-incomplete`) reruns the job, which finds the finished chunk in the content-
    addressed cache instead of computing it again; results equal the uninterrupted run's."""
    wd = tmp_path / "orphan"
    wd.mkdir()
    log = wd / f"results/faults/logs/simulate/{F1}.log"
    with open(tmp_path / "first.log", "w") as out:
        proc = subprocess.Popen(snakemake(config_file, wd, "--cores", "2", SIMS.format("faults"), "--config", "sweep=faults"),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: started(log, F1), 120, "chunk 1 to start computing")
            os.kill(proc.pid, signal.SIGKILL)  # Snakemake only: its job lives on as an orphan
            proc.wait(timeout=30)
            wait_for(lambda: "wrote" in log.read_text(), 120, "the orphaned job to finish its chunk")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert (wd / f"results/faults/sim/{F1}.h5").exists()
    assert run(snakemake(config_file, wd, "--unlock", "--config", "sweep=faults")).returncode == 0
    proc = run(snakemake(config_file, wd, "--cores", "2", "--rerun-incomplete", SIMS.format("faults"), "--config", "sweep=faults"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"chunk={F1}" in proc.stdout + proc.stderr  # Snakemake did rerun the incomplete job …
    assert "reused the finished chunk" in log.read_text()  # … which did not compute it again
    assert_same(variables(wd / SIMS.format("faults")), variables(reference / SIMS.format("faults")))
