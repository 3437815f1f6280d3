"""Provenance recorded in every output file: how, from what and with what it was made."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import subprocess
from pathlib import Path

from dln_kernels import __version__

_PACKAGES = ("numpy", "scipy", "numba", "h5py", "h5netcdf", "xarray", "snakemake", "cupy-cuda12x", "cupy")


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "dln-sweep": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = _md.version(name)
        except _md.PackageNotFoundError:
            pass
    return versions


def git_commit(path: str | Path | None = None) -> str:
    """HEAD of the checkout at ``path`` (default: ``$DLN_SWEEP_REPO``, set by the workflow, else the
    checkout holding this package), with '-dirty' if modified; 'unknown' outside a checkout."""
    path = path or os.environ.get("DLN_SWEEP_REPO")
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not commit:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def fixed_threads(threads: int):
    """Run the block with every BLAS/OpenMP thread pool at exactly ``threads`` threads.

    The thread count is part of a result: BLAS splits its sums by thread, so the same job with 1
    and 2 threads differs in the last bits. Jobs therefore run with the sweep's ``threads``
    whatever number of cores Snakemake grants them (``--cores 1`` slows a ``threads: 2`` job, it
    does not change its bits). Yields ``{"threads": n, "threadpools": JSON}`` with the counts
    threadpoolctl reports inside the block (what the kernel actually ran with), for provenance.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=int(threads)):
        pools = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version")} for p in threadpool_info()]
        blas = [p["num_threads"] for p in pools if p["user_api"] == "blas"]
        yield {"threads": int(max(blas) if blas else threads), "threadpools": json.dumps(pools, sort_keys=True)}


def provenance(config: dict, *, backend: str, dtype: str, seeds, base_seed: int, repo=None, threads=None) -> dict:
    """Flat attributes (str / int) for an HDF5 or netCDF file; ``repo``: checkout to read the commit
    of (default: see :func:`git_commit`); ``threads``: the dict :func:`fixed_threads` yielded."""
    extra = {} if threads is None else {"threads": int(threads["threads"]), "threadpools": threads["threadpools"]}
    return {
        **extra,
        "config": json.dumps(config, sort_keys=True),
        "seeds": json.dumps([int(s) for s in seeds]),
        "base_seed": int(base_seed),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "git_commit": git_commit(repo),
        "backend": backend,
        "dtype": dtype,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host_platform": platform.platform(),
    }
