"""Chunk files: provenance, atomic writes, detection of unusable chunks at aggregation, and the
streaming, incremental aggregation into a file (memory, bits, what is read)."""

import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, resolved

from dln_kernels.pipeline import io
from dln_kernels.pipeline.io import ChunkFileError, aggregate_chunks, atomic_write, read_chunk, write_chunk
from dln_kernels.pipeline.provenance import provenance
from dln_kernels.pipeline.chunks import make_chunks
from dln_kernels.pipeline.run import run_chunk


@pytest.fixture
def tiny(base_config):
    return resolved(base_config)["sweeps"]["tiny"]


def write_all(tiny, folder):
    paths = []
    for chunk in make_chunks(tiny):
        res = run_chunk(tiny, chunk, progress_every=None)
        attrs = provenance({"sweep": tiny, "chunk": chunk}, backend=res["backend"], dtype=tiny["dtype"],
                           seeds=chunk["seeds"], base_seed=tiny["base_seed"])
        p = folder / f"{chunk['name']}.h5"
        write_chunk(p, res, attrs)
        paths.append(p)
    return paths


def test_chunk_carries_provenance(tiny, tmp_path):
    p = write_all(tiny, tmp_path)[0]
    with h5py.File(p, "r") as f:
        for key in ("config", "seeds", "base_seed", "package_versions", "git_commit", "backend", "dtype", "created"):
            assert key in f.attrs, key
        cfg = json.loads(f.attrs["config"])
        assert cfg["sweep"]["d"] == tiny["d"] and cfg["chunk"]["name"] == p.stem
        assert "numpy" in json.loads(f.attrs["package_versions"])
        assert f.attrs["backend"] == "numpy" and f.attrs["dtype"] == "float64"


def test_same_config_same_arrays(tiny, tmp_path):
    a = write_all(tiny, tmp_path / "a")
    b = write_all(tiny, tmp_path / "b")
    for pa, pb in zip(a, b):
        ra, rb = read_chunk(pa), read_chunk(pb)
        for name in ra["observables"]:
            assert np.array_equal(ra["observables"][name], rb["observables"][name])


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.h5"

    def broken(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=np.arange(3))
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert os.listdir(tmp_path) == []


def test_truncated_chunk_is_named_at_aggregation(tiny, tmp_path):
    paths = write_all(tiny, tmp_path)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(ChunkFileError, match=paths[1].name):
        aggregate_chunks(paths, tiny, {})


def test_incomplete_chunk_is_rejected(tiny, tmp_path):
    paths = write_all(tiny, tmp_path)
    with h5py.File(paths[0], "a") as f:
        f.attrs["complete"] = 0
    with pytest.raises(ChunkFileError, match="not a complete dln-sweep/simulation-chunk file"):
        aggregate_chunks(paths, tiny, {})


def test_missing_chunk_is_reported(tiny, tmp_path):
    paths = write_all(tiny, tmp_path)
    with pytest.raises(ChunkFileError, match="computed 0 times"):
        aggregate_chunks(paths[:-1], tiny, {})


def test_float32_sweep_stays_float32_on_disk(tiny, tmp_path):
    """dtype: float32 runs float32 arithmetic, stores float32 chunks and aggregates to float32."""
    tiny = {**tiny, "dtype": "float32"}
    paths = write_all(tiny, tmp_path)
    for name, arr in read_chunk(paths[0])["observables"].items():
        assert arr.dtype == np.float32, name
    ds = aggregate_chunks(paths, tiny, {})
    for name in ("e_train", "e_test", "l1_norm", "conservation_drift"):
        assert ds[name].dtype == np.float32, name


# ---- streaming, incremental aggregation (io.aggregate_to_netcdf) ----------------------------------

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_scale  # noqa: E402  (synthetic chunks written by io.write_chunk)


def write_plain(sweep, folder):
    """The sweep's chunks, run and written with fixed attributes (no provenance, so no git calls)."""
    paths = []
    for chunk in make_chunks(sweep):
        p = folder / f"{chunk['name']}.h5"
        write_chunk(p, run_chunk(sweep, chunk, progress_every=None),
                    {"config": json.dumps({"chunk": chunk}), "git_commit": "test", "backend": "numpy", "created": "now"})
        paths.append(p)
    return paths


