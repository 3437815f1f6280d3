"""On-disk formats: simulation chunk files (HDF5) and the aggregated Dataset (netCDF4/HDF5).

The layouts are documented in docs/file_formats.md; bump ``SCHEMA_VERSION`` on any change.

Writes are atomic: a file is written under a temporary name in the same folder and renamed into
place only after it was closed successfully, so a killed job never leaves a file that looks
complete. Readers also check the ``complete`` attribute written last. Every chunk dataset carries
a Fletcher-32 checksum, so a corrupted byte is a read error naming the file, not a wrong number.

No HDF5 file locks: every file is opened with h5py's ``locking=False`` (``open_h5``; for xarray
through h5netcdf's pass-through to ``h5py.File``: ``write_netcdf``, ``open_netcdf``). HDF5's own
``flock`` fails on cluster file systems without lock support (NFS: "unable to lock file,
errno = 37"), and the locks guard nothing here: a file appears under its final name only once it
is complete and closed, and is never written again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from dln_kernels.registry import AXES, GRID_AXES, OBSERVABLES, PHASE_PLANES, describe

SCHEMA_VERSION = 2  # 2: static.nc dense axes renamed <axis>_dense
# Format of the chunk files' contents (which observables, their layout). Raise it when chunks of
# the new code cannot be aggregated with older ones; a file without the attribute is format 1.
CHUNK_FORMAT = 1
CHUNK_SCHEMA = "dln-sweep/simulation-chunk"
DMFT_SCHEMA = "dln-sweep/dmft-chunk"
SIM_DIMS = (*GRID_AXES, "seed", "time")  # derived from the registry, by name
PARAM_COLUMNS = (*GRID_AXES, "seed")


# h5py.File option for every HDF5 file of the project (module docstring: why no locks).
NO_LOCKING = {"locking": False}


def open_h5(path, mode: str = "r") -> h5py.File:
    """``h5py.File`` without HDF5 file locking: use it for every HDF5 file of the project."""
    return h5py.File(path, mode, **NO_LOCKING)


class ChunkFileError(RuntimeError):
    """A chunk file that is missing, truncated, corrupted or not a chunk of this sweep."""


def _checksum(data) -> dict:
    """h5py options for a Fletcher-32 checksum (needs a chunked, non-empty dataset)."""
    return {"fletcher32": True} if np.ndim(data) > 0 and np.size(data) > 0 else {}


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


def write_chunk(path, result: dict, attrs: dict, schema: str = CHUNK_SCHEMA) -> None:
    """Write one chunk (simulation runs or theory points) with provenance ``attrs``.

    ``result`` holds ``params`` (dict of (R,) columns), ``time``/``step`` (T,), observables as
    (R, T) or (R,) arrays under their names, and optionally ``beta_final`` (R, d).
    """

    def write(tmp):
        with open_h5(tmp, "w") as f:
            f.attrs["schema"] = schema
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["chunk_format"] = CHUNK_FORMAT
            for k, v in attrs.items():
                f.attrs[k] = v
            runs = f.create_group("runs")
            for col, values in result["params"].items():
                runs.create_dataset(col, data=values, **_checksum(values))
            f.create_dataset("time", data=result["time"], **_checksum(result["time"]))
            f.create_dataset("step", data=result["step"], **_checksum(result["step"]))
            obs = f.create_group("observables")
            for name in result:
                if name not in _NOT_OBSERVABLES:
                    data = np.asarray(result[name])
                    obs.create_dataset(name, data=data, compression="gzip", shuffle=True, **_checksum(data))
            if "beta_final" in result:
                f.create_dataset("beta_final", data=result["beta_final"], compression="gzip", **_checksum(result["beta_final"]))
            f.attrs["complete"] = 1  # last: a reader that sees it knows every dataset is there

    atomic_write(path, write)


_NOT_OBSERVABLES = ("params", "time", "step", "backend", "beta_final")


def read_chunk(path, schema: str = CHUNK_SCHEMA) -> dict:
    """Read a chunk file; raise ChunkFileError naming the file if it is unusable."""
    path = Path(path)
    try:
        with open_h5(path) as f:
            if f.attrs.get("schema") != schema or int(f.attrs.get("complete", 0)) != 1:
                raise ChunkFileError(f"{path}: not a complete {schema} file (schema/complete attributes)")
            out = {
                "params": {c: f["runs"][c][()] for c in f["runs"]},
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
        raise _unreadable(path, schema, exc) from exc


def _unreadable(path, what: str, exc: Exception) -> ChunkFileError:
    return ChunkFileError(
        f"{path}: unreadable or corrupted {what} file ({type(exc).__name__}: {exc}); "
        "delete it and rerun the workflow to recompute it"
    )


def grid_coords(sweep: dict, with_seed: bool = True) -> dict:
    """Coordinate values of a sweep: sorted grid values (and seed indices)."""
    # an axis the sweep does not list has its registry default (e.g. depth [2])
    coords = {a: np.sort(np.asarray(sweep["grid"].get(a, AXES[a].default),
                                    dtype=np.int64 if AXES[a].kind == "integer" else float))
              for a in GRID_AXES}
    if with_seed:
        from dln_kernels.model.designs import design_names, is_default

        if not is_default(sweep.get("design")):  # a sweep over designs: one more dim, by name
            coords["design"] = np.array(design_names(sweep), dtype=str)
        coords["seed"] = np.arange(int(sweep["seeds"]))
    return coords


_RECOMPUTE = ("recompute them: delete the files named (or run `snakemake --forcerun simulate dmft`) and rerun "
              "the workflow")


def check_same_contents(chunks) -> None:
    """ChunkFileError unless every chunk of ``chunks`` [(path, read_chunk result)] has the same
    chunk format (``CHUNK_FORMAT``) and the same observables; the message names the files."""
    version = lambda ch: int(ch["attrs"].get("chunk_format", 1))  # noqa: E731
    (p0, c0), v0, n0 = chunks[0], version(chunks[0][1]), set(chunks[0][1]["observables"])
    for path, ch in chunks[1:]:
        if version(ch) != v0:
            raise ChunkFileError(f"{path} has chunk format {version(ch)} but {p0} has format {v0} (written by "
                                 f"another version of the code); {_RECOMPUTE}")
        names = set(ch["observables"])
        if names != n0:
            raise ChunkFileError(
                f"{path} and {p0} hold different observables (only in the first: {sorted(names - n0)}; only in "
                f"the second: {sorted(n0 - names)}), e.g. chunks written before and after an observable was "
                f"added; {_RECOMPUTE}")


def _chunk_design(ch: dict):
    """Name of the design a simulation chunk ran on (from its provenance), None for the default."""
    design = json.loads(ch["attrs"].get("config", "{}")).get("chunk", {}).get("design")
    return None if design is None else design["name"]


def aggregate_chunks(paths, sweep: dict, attrs: dict, schema: str = CHUNK_SCHEMA, with_seed: bool = True):
    """Combine chunk files into an xarray Dataset on dims (grid axes[, design][, seed], time).

    ``design`` (labels: the design names) only for a sweep over designs other than the default.

    Coordinates are the sweep's grid values (sorted) and seed indices; every cell must be
    filled by exactly one run, else ChunkFileError says which file or which cell is missing.
    Observables stored per run without a time axis become variables without ``time``.
    """
    import xarray as xr

    coords = grid_coords(sweep, with_seed)
    axes = list(coords)
    chunks = [(p, read_chunk(p, schema)) for p in paths]
    if not chunks:
        raise ChunkFileError("no chunks to aggregate")
    check_same_contents(chunks)
    time, step = chunks[0][1]["time"], chunks[0][1]["step"]
    # per-point steps (schedule.py): a time row per run; the files get the dim ``step`` and a
    # ``time`` coordinate over the grid axes (not the seed: a point's steps do not depend on it)
    per_point = np.ndim(time) == 2
    rec = "step" if per_point else "time"
    grid_axes = [a for a in axes if a != "seed"]
    point_time = np.full(tuple(len(coords[a]) for a in grid_axes) + (len(step),), np.nan) if per_point else None
    first = chunks[0][1]["observables"]
    shape = tuple(len(coords[a]) for a in axes)
    # observables keep their stored float type (a float32 sweep aggregates to float32)
    data = {n: np.full(shape + first[n].shape[1:], np.nan, dtype=_float_type(first[n])) for n in first}
    filled = np.zeros(shape, dtype=np.int64)
    for path, ch in chunks:
        if per_point:
            if np.ndim(ch["time"]) != 2 or not np.array_equal(ch["step"], step):
                raise ChunkFileError(f"{path}: step grid differs from {chunks[0][0]}; rerun the sweep")
        elif not np.array_equal(ch["time"], time):
            raise ChunkFileError(f"{path}: time grid differs from {chunks[0][0]}; rerun the sweep")
        idx = []
        for a in axes:
            if a == "design":  # a label, not a number: the chunk's design by name
                name = _chunk_design(ch)
                if name not in coords[a]:
                    raise ChunkFileError(f"{path}: design {name!r} is not one of this sweep's designs {list(coords[a])}")
                idx.append(np.full(len(next(iter(ch["params"].values()))), list(coords[a]).index(name)))
                continue
            if a not in ch["params"] and len(coords[a]) == 1:  # a chunk written before the axis existed
                vals = np.full(len(next(iter(ch["params"].values()))), float(coords[a][0]))
            else:
                vals = np.asarray(ch["params"][a], dtype=float)
            pos = np.clip(np.searchsorted(coords[a], vals), 0, len(coords[a]) - 1)
            if not np.all(coords[a][pos] == vals):
                raise ChunkFileError(f"{path}: {a} values {np.unique(vals[coords[a][pos] != vals])} are not on this sweep's grid")
            idx.append(pos)
        idx = tuple(idx)
        if per_point:
            gidx = tuple(i for a, i in zip(axes, idx) if a != "seed")
            prev = point_time[gidx]
            if np.any(np.isfinite(prev) & (prev != ch["time"])):
                raise ChunkFileError(f"{path}: a point's times differ between its runs; rerun the sweep")
            point_time[gidx] = ch["time"]
        np.add.at(filled, idx, 1)
        for n in data:
            obs = np.asarray(ch["observables"][n])
            if n not in _MAY_BE_NAN and not np.all(np.isfinite(obs)):
                raise ChunkFileError(f"{path}: observable {n} has non-finite values; the chunk is not data")
            data[n][idx] = obs
    if np.any(filled != 1):
        bad = np.argwhere(filled != 1)[0]
        cell = {a: coords[a][i].item() for a, i in zip(axes, bad)}
        raise ChunkFileError(f"grid cell {cell} was computed {filled[tuple(bad)]} times (expected once)")
    variables = {}
    for n, arr in data.items():
        dims = tuple(axes) + ((rec,) if arr.ndim > len(axes) and arr.shape[len(axes)] == len(step) else ())
        dims = dims + tuple(f"{n}_dim{i}" for i in range(arr.ndim - len(dims)))
        variables[n] = (dims, arr.astype(bool) if n in _BOOLEAN else arr)
    if per_point:
        time_coords = {"step": step, "time": (tuple(grid_axes) + ("step",), point_time)}
    else:
        time_coords = {"time": time, "step": ("time", step)}
    ds = xr.Dataset(variables, coords={**coords, **time_coords}, attrs=attrs)
    _describe(ds)
    return ds


def _float_type(a) -> type:
    """float32 for float32 data, float64 for everything else (int and bool columns included)."""
    return np.float32 if np.asarray(a).dtype == np.float32 else np.float64


# From the registry: observables that are legitimately NaN (e.g. no late-time window to fit; the
# DMFT's decay window is not stored in chunks but may be) and boolean masks.
_MAY_BE_NAN = tuple(o.name for o in OBSERVABLES.values() if o.may_be_nan) + ("decay_window",)
_BOOLEAN = tuple(o.name for o in OBSERVABLES.values() if o.boolean)


def _describe(ds) -> None:
    """``long_name`` and ``units`` of every variable and coordinate the registry knows."""
    for name in ds.variables:
        if (desc := describe(name)) is not None:
            ds[name].attrs.update(long_name=desc[0], units=desc[1])


def write_netcdf(ds, path, groups: dict | None = None) -> None:
    """Atomic netCDF4-compatible HDF5 write through the h5netcdf engine, without file locking.

    ``ds`` is the root group; ``groups`` maps child-group names to further Datasets. The store is
    opened by hand because ``Dataset.to_netcdf`` has no way to pass ``locking=False`` to h5py.
    """
    from xarray.backends import H5NetCDFStore

    def write(tmp):
        for i, (group, data) in enumerate({None: ds, **(groups or {})}.items()):
            store = H5NetCDFStore.open(tmp, mode="w" if i == 0 else "a", group=group,
                                       invalid_netcdf=False, driver_kwds=NO_LOCKING)
            try:
                data.dump_to_store(store)
            finally:
                store.close()

    atomic_write(path, write)


def open_netcdf(path, **kwargs):
    """``xr.open_dataset(path, engine="h5netcdf", **kwargs)`` without file locking."""
    import xarray as xr

    return xr.open_dataset(path, engine="h5netcdf", driver_kwds=NO_LOCKING, **kwargs)


# static.nc: the sweep's own grid in the root group, the dense grids in child groups. A dense axis
# gets its own dimension name (``alpha_dense``...): a child group that redefined a root dimension
# with another length could not be opened as one tree (``xr.open_datatree``), since a DataTree's
# children inherit the root's coordinates.
STATIC_DENSE_AXES = PHASE_PLANES  # the dense grids of static.nc, by group name


def static_dataset(grid: str, coords: dict, result: dict, attrs: dict):
    """Dataset of the long-time theory ``result`` (``sweep.static_on_grid``) on grid ``grid``
    (a key of ``sweep.static_grids``) as stored in static.nc: dense axes are named ``<axis>_dense``."""
    import xarray as xr

    axes = GRID_AXES
    dims = tuple(f"{a}_dense" if a in STATIC_DENSE_AXES.get(grid, ()) else a for a in axes)
    ds = xr.Dataset({k: (dims, v) for k, v in result.items()},
                    coords={d: np.asarray(coords[a], float) for d, a in zip(dims, axes)},
                    attrs={**attrs, "schema_version": SCHEMA_VERSION})
    _describe(ds)
    for d, a in zip(dims, axes):
        if d != a:
            ds[d].attrs.update(long_name=f"{describe(a)[0]}, dense axis (holds the sweep's values too)", units="1")
    return ds


def chunk_attrs_summary(paths) -> str:
    """JSON list of (file name, git commit, backend, created) of the chunks behind an aggregate."""
    rows = []
    for p in paths:
        try:
            with open_h5(p) as f:
                rows.append([Path(p).name, str(f.attrs.get("git_commit", "unknown")), str(f.attrs.get("backend", "")), str(f.attrs.get("created", ""))])
        except OSError as exc:  # truncated or corrupted: name the file (read_chunk says the same)
            raise _unreadable(p, "chunk", exc) from exc
    return json.dumps(rows)

