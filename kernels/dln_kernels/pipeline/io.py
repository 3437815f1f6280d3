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

Aggregation streams: its memory is the output's plus one chunk's, whatever the number of chunks
(``aggregate_chunks``); ``aggregate_to_netcdf`` writes it atomically and, where the previous output
allows, reads only the chunks added since (``chunk_digests``).
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
    """Coordinate values of a sweep: sorted grid values, for a sweep over designs the ``design``
    labels (the design names; without seeds, i.e. the DMFT, the names and ``isotropic``:
    ``chunks.dmft_design_labels``, unless ``dmft.spectra`` is false), and seed indices (``with_seed``)."""
    from dln_kernels.model.designs import design_names, is_default
    from dln_kernels.pipeline.chunks import dmft_design_labels, spectra

    # an axis the sweep does not list has its registry default (e.g. depth [2])
    coords = {a: np.sort(np.asarray(sweep["grid"].get(a, AXES[a].default),
                                    dtype=np.int64 if AXES[a].kind == "integer" else float))
              for a in GRID_AXES}
    if with_seed and not is_default(sweep.get("design")):  # a sweep over designs: one more dim, by name
        coords["design"] = np.array(design_names(sweep), dtype=str)
    elif not with_seed and spectra(sweep):  # its DMFT: one solve per spectrum, and the isotropic one
        coords["design"] = np.array(dmft_design_labels(sweep), dtype=str)
    if with_seed:
        coords["seed"] = np.arange(int(sweep["seeds"]))
    return coords


_RECOMPUTE = ("recompute them: delete the files named (or run `snakemake --forcerun simulate dmft`) and rerun "
              "the workflow")


def check_same_contents(chunks) -> None:
    """ChunkFileError unless every chunk of ``chunks`` [(path, read_chunk result)] has the same
    chunk format (``CHUNK_FORMAT``) and the same observables; the message names the files."""
    version = lambda ch: int(ch["attrs"].get("chunk_format", 1))  # noqa: E731
    (p0, _), v0, n0 = chunks[0], version(chunks[0][1]), set(chunks[0][1]["observables"])
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


# ---- aggregation: chunk files -> one Dataset, streamed ------------------------------------------
#
# Memory is bounded by the output, not by the number of chunks. A first pass opens each chunk for
# its metadata only (attributes, parameter columns, time grid, the observables' shapes and types:
# ``_chunk_meta``) and keeps of it the flat cell index of its runs and its summary row; the cell
# counts are checked (each cell computed exactly once) before any data is read; the output arrays
# are then allocated once, and a second pass reads each chunk's observables into their cells, one
# chunk at a time (``_Aggregate``). ``aggregate_to_netcdf`` writes the result atomically and
# records the chunks it was made from, so that the next aggregation reads only the new chunks.


def _chunk_meta(path, schema: str, config: bool = False) -> dict:
    """What the first pass needs of a chunk, without its data (ChunkFileError naming the file if
    it is unusable): ``attrs`` (``chunk_format``, and ``config`` if asked), ``summary`` (its row of
    :func:`chunk_attrs_summary`), ``params``, ``time`` (None for per-point time rows, read with the
    data), ``time_ndim``, ``step`` and ``observables`` {name: (shape, dtype)}."""
    path = Path(path)
    try:
        with open_h5(path) as f:
            a = f.attrs
            if a.get("schema") != schema or int(a.get("complete", 0)) != 1:
                raise ChunkFileError(f"{path}: not a complete {schema} file (schema/complete attributes)")
            # h5py's low-level calls for the datasets: a chunk's metadata is a dozen small objects,
            # and the high-level ones cost ~0.1 ms each (this pass opens every chunk of the sweep)
            runs, obs = h5py.h5g.open(f.id, b"runs"), h5py.h5g.open(f.id, b"observables")
            time = h5py.h5d.open(f.id, b"time")
            return {
                "attrs": {k: a[k] for k in ("chunk_format", "config")[:2 if config else 1] if k in a},
                "summary": [path.name, str(a.get("git_commit", "unknown")), str(a.get("backend", "")),
                            str(a.get("created", ""))],
                "params": {c.decode(): _read_all(h5py.h5d.open(runs, c)) for c in _members(runs)},
                "time": _read_all(time) if len(time.shape) < 2 else None,
                "time_ndim": len(time.shape),
                "step": _read_all(h5py.h5d.open(f.id, b"step")),
                "observables": {k.decode(): (d.shape, d.dtype)
                                for k in _members(obs) for d in [h5py.h5d.open(obs, k)]},
            }
    except ChunkFileError:
        raise
    except Exception as exc:  # OSError from HDF5 for truncated/corrupt files, KeyError for missing parts
        raise _unreadable(path, schema, exc) from exc


