"""Step schedules (config key ``schedule``, grid axis ``dt_scale``): the simulator and the DMFT
read the same steps per point; files of per-point sweeps carry step and physical time."""


import numpy as np
import pytest
import yaml
from conftest import REPO, resolved

from dln_kernels.measure import curves
from dln_kernels.pipeline import io
from dln_kernels.pipeline.chunks import make_chunks, make_dmft_chunks
from dln_kernels.pipeline.config import ConfigError, check_sweep
from dln_kernels.pipeline.run import run_chunk, run_dmft_chunk
from dln_kernels.pipeline.timegrid import n_steps_of, per_point_times, point_dt_schedule, time_grid
from dln_kernels.backend import get_namespace
from dln_kernels.model.problem import draw_instance
from dln_kernels.model.schedule import check_schedule, shared_dt_schedule, stability_bound
from dln_kernels.sim.simulate import simulate_members

GB = {"kind": "gauss_bernoulli"}


def _tiny(**changes):
    cfg = yaml.safe_load(open(REPO / "config.yaml"))
    tiny = cfg["sweeps"]["tiny"]
    tiny.update(changes)
    cfg["sweeps"] = {"tiny": tiny}
    cfg["sweep"] = "tiny"
    return resolved(cfg)["sweeps"]["tiny"]


def test_shared_schedules_end_on_t_max():
    const = shared_dt_schedule(check_schedule({"kind": "constant"}), 0.02, 300.0)
    assert np.array_equal(const, np.full(15000, 0.02))  # the grid of every sweep before schedules
    geo = shared_dt_schedule(check_schedule({"kind": "geometric", "dt0": 1e-3, "ratio": 1.01, "dt_max": 0.05}), 0.02, 10.0)
    assert geo[0] == 1e-3 and np.isclose(geo[1], 1.01e-3) and geo.max() == 0.05
    assert np.isclose(geo.sum(), 10.0, rtol=1e-12) and np.all(geo > 0)
    pw = shared_dt_schedule(check_schedule({"kind": "piecewise", "segments": [{"until": 1.0, "dt": 0.003}, {"until": 10.0, "dt": 0.05}]}), 0.02, 10.0)
    t = np.cumsum(pw)
    assert np.isclose(t[-1], 10.0) and np.any(np.isclose(t, 1.0))  # lands on every segment end
    assert set(np.round(pw[pw > 0.0031], 12)) <= {0.05} and np.isclose(pw[0], 0.003)


@pytest.mark.parametrize("spec, match", [
    ({"kind": "cosine"}, r"schedule.kind: unknown value 'cosine'"),
    ({"kind": "alpha_rule", "c": 0.01}, r"schedule.b: required by schedule kind 'alpha_rule'"),
    ({"kind": "alpha_rule", "c": 0.01, "b": 0.1, "cap": 1.5}, r"schedule.cap: 1.5 must be a finite number in \(0, 1\]"),
    ({"kind": "geometric", "dt0": 0.01, "ratio": 0.9}, r"schedule.ratio: 0.9 must be a finite number >= 1"),
    ({"kind": "piecewise", "segments": [{"until": 2.0, "dt": 0.1}, {"until": 1.0, "dt": 0.1}]},
     r"schedule.segments: .* increasing until"),
    ({"kind": "constant", "dt0": 0.1}, r"schedule.dt0: not a key of schedule kind 'constant'"),
])
def test_bad_schedules_are_refused_naming_the_key(spec, match):
    with pytest.raises(ValueError, match=match):
        check_schedule(spec)


def test_config_refusals_name_the_sweep_key():
    with pytest.raises(ConfigError, match=r"^sweep tiny: grid.dt_scale = \[0.5, 1.0\]: .* not of schedule kind 'geometric'"):
        check_sweep("tiny", _tiny(schedule={"kind": "geometric", "dt0": 0.01, "ratio": 1.01},
                                        grid={"alpha": [0.01, 1.0], "delta": [0.5, 2.0], "dt_scale": [0.5, 1.0]}))
    # a dt_scale that pushes one point over its own stability bound: named with the point
    bad = _tiny(grid={"alpha": [0.01, 1.0], "delta": [0.5, 2.0], "rho": [0.3], "dt_scale": [1.0, 3.0]})
    with pytest.raises(ConfigError, match=r"^sweep tiny: grid.dt_scale = 3.0: the step 0.15 exceeds the simulation stability "
                                                r"bound .* at alpha=1.0, delta=0.5"):
        check_sweep("tiny", bad)