def same_file(a, b, skip=()):
    """Bit for bit: every dataset (name, order, dtype, shape, bytes, attribute names) and the root
    attributes (order, values), but those in ``skip``."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert [k for k in fa.attrs if k not in skip] == [k for k in fb.attrs if k not in skip]
        for k in fa.attrs:
            if k not in skip:
                assert np.array_equal(fa.attrs[k], fb.attrs[k]), k
        assert list(fa) == list(fb)
        for n in fa:
            assert fa[n].dtype == fb[n].dtype and fa[n].shape == fb[n].shape, n
            assert np.asarray(fa[n][()]).tobytes() == np.asarray(fb[n][()]).tobytes(), n
            assert list(fa[n].attrs) == list(fb[n].attrs), n


def count_opens(monkeypatch) -> list:
    """File names that io opens from now on."""
    opened, real = [], io.open_h5
    monkeypatch.setattr(io, "open_h5", lambda path, mode="r": (opened.append(Path(path).name), real(path, mode))[1])
    return opened


@pytest.fixture
def grown(tiny, tmp_path):
    """The chunks of the tiny sweep with one more δ: (sweep, all paths, the tiny sweep's, the new one)."""
    ext = {**tiny, "grid": {**tiny["grid"], "delta": [0.5, 1.0, 2.0]}}
    paths = write_plain(ext, tmp_path / "sim")
    new = [p for p in paths if p.name.startswith("delta1.0_")]
    assert len(paths) == 3 and len(new) == 1
    return ext, paths, [p for p in paths if p not in new], new[0]


def test_to_netcdf_is_aggregate_chunks_plus_the_record(tiny, tmp_path):
    """aggregate_to_netcdf writes what aggregate_chunks + write_netcdf write, ``chunks`` (the
    chunk_attrs_summary) in the place the caller gave it and ``chunk_digests`` added last."""
    paths = write_plain(tiny, tmp_path)
    attrs = {"title": "t", "chunks": None, "after": "x"}
    io.write_netcdf(aggregate_chunks(paths, tiny, {**attrs, "chunks": io.chunk_attrs_summary(paths)}), tmp_path / "a.nc")
    info = io.aggregate_to_netcdf(paths, tmp_path / "b.nc", tiny, attrs)
    assert info["read"] == 2 and not info["incremental"]
    same_file(tmp_path / "a.nc", tmp_path / "b.nc", skip={io.DIGESTS_ATTR})
    with h5py.File(tmp_path / "b.nc", "r") as f:
        assert [k for k in f.attrs if k != "_NCProperties"] == ["title", "chunks", "after", io.DIGESTS_ATTR]
        assert [d[0] for d in json.loads(f.attrs[io.DIGESTS_ATTR])["chunks"]] == [p.name for p in paths]


def test_adding_a_chunk_reads_only_that_chunk(grown, tmp_path, monkeypatch):
    """One more grid value: only its chunk is opened (and the previous output), and the file is bit
    for bit the full aggregation's; here through the kept link of a deleted output (Snakemake
    deletes a job's outputs before it runs)."""
    ext, paths, old, new = grown
    tiny = {**ext, "grid": {**ext["grid"], "delta": [0.5, 2.0]}}
    out, keep = tmp_path / "simulations.nc", tmp_path / ".cache" / "simulations.nc"
    attrs = {"title": "t", "chunks": None}
    assert not io.aggregate_to_netcdf(old, out, tiny, attrs, previous=keep)["incremental"]
    assert os.path.samefile(out, keep)
    out.unlink()
    opened = count_opens(monkeypatch)
    info = io.aggregate_to_netcdf(paths, out, ext, attrs, previous=keep)
    assert info["incremental"] and (info["read"], info["reused"]) == (1, 2), info
    assert sorted(set(opened)) == sorted({new.name, keep.name}), opened
    monkeypatch.undo()
    io.aggregate_to_netcdf(paths, tmp_path / "full.nc", ext, attrs)  # no previous output: every chunk
    same_file(out, tmp_path / "full.nc")
    ds = io.open_netcdf(out)
    assert list(ds["delta"].values) == [0.5, 1.0, 2.0] and np.isfinite(ds["e_train"].values).all()


def test_changed_or_missing_chunk_means_a_full_aggregation(grown, tmp_path, monkeypatch):
    """Nothing new: no chunk is read. A chunk rewritten since (another mtime): every chunk is read
    again, with the same bits. A chunk gone: the full aggregation's refusal, and no file is replaced."""
    ext, paths, _, _ = grown
    out, attrs = tmp_path / "simulations.nc", {"title": "t"}
    io.aggregate_to_netcdf(paths, out, ext, attrs)
    io.aggregate_to_netcdf(paths, tmp_path / "full.nc", ext, attrs)
    opened = count_opens(monkeypatch)
    assert io.aggregate_to_netcdf(paths, out, ext, attrs)["read"] == 0 and set(opened) == {out.name}
    monkeypatch.undo()
    same_file(out, tmp_path / "full.nc")
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**6))  # as a rerun of the chunk leaves it
    info = io.aggregate_to_netcdf(paths, out, ext, attrs)
    assert not info["incremental"] and info["read"] == 3 and "changed" in info["reason"], info
    same_file(out, tmp_path / "full.nc", skip={io.DIGESTS_ATTR})
    before = out.read_bytes()
    with pytest.raises(ChunkFileError, match="computed 0 times"):
        io.aggregate_to_netcdf(paths[1:], out, ext, attrs)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["full.nc", "sim", "simulations.nc"]