def _members(gid) -> list:
    """Names (bytes) of a low-level group's members, in the order h5py's ``Group`` lists them."""
    return list(gid)


def _read_all(dset) -> np.ndarray:
    """A whole low-level dataset as an array (``Dataset[()]`` for the numeric ones of a chunk)."""
    out = np.empty(dset.shape, dset.dtype)
    if out.size:
        dset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def _read(f, name: str, path, schema: str) -> np.ndarray:
    try:
        return _read_all(h5py.h5d.open(f.id, name.encode()))
    except Exception as exc:  # a Fletcher-32 mismatch or a truncated dataset: name the file
        raise _unreadable(path, schema, exc) from exc


def _repeat(arr: np.ndarray, reps: int) -> np.ndarray:
    """A chunk's rows ``reps`` times along axis 0 (the labels it fills, :meth:`_Aggregate._cells`);
    the array itself for ``reps`` = 1."""
    return arr if reps == 1 else np.concatenate([arr] * reps)


class _Incompatible(Exception):
    """The previous output cannot be extended with these chunks: aggregate them all."""


class _Aggregate:
    """One output under construction: the sweep's grid, per-cell counts, then the arrays."""

    def __init__(self, sweep: dict, schema: str, with_seed: bool):
        self.sweep = sweep
        self.coords = grid_coords(sweep, with_seed)
        self.axes = list(self.coords)
        self.grid_axes = [a for a in self.axes if a != "seed"]
        self.shape = tuple(len(self.coords[a]) for a in self.axes)
        self.schema = schema
        self.filled = np.zeros(self.shape, dtype=np.int64)
        self.first = None  # (path, metadata) every other chunk is compared with
        self.rows = []  # per chunk read: (path, flat cell index of its runs, the same on the grid axes, repetitions)
        self.summary = []  # per chunk read: its chunk_attrs_summary row
        self.data = self.point_time = None
        self.n_reused = 0  # chunks whose cells came from a previous output

    # -- first pass: metadata ----------------------------------------------------------------------

    def start(self, path, kind: dict) -> None:
        """Take the contents every chunk must have (``kind``: time, step, per-point, observables
        {name: (trailing shape, output dtype)}, chunk format) from ``path``."""
        self.first_path, self.kind = path, kind
        self.per_point = kind["per_point"]
        self.time, self.step = kind["time"], kind["step"]

    @staticmethod
    def kind_of(meta: dict) -> dict:
        """The contents of a chunk that all must share. Observables keep their stored float type (a
        float32 sweep aggregates to float32); everything else (int and bool columns) becomes float64."""
        return {"per_point": meta["time_ndim"] == 2, "time": meta["time"], "step": meta["step"],
                "chunk_format": int(meta["attrs"].get("chunk_format", 1)),
                "observables": {n: (tuple(s[1:]), np.dtype(np.float32 if d == np.float32 else np.float64))
                                for n, (s, d) in meta["observables"].items()}}

    def index(self, paths, strict: dict | None = None) -> None:
        """First pass over ``paths``: check each chunk's contents and place its runs on the grid.
        ``strict``: the contents of a previous output, which every chunk must match exactly
        (_Incompatible otherwise)."""
        for path in paths:
            meta = _chunk_meta(path, self.schema, config="design" in self.axes)
            if self.first is None:
                if strict is not None and _comparable(self.kind_of(meta)) != _comparable(strict):
                    raise _Incompatible(f"{path} differs from the chunks of the previous output")
                self.first = (path, meta)
                if strict is None:
                    self.start(path, self.kind_of(meta))
            else:
                check_same_contents([self.first, (path, meta)])
            if self.per_point:
                if meta["time_ndim"] != 2 or not np.array_equal(meta["step"], self.step):
                    raise ChunkFileError(f"{path}: step grid differs from {self.first_path}; rerun the sweep")
            elif not np.array_equal(meta["time"], self.time):
                raise ChunkFileError(f"{path}: time grid differs from {self.first_path}; rerun the sweep")
            idx, reps = self._cells(path, meta)
            flat = np.ravel_multi_index(idx, self.shape)
            gflat = None
            if self.per_point:
                gflat = np.ravel_multi_index(tuple(i for a, i in zip(self.axes, idx) if a != "seed"),
                                             tuple(len(self.coords[a]) for a in self.grid_axes))
            np.add.at(self.filled.reshape(-1), flat, 1)
            self.rows.append((path, flat, gflat, reps))
            self.summary.append(meta["summary"])

    def _labels(self, path, ch: dict) -> list:
        """Positions on the ``design`` axis of the labels a chunk fills: its design's (simulations);
        for the DMFT those of ``chunks.dmft_chunk_labels`` (an isotropic chunk also fills every
        design with a flat spectrum). ChunkFileError for a design that is not the sweep's."""
        name, labels = _chunk_design(ch), list(self.coords["design"])
        if self.schema == DMFT_SCHEMA:
            from dln_kernels.pipeline.chunks import dmft_chunk_labels

            wanted = dmft_chunk_labels(self.sweep, name)
        else:
            wanted = [name]
        missing = [w for w in wanted if w not in labels]
        if missing:
            raise ChunkFileError(f"{path}: design {missing[0]!r} is not one of this sweep's designs {labels}")
        return [labels.index(w) for w in wanted]

    def _cells(self, path, ch: dict) -> tuple:
        """(index of each of the chunk's runs along each axis, repetitions k): a DMFT chunk whose
        values fill k design labels has its runs k times, label-major; ChunkFileError for a value
        off the grid."""
        coords, idx = self.coords, []
        n = len(next(iter(ch["params"].values())))
        labels = self._labels(path, ch) if "design" in self.axes else [0]
        for a in self.axes:
            if a == "design":  # a label, not a number: the chunk's design by name
                idx.append(np.repeat(np.asarray(labels, dtype=np.intp), n))
                continue
            if a not in ch["params"] and len(coords[a]) == 1:  # a chunk written before the axis existed
                vals = np.full(n, float(coords[a][0]))
            else:
                vals = np.asarray(ch["params"][a], dtype=float)
            pos = np.clip(np.searchsorted(coords[a], vals), 0, len(coords[a]) - 1)
            if not np.all(coords[a][pos] == vals):
                raise ChunkFileError(f"{path}: {a} values {np.unique(vals[coords[a][pos] != vals])} are not on this sweep's grid")
            idx.append(np.tile(pos, len(labels)))
        return tuple(idx), len(labels)

    def check_filled(self) -> None:
        """ChunkFileError unless every cell is computed exactly once (never an output with holes)."""
        bad = self.filled != 1
        if np.any(bad):
            cell = np.unravel_index(int(np.argmax(bad)), self.shape)  # the first in C order
            at = {a: self.coords[a][i].item() for a, i in zip(self.axes, cell)}
            raise ChunkFileError(f"grid cell {at} was computed {self.filled[cell]} times (expected once)")

    # -- second pass: data -------------------------------------------------------------------------

    def allocate(self) -> None:
        """The output arrays, once: NaN until a chunk (or the previous output) fills a cell."""
        self.data = {n: np.full(self.shape + trail, np.nan, dtype=dtype)
                     for n, (trail, dtype) in self.kind["observables"].items()}
        if self.per_point:
            gshape = tuple(len(self.coords[a]) for a in self.grid_axes)
            self.point_time = np.full(gshape + (len(self.step),), np.nan)

    def fill(self) -> None:
        """Second pass: read each chunk's data into its cells, one chunk at a time."""
        for path, flat, gflat, reps in self.rows:
            try:
                f = open_h5(path)
            except Exception as exc:
                raise _unreadable(path, self.schema, exc) from exc
            with f:
                if self.per_point:
                    rows = self.point_time.reshape(-1, len(self.step))
                    t = _repeat(_read(f, "time", path, self.schema), reps)
                    prev = rows[gflat]
                    if np.any(np.isfinite(prev) & (prev != t)):
                        raise ChunkFileError(f"{path}: a point's times differ between its runs; rerun the sweep")
                    rows[gflat] = t
                for n, arr in self.data.items():
                    obs = _repeat(np.asarray(_read(f, f"observables/{n}", path, self.schema)), reps)
                    if n not in _MAY_BE_NAN and not np.all(np.isfinite(obs)):
                        raise ChunkFileError(f"{path}: observable {n} has non-finite values; the chunk is not data")
                    arr.reshape((-1,) + arr.shape[len(self.axes):])[flat] = obs

    def dataset(self, attrs: dict):
        import xarray as xr

        axes, step = self.axes, self.step
        # per-point steps (schedule.py): a time row per run; the files get the dim ``step`` and a
        # ``time`` coordinate over the grid axes (not the seed: a point's steps do not depend on it)
        rec = "step" if self.per_point else "time"
        variables = {}
        for n, arr in self.data.items():
            dims = tuple(axes) + ((rec,) if arr.ndim > len(axes) and arr.shape[len(axes)] == len(step) else ())
            dims = dims + tuple(f"{n}_dim{i}" for i in range(arr.ndim - len(dims)))
            variables[n] = (dims, arr.astype(bool) if n in _BOOLEAN else arr)
        if self.per_point:
            time_coords = {"step": step, "time": (tuple(self.grid_axes) + ("step",), self.point_time)}
        else:
            time_coords = {"time": self.time, "step": ("time", step)}
        ds = xr.Dataset(variables, coords={**self.coords, **time_coords}, attrs=attrs)
        _describe(ds)
        return ds