def test_constant_schedule_keeps_names_and_steps():
    """Writing the default schedule out changes nothing: chunk names and the time grid."""
    plain, spelled = _tiny(), _tiny(schedule={"kind": "constant"})
    assert [c["name"] for c in make_chunks(plain)] == [c["name"] for c in make_chunks(spelled)]
    assert not per_point_times(plain)
    grid = time_grid(plain)
    n, sched, steps, times = grid.n_steps, grid.dt_schedule, grid.record_steps, grid.times
    assert n == 200 and np.array_equal(sched, np.full(200, 0.05)) and np.array_equal(times, steps * 0.05)


def test_alpha_rule_steps_follow_alpha_below_the_bound():
    sw = _tiny(schedule={"kind": "alpha_rule", "c": 0.01, "b": 0.1, "n_steps": 50},
               grid={"alpha": [1e-6, 0.3, 3.0], "delta": [0.5, 2.0], "rho": [0.3]})
    assert per_point_times(sw) and n_steps_of(sw) == 50
    for a, d in [(1e-6, 0.5), (0.3, 2.0), (3.0, 0.5)]:
        dt = point_dt_schedule(sw, {"alpha": a, "delta": d})
        bound = stability_bound("dln", a, d, 0.0, sw["prior"])
        assert dt.shape == (50,) and np.all(dt == dt[0])
        assert dt[0] == pytest.approx(min(0.01 / (a * a + 0.1), 0.9 * bound), rel=1e-15)
    assert point_dt_schedule(sw, {"alpha": 3.0, "delta": 0.5})[0] == pytest.approx(0.01 / 9.1)


def test_per_member_steps_equal_separate_runs(backend):
    """A stack whose members take different steps is the members run alone (to the rounding of
    a differently blocked product, as any batching), and a per-member schedule with equal
    columns is bit for bit the shared schedule."""
    xp = get_namespace(backend)
    inst = [draw_instance(80, 0, 0)]
    members = {"rho": np.array([0.3, 0.3]), "sigma": np.array([0.1, 0.1]), "alpha": np.array([0.5, 0.05]),
               "weight_decay": np.array([0.0, 0.01])}
    dts = np.array([0.03, 0.11])
    kw = dict(model="dln", delta=0.7, prior=GB, record_steps=[0, 7, 40], dtype=np.float64)
    both = simulate_members(xp, inst, [members], dt_schedule=np.tile(dts, (40, 1)), **kw)
    for j in range(2):
        one = simulate_members(xp, inst, [{k: v[j:j + 1] for k, v in members.items()}],
                               dt_schedule=np.full(40, dts[j]), **kw)
        for name in ("e_train", "e_test", "conservation_drift"):
            np.testing.assert_allclose(both[name][:, j], one[name][:, 0], rtol=1e-9, atol=1e-14)
    same = simulate_members(xp, inst, [members], dt_schedule=np.full((40, 2), 0.07), **kw)
    shared = simulate_members(xp, inst, [members], dt_schedule=np.full(40, 0.07), **kw)
    for name in same:
        assert np.array_equal(same[name], shared[name]), name


