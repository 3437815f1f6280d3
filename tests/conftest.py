import copy
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _slurm_controller_down():
    """True where SLURM's client tools and the Snakemake SLURM plugin are installed but no
    controller answers (e.g. after ci/slurm/stop_cluster.sh).

    There the plugin, imported by every Snakemake start whatever the executor, runs
    `scontrol show config` (plugin 2.8, ``get_min_job_age``), which waits ~9 s for the absent
    controller before failing: +9 s on every `snakemake` command and every job the tests start,
    more than half of the default suite's wall time. `scontrol ping` answers at once.
    """
    if shutil.which("scontrol") is None or find_spec("snakemake_executor_plugin_slurm") is None:
        return False
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False  # not known to be down: leave everything as it is
    # Down for sure: a failed ping and no controller (primary or backup) reported UP.
    return proc.returncode != 0 and " is UP" not in proc.stdout


def pytest_configure(config):
    """Where no SLURM controller answers, put an `scontrol` that fails at once in front of PATH
    for this session (and the Snakemake processes it starts). The plugin then gets the same
    answer as from the real `scontrol` (a failure: MinJobAge unknown) without the wait. No test
    can use SLURM without a controller (test_slurm.py skips, or fails under DLN_REQUIRE_SLURM=1,
    on `sinfo`, which is left alone), so no outcome changes; with a controller up nothing is done.
    """
    if not _slurm_controller_down():
        return
    stub_dir = tempfile.mkdtemp(prefix="dln-test-scontrol-")
    stub = Path(stub_dir) / "scontrol"
    stub.write_text("#!/bin/sh\necho 'scontrol (test stub): no SLURM controller answers' >&2\nexit 1\n")
    stub.chmod(0o755)
    config._dln_scontrol_stub = (stub_dir, os.environ.get("PATH", ""))
    os.environ["PATH"] = stub_dir + os.pathsep + os.environ.get("PATH", "")


def pytest_unconfigure(config):
    stub = getattr(config, "_dln_scontrol_stub", None)
    if stub is not None:
        os.environ["PATH"] = stub[1]
        shutil.rmtree(stub[0], ignore_errors=True)


@pytest.fixture
def base_config():
    """The shipped config.yaml, as a fresh dict."""
    with open(REPO / "config.yaml") as f:
        return copy.deepcopy(yaml.safe_load(f))


def resolved(config):
    """Validate as the Snakefile does (Snakemake's JSON-schema validation, defaults filled and
    unshared between sweeps, plus the project's type checks) and return it."""
    from dln_kernels.pipeline.config import validate_config

    validate_config(config, SCHEMA)
    return config


def _kernel_backends():
    """Array backends the kernel tests run on: NumPy, the strict array-API namespace (catches any
    NumPy-only call or implicit host conversion in code CuPy will run), and CuPy where a GPU is
    visible. ``DLN_TEST_BACKENDS=numpy,cupy`` (comma-separated) overrides the list."""
    import os

    from dln_kernels.backend import _cupy_or_none

    chosen = os.environ.get("DLN_TEST_BACKENDS")
    if chosen:
        return [b.strip() for b in chosen.split(",") if b.strip()]
    out = ["numpy", "array_api_strict"]
    if _cupy_or_none() is not None:
        out.append("cupy")
    return out


@pytest.fixture(params=_kernel_backends())
def backend(request):
    """Name of an array backend for ``simulate_grid``/``solve_dmft``/``get_namespace``."""
    return request.param


# ---- one finished run of the `tiny` sweep, shared by the workflow tests ----------------------

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A working directory holding a finished run of the `tiny` sweep (simulations, DMFT, static
    theory, figures, logs, benchmarks and Snakemake's metadata in `.snakemake/`), made once per
    session by the real workflow (`snakemake -s <checkout>/Snakefile -d <tmp> --cores 2`).

    Shared: never write into it; take a copy with :func:`copy_run`.
    """
    wd = tmp_path_factory.mktemp("tiny_run")
    proc = subprocess.run([*SNAKEMAKE, "-d", str(wd), "--cores", "2", "--config", "sweep=tiny"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wd


def copy_run(src, dest):
    """Copy a finished working directory as `cp -a` does: file times kept (Snakemake compares
    them) and `.snakemake/` (its record of each output's code, params and inputs) along, so a
    dry run of the copy schedules exactly what one of the original would."""
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    return dest


def copy_checkout(dest):
    """The tracked files of the checkout (what a user clones or copies), without results."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f)
    return dest