def aggregate_chunks(paths, sweep: dict, attrs: dict, schema: str = CHUNK_SCHEMA, with_seed: bool = True):
    """Combine chunk files into an xarray Dataset on dims (grid axes[, design][, seed], time).

    ``design`` (labels: the design names) only for a sweep over designs other than the default;
    without seeds (the DMFT) its labels are the names and ``isotropic``, and an isotropic chunk
    fills ``isotropic`` and every design with a flat spectrum (``chunks.dmft_chunk_labels``).

    Coordinates are the sweep's grid values (sorted) and seed indices; every cell must be
    filled by exactly one run, else ChunkFileError says which file or which cell is missing.
    Observables stored per run without a time axis become variables without ``time``.

    Streamed (see above): the memory is the output's plus one chunk's, whatever the number of
    chunks. To write the result to a file, incrementally, use :func:`aggregate_to_netcdf`.
    """
    return _full(list(paths), sweep, schema, with_seed).dataset(attrs)


def _full(paths: list, sweep: dict, schema: str, with_seed: bool) -> "_Aggregate":
    """Both passes over every chunk of ``paths`` (metadata and checks, then the data)."""
    if not paths:
        raise ChunkFileError("no chunks to aggregate")
    agg = _Aggregate(sweep, schema, with_seed)
    agg.index(paths)
    agg.check_filled()
    agg.allocate()
    agg.fill()
    return agg


