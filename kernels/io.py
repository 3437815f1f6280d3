"""On-disk formats: simulation chunk files (HDF5) and the aggregated Dataset (netCDF4/HDF5).

The layouts are documented in docs/file_formats.md; bump ``SCHEMA_VERSION`` on any change.

Writes are atomic: a file is written under a temporary name in the same folder and renamed into
place only after it was closed successfully, so a killed job never leaves a file that looks
complete. Readers also check the ``complete`` attribute written last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

SCHEMA_VERSION = 1
CHUNK_SCHEMA = "dln-sweep/simulation-chunk"
SIM_DIMS = ("alpha", "delta", "rho", "sigma", "weight_decay", "seed", "time")
PARAM_COLUMNS = ("alpha", "delta", "rho", "sigma", "weight_decay", "seed")


class ChunkFileError(RuntimeError):
    """A chunk file that is missing, truncated, corrupted or not a chunk of this sweep."""


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path, write) -> None:
    """Call ``write(tmp_path)``, then rename to ``path``; remove the temporary on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_chunk(path, result: dict, attrs: dict) -> None:
    """Write one simulation chunk (output of ``sweep.run_chunk``) with provenance ``attrs``."""

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["schema"] = CHUNK_SCHEMA
            f.attrs["schema_version"] = SCHEMA_VERSION
            for k, v in attrs.items():
                f.attrs[k] = v
            runs = f.create_group("runs")
            for col in PARAM_COLUMNS:
                runs.create_dataset(col, data=result["params"][col])
            f.create_dataset("time", data=result["time"])
            f.create_dataset("step", data=result["step"])
            obs = f.create_group("observables")
            for name in ("e_train", "e_test", "l1_norm", "conservation_drift"):
                if name in result:
                    obs.create_dataset(name, data=result[name], compression="gzip", shuffle=True)
            if "beta_final" in result:
                f.create_dataset("beta_final", data=result["beta_final"], compression="gzip")
            f.attrs["complete"] = 1  # last: a reader that sees it knows every dataset is there

    atomic_write(path, write)


def read_chunk(path) -> dict:
    """Read a chunk file; raise ChunkFileError naming the file if it is unusable."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("schema") != CHUNK_SCHEMA or int(f.attrs.get("complete", 0)) != 1:
                raise ChunkFileError(f"{path}: not a complete simulation chunk (schema/complete attributes)")
            out = {
                "params": {c: f["runs"][c][()] for c in PARAM_COLUMNS},
                "time": f["time"][()],
                "step": f["step"][()],
                "observables": {k: f["observables"][k][()] for k in f["observables"]},
                "attrs": dict(f.attrs),
            }
            if "beta_final" in f:
                out["beta_final"] = f["beta_final"][()]
            return out
    except ChunkFileError:
        raise
    except Exception as exc:  # OSError from HDF5 for truncated/corrupt files, KeyError for missing parts
        raise ChunkFileError(f"{path}: unreadable or corrupted simulation chunk ({type(exc).__name__}: {exc})") from exc


def aggregate_chunks(paths, sweep: dict, attrs: dict):
    """Combine chunk files into an xarray Dataset on dims ``SIM_DIMS``.

    Coordinates are the sweep's grid values (sorted) and seed indices; every cell must be
    filled by exactly one run, else ChunkFileError says which file or which cell is missing.
    """
    import xarray as xr

    grid = sweep["grid"]
    coords = {a: np.sort(np.asarray(grid[a], dtype=float)) for a in SIM_DIMS[:5]}
    coords["seed"] = np.arange(int(sweep["seeds"]))
    chunks = [(p, read_chunk(p)) for p in paths]
    if not chunks:
        raise ChunkFileError("no simulation chunks to aggregate")
    time, step = chunks[0][1]["time"], chunks[0][1]["step"]
    names = list(chunks[0][1]["observables"])
    shape = tuple(len(coords[a]) for a in SIM_DIMS[:6]) + (len(time),)
    data = {n: np.full(shape, np.nan) for n in names}
    filled = np.zeros(shape[:-1], dtype=np.int64)
    for path, ch in chunks:
        if not np.array_equal(ch["time"], time):
            raise ChunkFileError(f"{path}: time grid differs from {chunks[0][0]}; rerun the sweep")
        idx = []
        for a in SIM_DIMS[:6]:
            vals = np.asarray(ch["params"][a], dtype=float)
            pos = np.searchsorted(coords[a], vals)
            pos = np.clip(pos, 0, len(coords[a]) - 1)
            if not np.all(coords[a][pos] == vals):
                raise ChunkFileError(f"{path}: {a} values {np.unique(vals[coords[a][pos] != vals])} are not on this sweep's grid")
            idx.append(pos)
        idx = tuple(idx)
        np.add.at(filled, idx, 1)
        for n in names:
            obs = ch["observables"][n]
            if not np.all(np.isfinite(obs)):
                raise ChunkFileError(f"{path}: observable {n} has non-finite values; the chunk is not data")
            data[n][idx] = obs
    if np.any(filled != 1):
        bad = np.argwhere(filled != 1)[0]
        cell = {a: coords[a][i].item() for a, i in zip(SIM_DIMS[:6], bad)}
        raise ChunkFileError(f"grid cell {cell} was simulated {filled[tuple(bad)]} times (expected once)")
    ds = xr.Dataset(
        {n: (SIM_DIMS, data[n]) for n in names},
        coords={**coords, "time": time, "step": ("time", step)},
        attrs=attrs,
    )
    _describe(ds)
    return ds


_DESCRIPTIONS = {
    "e_train": ("training error ||y - X beta||^2 / (2n)", "1"),
    "e_test": ("test (excess) error ||beta - beta*||^2 / (2d)", "1"),
    "l1_norm": ("||beta||_1 / d", "1"),
    "conservation_drift": ("mean_i |u_i^2 - v_i^2 - alpha^2| / alpha^2", "1"),
    "alpha": ("initialisation scale (u0 = alpha, v0 = 0)", "1"),
    "delta": ("sample ratio n/d", "1"),
    "rho": ("teacher sparsity (fraction of nonzero coordinates)", "1"),
    "sigma": ("label-noise standard deviation", "1"),
    "weight_decay": ("weight decay lambda", "1"),
    "seed": ("seed index of the problem instance (X, beta*, xi)", "1"),
    "time": ("time t_k = k dt", "1"),
    "step": ("gradient step index k", "1"),
}


def _describe(ds) -> None:
    for name, (long_name, units) in _DESCRIPTIONS.items():
        if name in ds.variables:
            ds[name].attrs.update(long_name=long_name, units=units)


def write_netcdf(ds, path) -> None:
    """Atomic netCDF4-compatible HDF5 write through the h5netcdf engine."""
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=False))


def chunk_attrs_summary(paths) -> str:
    """JSON list of (file name, git commit, backend, created) of the chunks behind an aggregate."""
    rows = []
    for p in paths:
        with h5py.File(p, "r") as f:
            rows.append([Path(p).name, str(f.attrs.get("git_commit", "unknown")), str(f.attrs.get("backend", "")), str(f.attrs.get("created", ""))])
    return json.dumps(rows)
