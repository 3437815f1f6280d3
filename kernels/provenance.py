"""Provenance recorded in every output file: how, from what and with what it was made."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import platform
import subprocess
from pathlib import Path

from . import __version__

_PACKAGES = ("numpy", "scipy", "h5py", "h5netcdf", "xarray", "snakemake", "cupy-cuda12x", "cupy")


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "dln-sweep": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = _md.version(name)
        except _md.PackageNotFoundError:
            pass
    return versions


def git_commit(path: str | Path | None = None) -> str:
    """HEAD of the checkout holding this package (with '-dirty' if modified), else 'unknown'."""
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


def provenance(config: dict, *, backend: str, dtype: str, seeds, base_seed: int, repo=None) -> dict:
    """Flat attributes (str / int) for an HDF5 or netCDF file; ``repo``: checkout to read the commit of."""
    return {
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