# ---- incremental aggregation into a file ---------------------------------------------------------
#
# The output records what it was made from in the attribute ``chunk_digests`` (JSON): the
# contents every chunk had (chunk format, observables with their output shape and type, time grid
# kind, the registry's NaN/boolean rules for them) and per chunk [file name, size, mtime in ns]. A chunk's name is derived from what it
# computes (``chunks.chunk_name``) and a chunk is only ever written whole under a new inode
# (``atomic_write``, or a hard link of the same bytes from the chunk cache, which keeps the mtime),
# so a rerun of a chunk changes its mtime, and Snakemake decides reruns by the same mtimes. A
# content hash would be stronger against a file rewritten within one mtime tick with the same
# size, but computing it means reading every chunk's bytes: what the increment is meant to avoid.

DIGESTS_ATTR = "chunk_digests"
_DIGESTS_VERSION = 1


def _digest(path) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # a missing chunk: the full aggregation names it
    return [Path(path).name, int(st.st_size), int(st.st_mtime_ns)]


def _comparable(kind: dict) -> dict:
    """A contents record without its arrays (the time grid is compared separately)."""
    return {k: v for k, v in kind.items() if k not in ("time", "step")}


def _kind_json(kind: dict) -> dict:
    return {"per_point": bool(kind["per_point"]), "chunk_format": int(kind["chunk_format"]),
            "observables": {n: [list(t), np.dtype(d).str] for n, (t, d) in kind["observables"].items()}}