def test_alpha_rule_sweep_end_to_end(tmp_path):
    """Simulations and DMFT of an alpha_rule sweep share each point's steps; the files have the
    dim ``step`` and ``time`` over (grid axes, step) = step·dt(point)."""
    sw = _tiny(schedule={"kind": "alpha_rule", "c": 0.02, "b": 0.1, "n_steps": 60},
               grid={"alpha": [1e-4, 2.0], "delta": [0.5], "rho": [0.3]}, d=40, seeds=2)
    sw["dmft"].update(n_paths=400, n_batches=4)
    sims, dmfts = [], []
    for c in make_chunks(sw):
        p = tmp_path / f"{c['name']}.h5"
        io.write_chunk(p, run_chunk(sw, c, progress_every=None), {"config": "{}"})
        sims.append(p)
    for c in make_dmft_chunks(sw):
        p = tmp_path / f"d_{c['name']}.h5"
        io.write_chunk(p, run_dmft_chunk(sw, c, progress=False), {"config": "{}"})
        dmfts.append(p)
    ds = io.aggregate_chunks(sims, sw, {})
    th = io.aggregate_chunks(dmfts, sw, {}, with_seed=False)
    assert curves.record_dim(ds) == "step" and "time" not in ds.dims and ds["time"].dims[-1] == "step"
    for a in (1e-4, 2.0):
        dt = point_dt_schedule(sw, {"alpha": a, "delta": 0.5})[0]
        t = curves.point_times(ds, {"alpha": a, "delta": 0.5, "seed": 1})
        assert np.allclose(t, ds["step"].values * dt, rtol=1e-13)
        assert np.array_equal(t, curves.point_times(th, {"alpha": a, "delta": 0.5}))
    # E_train starts equal (same data statistics) and both curves fall at large α on the 1/α² scale
    e0 = th["e_train"].isel(step=0).values.ravel()
    assert np.all(np.isfinite(th["e_train"].values)) and np.all(e0 > 0)
    late = th["e_train"].sel(alpha=2.0).isel(step=-1).values.item()
    assert late < 0.2 * th["e_train"].sel(alpha=2.0).isel(step=0).values.item()


def test_dt_scale_point_is_the_scaled_constant_run():
    sw = _tiny(grid={"alpha": [0.3], "delta": [0.5], "rho": [0.3], "dt_scale": [0.5, 1.0]}, d=40, seeds=1, t_max=20.0)
    assert n_steps_of(sw) == 400  # round(t_max/dt): the point at s = 0.5 ends at t = 10
    job = {k: v for k, v in sw.items() if k != "grid"}  # a job's params hold no grid: its chunk tells
    assert all(per_point_times(job, c) for c in make_chunks(sw))
    assert not per_point_times({k: v for k, v in _tiny().items() if k != "grid"}, make_chunks(_tiny())[0])
    out = {}
    for c in make_chunks(sw):
        r = run_chunk(sw, c, progress_every=None)
        for j, s in enumerate(r["params"]["dt_scale"]):
            out[s] = (r["e_test"][j], r["time"][j])
    ref = _tiny(grid={"alpha": [0.3], "delta": [0.5], "rho": [0.3]}, d=40, seeds=1, dt=0.025, t_max=10.0)
    r = run_chunk(ref, make_chunks(ref)[0], progress_every=None)
    # same steps 0.025 and record grid of 400 steps (the stack of two differs from one run by
    # the rounding of a differently blocked product only)
    np.testing.assert_allclose(out[0.5][0], r["e_test"][0], rtol=1e-9)
    assert np.allclose(out[0.5][1], r["time"], rtol=1e-14)
    assert np.allclose(out[1.0][1], 2 * out[0.5][1])


def test_static_figure_takes_simulations_with_axes_the_theory_lacks():
    """A static group without batch_fraction/dt_scale (the theory does not read them, and files
    written before them lack them) beside simulations that carry them: the simulations are taken
    at b = 1, s = 1 and the figure draws (regression: a transpose failed on the extra dims)."""
    import sys

    import matplotlib
    import xarray as xr

    matplotlib.use("Agg")
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    from static_plots import fig_alpha_delta

    a, d = np.array([0.01, 0.1, 1.0]), np.array([0.5, 2.0])
    one = {"rho": [0.2], "sigma": [0.0], "weight_decay": [0.0], "depth": [2]}
    static = xr.Dataset({"e_test_final": (("alpha", "delta", *one), np.full((3, 2, 1, 1, 1, 1), 0.01))},
                        coords={"alpha": a, "delta": d, **one})
    shape = (3, 2, 1, 1, 1, 1, 2, 2, 2, 4)
    sims = xr.Dataset({"e_test": (("alpha", "delta", *one, "batch_fraction", "dt_scale", "seed", "time"),
                                  np.random.default_rng(0).uniform(0.005, 0.02, shape))},
                      coords={"alpha": a, "delta": d, **one, "batch_fraction": [0.3, 1.0], "dt_scale": [0.5, 1.0],
                              "seed": [0, 1], "time": [0.0, 1.0, 2.0, 3.0]})
    fig = fig_alpha_delta(static, sims)
    pts = fig.axes[0].collections[-1].get_offsets()
    assert len(pts) == 6  # one circle per (α, δ): the b = 1, s = 1 slice (first dt_scale value)