def test_incremental_refusals_are_the_full_aggregations(tmp_path):
    """A new chunk that cannot join the previous output (here: another set of observables) gets the
    full aggregation's refusal, naming the files, and the output stays; one more seed of the same
    kind is read alone and gives a full aggregation's bits."""
    folder, out = tmp_path / "c", tmp_path / "agg.nc"
    paths = bench_scale.write_synthetic(folder, 3, 2, 5)
    io.aggregate_to_netcdf(paths, out, bench_scale.synthetic_sweep(3, 2), {})
    before = out.read_bytes()
    odd = bench_scale.chunk_path(folder, 3)
    res = read_chunk(paths[0])
    write_chunk(odd, {"params": {**res["params"], "seed": np.full(2, 3)}, "time": res["time"], "step": res["step"],
                      **res["observables"], "extra": np.zeros((2, 5))}, {})
    with pytest.raises(ChunkFileError, match=f"{odd.name} and .*{paths[0].name} hold different observables"):
        io.aggregate_to_netcdf([*paths, odd], out, bench_scale.synthetic_sweep(4, 2), {})
    assert out.read_bytes() == before
    odd.unlink()
    paths += bench_scale.write_synthetic(folder, 1, 2, 5, start=3)
    info = io.aggregate_to_netcdf(paths, out, bench_scale.synthetic_sweep(4, 2), {})
    assert info["incremental"] and info["read"] == 1, info
    io.aggregate_to_netcdf(paths, tmp_path / "full.nc", bench_scale.synthetic_sweep(4, 2), {})
    same_file(out, tmp_path / "full.nc")


def test_aggregation_memory_is_bounded_by_the_output(tmp_path):
    """The 10³-job case of benchmarks/bench_scale.py: 10³ chunks aggregate within the peak
    Python/NumPy memory of 10² chunks holding the same output plus at most 2 kB per chunk (its
    metadata: cell indices, summary row, digest); the peak, and that of adding one more chunk
    (which reads only it), is a small multiple of the output, not the chunks' sum on top of it."""
    runs, n_times = 10, 30
    size, peaks = bench_scale.output_bytes(1000, runs, n_times), {}
    bench_scale.write_synthetic(tmp_path / "warm", 3, 2, 5)  # imports (xarray, h5netcdf) outside the peaks
    bench_scale.aggregate_case(tmp_path / "warm", 2, 2, tmp_path / "warm.nc")
    for n in (100, 1000):
        folder, per = tmp_path / f"n{n}", runs * 1000 // n
        bench_scale.write_synthetic(folder, n + (n == 1000), per, n_times, workers=2)
        tracemalloc.start()
        t0 = time.perf_counter()
        bench_scale.aggregate_case(folder, n, per, tmp_path / f"out{n}.nc", incremental=False)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        seconds = time.perf_counter() - t0
        if n == 1000:  # one more chunk: read alone
            tracemalloc.reset_peak()
            info = io.aggregate_to_netcdf([bench_scale.chunk_path(folder, s) for s in range(n + 1)], tmp_path / f"out{n}.nc",
                                          bench_scale.synthetic_sweep(n + 1, per), {"title": "bench", "chunks": None})
            peaks[n, "+1"] = tracemalloc.get_traced_memory()[1]
            assert info["incremental"] and info["read"] == 1, info
        tracemalloc.stop()
        print(f"{n} chunks: {seconds:.1f} s, peaks {peaks} (output {size / 2**20:.2f} MB)")
    assert peaks[1000] - peaks[100] < 900 * 2048, peaks
    assert max(peaks.values()) < 2 * size, (peaks, size)


def test_bench_scale_dag_of_1000_jobs(tmp_path):
    """The DAG column of the 10³ case: `snakemake -n` of the generated sweep plans its 10³ chunks."""
    seconds, planned = bench_scale.dag_seconds(1000, 10, 30, tmp_path, timeout=300)
    assert planned == 1000 and seconds > 0