def _kind_from_json(rec: dict) -> dict:
    return {"per_point": bool(rec["per_point"]), "chunk_format": int(rec["chunk_format"]),
            "observables": {n: (tuple(t), np.dtype(d)) for n, (t, d) in rec["observables"].items()}}


def _rules(kind: dict) -> dict:
    """The registry's rules for these observables that the cells of a previous output were
    checked and stored under (NaN allowed, boolean): a change of them is a full aggregation."""
    names = sorted(kind["observables"])
    return {"may_be_nan": [n for n in names if n in _MAY_BE_NAN], "boolean": [n for n in names if n in _BOOLEAN]}


def _str_values(v) -> np.ndarray:
    return np.array([x.decode() if isinstance(x, bytes) else str(x) for x in np.ravel(v)], dtype=str)


def _previous(prev, agg: _Aggregate, digests: list, chunks_attr: str | None):
    """What can be reused of the previous output ``prev``, or a reason (str) why nothing can.

    Usable when it records this module's format, the same schema and axes, a grid that this one
    contains axis by axis, and chunks that are all among ``digests`` unchanged."""
    if not Path(prev).exists():
        return "no previous output"
    names = [d[0] for d in digests]
    if any(d is None for d in digests) or len(set(names)) != len(names):
        return "chunk files missing or with the same name"
    try:
        with open_h5(prev) as f:
            rec = json.loads(f.attrs[DIGESTS_ATTR])
            if (rec.get("version") != _DIGESTS_VERSION or rec.get("schema") != agg.schema
                    or rec.get("schema_version") != SCHEMA_VERSION or rec.get("axes") != agg.axes):
                return "previous output of another format, schema or set of axes"
            old = [tuple(d) for d in rec["chunks"]]
            current = {d[0]: tuple(d) for d in digests}
            if not all(current.get(d[0]) == d for d in old):
                return "a chunk of the previous output changed or is gone"
            summary = None
            if chunks_attr is not None:
                summary = json.loads(f.attrs[chunks_attr])
                if [r[0] for r in summary] != [d[0] for d in old]:
                    return f"previous output's {chunks_attr!r} does not list its chunks"
            pos = {}
            for a in agg.axes:
                values = f[a][()]
                new = agg.coords[a]
                if new.dtype.kind == "U":
                    values, at = _str_values(values), {v: i for i, v in enumerate(new.tolist())}
                    p = np.array([at.get(v, -1) for v in values.tolist()], dtype=np.intp)
                else:
                    p = np.clip(np.searchsorted(new, values), 0, len(new) - 1)
                    p[new[p] != values] = -1
                if values.ndim != 1 or np.any(p < 0) or len(np.unique(p)) != len(p):
                    return f"previous output's {a} values are not all on this grid"
                pos[a] = p
            kind = _kind_from_json(rec["kind"])
            if rec.get("rules") != _rules(kind):
                return "the registry's NaN or boolean rules for these observables changed"
            kind["step"] = f["step"][()]
            kind["time"] = None if kind["per_point"] else f["time"][()]
    except Exception as exc:  # unreadable or not ours: rebuild from the chunks
        return f"previous output unusable ({type(exc).__name__}: {exc})"
    return {"kind": kind, "pos": pos, "old": old, "summary": summary}


def _fill_from_previous(agg: _Aggregate, prev, base: dict) -> None:
    """Copy the previous output's cells (each computed once, by a chunk that is unchanged) into
    their places on the new grid."""
    cells = np.ix_(*(base["pos"][a] for a in agg.axes))
    with open_h5(prev) as f:
        for n, arr in agg.data.items():
            arr[cells] = f[n][()]  # raw stored values (booleans: 0/1 int8), as the chunks gave them
        if agg.per_point:
            agg.point_time[np.ix_(*(base["pos"][a] for a in agg.grid_axes))] = f["time"][()]


