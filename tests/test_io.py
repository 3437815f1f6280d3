"""Chunk files: provenance, atomic writes, and detection of unusable chunks at aggregation."""

import json
import os

import h5py
import numpy as np
import pytest
from conftest import resolved

from dln_kernels.pipeline.io import ChunkFileError, aggregate_chunks, atomic_write, read_chunk, write_chunk
from dln_kernels.pipeline.provenance import provenance
from dln_kernels.pipeline.sweep import make_chunks, run_chunk


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
