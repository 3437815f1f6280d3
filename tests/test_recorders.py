"""Recorders from the registry: every registered observable is computed by a recorder (simulator)
or by the solver's outputs (DMFT); one without is an error, never uninitialised memory or a
silent skip. Chunk files carry a format, and chunks of different formats or observables are not
aggregated together."""

import h5py
import numpy as np
import pytest
from conftest import resolved

from dln_kernels import registry
from dln_kernels.pipeline.io import ChunkFileError, aggregate_chunks, write_chunk
from dln_kernels.pipeline.provenance import provenance
from dln_kernels.pipeline.chunks import make_chunks, make_dmft_chunks
from dln_kernels.pipeline.run import run_chunk, run_dmft_chunk
from dln_kernels.registry import Observable
from dln_kernels.sim import recorders
from dln_kernels.sim.simulate import simulate_grid

KW = dict(model="dln", d=40, delta=0.5, rho=[0.3], sigma=[0.0], alpha=[0.1, 1.0], weight_decay=[0.0], seeds=[0, 1],
          dt=0.05, n_steps=30, record_steps=[0, 10, 30])
L2 = Observable("l2_norm", "||beta||_2^2 / d", "1", frozenset({"sim:dln", "sim:linear"}))


@pytest.fixture
def with_l2(monkeypatch):
    monkeypatch.setitem(registry.OBSERVABLES, "l2_norm", L2)


def test_every_registered_simulator_observable_has_a_recorder():
    for model in ("dln", "linear"):
        names = set(recorders.recorders_for(model))
        want = {o.name for o in registry.OBSERVABLES.values()
                if f"sim:{model}" in o.producers and o.per_time and o.opt_in is None}
        assert names == want and "e_train" in names


def test_an_observable_without_recorder_is_refused(with_l2):
    with pytest.raises(recorders.MissingRecorderError, match=r"l2_norm.*sim:dln.*RECORDERS"):
        recorders.recorders_for("dln")
    with pytest.raises(recorders.MissingRecorderError, match="l2_norm"):
        simulate_grid(**KW)  # before any step is taken, not a file of uninitialised values


def test_a_registered_recorder_is_recorded(with_l2, monkeypatch):
    l2 = lambda xp, s: xp.sum(s.beta * s.beta, axis=1) / s.d  # noqa: E731
    for model in ("dln", "linear"):
        monkeypatch.setitem(recorders.RECORDERS[f"sim:{model}"], "l2_norm", l2)
    out = simulate_grid(**KW, record_beta=True)
    beta = out["beta"]  # (..., R, d)
    np.testing.assert_allclose(out["l2_norm"], np.sum(beta * beta, axis=-1) / KW["d"], rtol=1e-12)
    assert np.all(out["l2_norm"][..., -1] > 0)  # the network has learned: not a zero-filled or empty buffer


def test_record_steps_must_increase():
    with pytest.raises(ValueError, match="record_steps: need strictly increasing"):
        simulate_grid(**{**KW, "record_steps": [0, 10, 10, 30]})


def test_dmft_observable_not_recorded_is_refused(base_config, monkeypatch):
    tiny = resolved(base_config)["sweeps"]["tiny"]
    tiny = {**tiny, "dmft": {**tiny["dmft"], "n_paths": 200}}
    monkeypatch.setitem(registry.OBSERVABLES, "e_dummy", Observable("e_dummy", "dummy", "1", frozenset({"dmft"})))
    with pytest.raises(LookupError, match=r"\['e_dummy'\].*DMFT.*solve_dmft does not record"):
        run_dmft_chunk(tiny, make_dmft_chunks(tiny)[0], progress=False)


def _write(tiny, chunk, path, drop=None, fmt=None):
    res = run_chunk(tiny, chunk, progress_every=None)
    if drop:
        res.pop(drop)
    write_chunk(path, res, provenance({"sweep": tiny, "chunk": chunk}, backend="numpy", dtype="float64",
                                      seeds=chunk["seeds"], base_seed=0))
    if fmt is not None:
        with h5py.File(path, "a") as f:
            f.attrs["chunk_format"] = fmt


def test_chunks_of_different_format_or_observables_are_not_aggregated(base_config, tmp_path):
    tiny = resolved(base_config)["sweeps"]["tiny"]
    chunks = make_chunks(tiny)
    paths = [tmp_path / f"{c['name']}.h5" for c in chunks]
    for c, p in zip(chunks, paths):
        _write(tiny, c, p)
    with h5py.File(paths[0], "r") as f:
        assert int(f.attrs["chunk_format"]) == 1
    aggregate_chunks(paths, tiny, attrs={})  # the same format and observables: fine
    _write(tiny, chunks[1], paths[1], fmt=2)
    with pytest.raises(ChunkFileError, match=rf"{paths[1].name} has chunk format 2 but .*{paths[0].name} has format 1.*recompute"):
        aggregate_chunks(paths, tiny, attrs={})
    _write(tiny, chunks[1], paths[1], drop="l1_norm")
    with pytest.raises(ChunkFileError, match=r"hold different observables .*l1_norm.*recompute them: delete"):
        aggregate_chunks(paths, tiny, attrs={})