def _incremental(paths, digests, prev, sweep, schema, with_seed, chunks_attr):
    """An ``_Aggregate`` extending the previous output ``prev`` with the chunks it lacks, or the
    reason (str) why it cannot be extended."""
    agg = _Aggregate(sweep, schema, with_seed)
    base = _previous(prev, agg, digests, chunks_attr)
    if isinstance(base, str):
        return base
    known = {d[0] for d in base["old"]}
    new = [p for p, d in zip(paths, digests) if d[0] not in known]
    agg.start(prev, base["kind"])
    try:
        agg.index(new, strict=base["kind"])
        agg.filled[np.ix_(*(base["pos"][a] for a in agg.axes))] += 1
        agg.check_filled()
        agg.allocate()
        _fill_from_previous(agg, prev, base)
        agg.fill()
    except Exception as exc:  # any refusal is made (and worded) by the full aggregation
        return f"not an extension of the previous output ({type(exc).__name__}: {exc})"
    rows = {r[0]: r for r in agg.summary}
    if base["summary"] is not None:
        rows.update((r[0], r) for r in base["summary"])
    agg.summary = [rows.get(d[0]) for d in digests]
    agg.n_reused = len(base["old"])
    return agg


def aggregate_to_netcdf(paths, out, sweep: dict, attrs: dict, schema: str = CHUNK_SCHEMA,
                        with_seed: bool = True, *, previous=None, chunks_attr: str | None = "chunks") -> dict:
    """:func:`aggregate_chunks` written to ``out`` atomically (:func:`write_netcdf`), reading only
    the chunks that the previous output lacks where it can.

    The previous output is ``previous`` if given, else ``out`` itself. It is extended when it was
    made by this function from chunks that are all among ``paths`` and unchanged (same name, size
    and mtime: see ``chunk_digests`` above), with the same chunk contents, schema and axes and a
    grid contained in this one (grid values or seeds added); otherwise, or on any problem, every
    chunk is aggregated again (which also words any refusal). Both give the same file.

    ``attrs`` go to the file in their order; ``attrs[chunks_attr]`` is set to the
    :func:`chunk_attrs_summary` of ``paths`` (in its place if the key is present; None: not set),
    and the attribute ``chunk_digests`` is added last. With ``previous`` other than ``out``, it is
    made a hard link of the new ``out`` (a copy where there are none), so it survives the deletion
    of ``out`` (Snakemake deletes a job's outputs before running it). Returns what was done:
    ``incremental``, ``read`` (chunks read), ``reused`` (chunks taken from the previous output),
    ``reason`` (why not incremental), ``sizes``.
    """
    paths = list(paths)
    digests = [_digest(p) for p in paths]
    prev = Path(out if previous is None else previous)
    agg = _incremental(paths, digests, prev, sweep, schema, with_seed, chunks_attr) if paths else "no chunks"
    reason = agg if isinstance(agg, str) else None
    if reason is not None:
        agg = _full(paths, sweep, schema, with_seed)
    attrs = dict(attrs)
    if chunks_attr is not None:
        attrs[chunks_attr] = json.dumps(agg.summary)
    attrs[DIGESTS_ATTR] = json.dumps({"version": _DIGESTS_VERSION, "schema": schema, "schema_version": SCHEMA_VERSION,
                                      "axes": agg.axes, "kind": _kind_json(agg.kind), "rules": _rules(agg.kind),
                                      "chunks": digests})
    ds = agg.dataset(attrs)
    write_netcdf(ds, out)
    if previous is not None and Path(previous).resolve() != Path(out).resolve():
        _link(Path(out), Path(previous))
    return {"incremental": reason is None, "read": len(agg.rows), "reused": agg.n_reused, "reason": reason,
            "sizes": dict(ds.sizes)}


def _link(src: Path, dst: Path) -> None:
    """Hard link ``src`` to ``dst`` atomically (a copy where the file system has no hard links)."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(dst)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


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

