"""Automatic chunking (``chunk_size: auto``, ``dmft.points_per_job: auto``): jobs of about
``job_minutes`` from the cost model, content-named chunks that survive grid edits, and counts
(``sim_layout``, ``dmft_layout``) that equal the enumerated chunks."""

import copy
import math

import numpy as np
import pytest
from conftest import SCHEMA

from dln_kernels.model.problem import n_samples
from dln_kernels.pipeline.budget import plan_of
from dln_kernels.pipeline.chunks import (dmft_layout, make_chunks, make_dmft_chunks, points_per_job, runs_per_job,
                                         sim_chunk_bytes, sim_layout)
from dln_kernels.pipeline.config import check_config
from dln_kernels.pipeline.cost import COST


def checked(**sweep):
    cfg = {"sweep": "s", "sweeps": {"s": copy.deepcopy(sweep)}}
    check_config(cfg, SCHEMA)
    return cfg["sweeps"]["s"]


MILLION = {"d": 100, "seeds": 10, "dt": 0.02, "t_max": 20.0,
           "grid": {"alpha": [float(x) for x in np.geomspace(1e-3, 1, 100)],
                    "delta": [float(x) for x in np.linspace(0.2, 2, 100)], "rho": [round(0.05 * i, 2) for i in range(1, 11)]}}


def test_auto_is_the_default_and_fits_the_job_length():
    sweep = checked(**MILLION)
    assert sweep["chunk_size"] == "auto" and sweep["job_minutes"] == 10.0
    lay = sim_layout(sweep)
    assert lay["runs"] == 10**6 and lay["jobs"] <= 10**4  # 172 jobs
    for delta in (0.2, 1.0, 2.0):
        size = runs_per_job(sweep, {"delta": delta, "depth": 2})
        assert size & (size - 1) == 0  # a power of two: small cost changes do not re-cut chunks
        per_run = COST.sim_run_seconds(n_samples(delta, 100), 100, 1000)
        assert size * per_run <= 600 - COST.job_start_s < 2 * size * per_run  # the most that fit 10 minutes
    assert plan_of("s", sweep).runs == 10**6


def test_auto_sizes_respect_the_memory_budget():
    sweep = checked(d=4000, seeds=8, dt=0.02, t_max=1.0, memory_budget_gb=1.0, grid={"alpha": [0.1, 1.0], "delta": [1.0]})
    size = runs_per_job(sweep, {"delta": 1.0, "depth": 2})
    shape = {"delta": 1.0, "seeds": [0] * max(1, size // 2), "members": [None] * min(size, 2)}
    assert sim_chunk_bytes(sweep, shape) <= 1e9 < sim_chunk_bytes(sweep, {**shape, "seeds": [0] * (2 * len(shape["seeds"]))})


def test_adding_a_delta_keeps_the_other_chunks():
    """Sizes are per δ: a new δ adds its chunks; the names (and so the files) of the others stay."""
    small = {**MILLION, "grid": {**MILLION["grid"], "delta": [0.5, 1.0]}}
    more = {**MILLION, "grid": {**MILLION["grid"], "delta": [0.5, 1.0, 2.0]}}
    before = {c["name"] for c in make_chunks(checked(**small))}
    after = {c["name"] for c in make_chunks(checked(**more))}
    assert before < after and all(n.startswith("delta2.0_") for n in after - before)


@pytest.mark.parametrize("t_max", [5.0, 50.0])
def test_counts_equal_the_enumeration_with_auto(t_max):
    sweep = checked(**{**MILLION, "t_max": t_max, "seeds": 3,
                       "grid": {"alpha": [0.01, 0.1, 1.0], "delta": [0.5, 1.5], "rho": [0.2, 0.4]},
                       "dmft": {"enabled": True, "n_paths": 2000, "n_batches": 4}})
    chunks, dchunks = make_chunks(sweep), make_dmft_chunks(sweep)
    lay, dl = sim_layout(sweep), dmft_layout(sweep)
    assert (lay["jobs"], lay["runs"]) == (len(chunks), sum(len(c["seeds"]) * len(c["members"]) for c in chunks))
    assert (dl["jobs"], dl["points"]) == (len(dchunks), sum(len(c["points"]) for c in dchunks))
    ppj = points_per_job(sweep)
    assert ppj & (ppj - 1) == 0 and max(len(c["points"]) for c in dchunks) <= ppj
    T = int(round(t_max / 0.02)) + 1
    assert ppj * COST.dmft_point_seconds(2000, T) <= 600 or ppj == 1
    assert math.prod(len(v) for v in sweep["grid"].values() if isinstance(v, list)) == dl["points"]
