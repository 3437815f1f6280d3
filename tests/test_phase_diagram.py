"""DMFT phase diagram (dln_kernels.measure.phase_diagram): the table of final E_test per grid point on
synthetic Datasets whose every entry is known, the choice of the two axes, the config checks, and a
smoke test of the drawing (workflow/scripts/phase_plots.py)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import xarray as xr
from conftest import REPO, resolved

from dln_kernels.measure.phase_diagram import (
    SETTLED_RTOL,
    SETTLED_WINDOW,
    PhaseDiagramError,
    log_spaced,
    phase_axes,
    phase_summary,
    phase_table,
    phase_time_table,
    snapshot_times,
)
from dln_kernels.registry import AXES, GRID_AXES
from dln_kernels.pipeline.config import ConfigError, check_sweep

TIME = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0])  # t_final/4 = 4 is recorded: the settle test is exact
SEEDS = 3
SPREAD = np.array([-1.0, 0.0, 1.0])  # seed offsets: mean 0, std (ddof 1) 1


def _coords(varied: dict) -> dict:
    one = {"alpha": [1.0], "delta": [0.5], "rho": [0.2]}  # the other axes at their registry defaults
    return {a: np.asarray(varied.get(a, one.get(a, AXES[a].default)), dtype=float) for a in GRID_AXES}


def synthetic(varied: dict):
    """(dmft, sims, static, truth) on the grid ``varied`` (other axes one value) with known numbers.

    At point (i, j) of the two varied axes: final DMFT E_test f = 0.01·(1 + i + 2j), DMFT curve
    f·(1 + late·factor(t)) with late = 10 % at point (0, 0) (not settled) and 0.1 % elsewhere
    (factor 1.2 at t = 4 = t_final/SETTLED_WINDOW, 0 at t_final), se
    1e-3·f; the last point's final value below its floor; simulations: seed values curve + shift +
    s·(−1, 0, 1) (mean curve + shift, std s); the long-time theory 1.05·f, NaN where not converged
    (point (1, 0))."""
    coords = _coords(varied)
    names = [a for a in GRID_AXES if len(coords[a]) > 1]
    shape = tuple(len(coords[a]) for a in GRID_AXES)
    ii, jj = np.meshgrid(np.arange(len(coords[names[0]])), np.arange(len(coords[names[1]])), indexing="ij")
    final = 0.01 * (1 + ii + 2 * jj)
    late = np.where((ii == 0) & (jj == 0), 0.10, 0.001)
    # curve: f at t = 16, f·(1 + late) at t = 8, larger before (monotone decay)
    factor = np.array([3.0, 2.0, 1.5, 1.2, 1.0, 0.0])  # × late, added to 1
    curve = final[..., None] * (1.0 + late[..., None] * factor)
    curve[..., -1] = final
    d_se = 1e-3 * final
    below = np.zeros(curve.shape, dtype=bool)
    below[-1, -1, -1] = True  # the last point's final value under its floor
    s_sd = 2e-3 * final  # seed std (ddof 1) at every time
    shift = 3e-3 * final  # simulation mean − DMFT
    sims_v = curve[..., None, :] + shift[..., None, None] + s_sd[..., None, None] * SPREAD[:, None]
    static_v = 1.05 * final
    conv = np.ones_like(final, dtype=bool)
    conv[1, 0] = False
    static_v = np.where(conv, static_v, np.nan)

    dims = tuple(GRID_AXES)
    dmft = xr.Dataset(
        {"e_test": (dims + ("time",), _put(curve, names, shape, 1)),
         "e_test_se": (dims + ("time",), _put(np.broadcast_to(d_se[..., None], curve.shape), names, shape, 1)),
         "e_test_below_floor": (dims + ("time",), _put(below, names, shape, 1))},
        coords={**coords, "time": TIME})
    sims = xr.Dataset({"e_test": (dims + ("seed", "time"), _put(sims_v, names, shape, 2))},
                      coords={**coords, "seed": np.arange(SEEDS), "time": TIME})
    static = xr.Dataset({"e_test_final": (dims, _put(static_v, names, shape, 0)),
                         "converged": (dims, _put(conv, names, shape, 0))}, coords=coords)
    truth = {"final": final, "late": late, "d_se": d_se, "s_se": s_sd / math.sqrt(SEEDS), "shift": shift,
             "static": static_v, "conv": conv, "below": below[..., -1], "names": names}
    return dmft, sims, static, truth


def _put(a, names, shape, n_trailing):
    """Array over the two varied axes (+ trailing dims) placed into the full grid shape."""
    pos = [GRID_AXES.index(n) for n in names]
    out_shape = [1] * len(GRID_AXES)
    for p, n in zip(pos, a.shape[:2]):
        out_shape[p] = n
    return np.reshape(np.asarray(a), tuple(out_shape) + a.shape[2:])


@pytest.mark.parametrize("varied", [
    {"alpha": [0.01, 0.1, 1.0], "delta": [0.5, 2.0]},
    {"delta": [0.3, 0.6, 0.9], "rho": [0.1, 0.4]},
])
def test_phase_table_has_the_known_numbers(varied):
    dmft, sims, static, truth = synthetic(varied)
    x, y = truth["names"]
    assert phase_axes(dmft) == (x, y)
    tab = phase_table(dmft, sims, static)
    assert tab.attrs["axes"] == (x, y) and len(tab) == dmft.sizes[x] * dmft.sizes[y]
    for _, row in tab.iterrows():
        i = int(np.argmin(np.abs(dmft[x].values - row[x])))
        j = int(np.argmin(np.abs(dmft[y].values - row[y])))
        f = truth["final"][i, j]
        assert row["t_final"] == TIME[-1]
        assert row["dmft_e_test"] == pytest.approx(f, rel=1e-12)
        assert row["dmft_e_test_se"] == pytest.approx(truth["d_se"][i, j], rel=1e-12)
        # (E(16) − E(4))/E(16), E(4) = f·(1 + 1.2·late)
        assert row["dmft_rel_change"] == pytest.approx(-1.2 * truth["late"][i, j], rel=1e-9)
        assert row["dmft_settled"] == (1.2 * truth["late"][i, j] <= SETTLED_RTOL)
        assert row["dmft_below_floor"] == truth["below"][i, j]
        assert row["dmft_trusted"] == (row["dmft_settled"] and not row["dmft_below_floor"])
        assert row["n_seeds"] == SEEDS
        assert row["sim_e_test"] == pytest.approx(f + truth["shift"][i, j], rel=1e-12)
        assert row["sim_e_test_se"] == pytest.approx(truth["s_se"][i, j], rel=1e-9)
        z = -truth["shift"][i, j] / math.hypot(truth["d_se"][i, j], truth["s_se"][i, j])
        assert row["z_dmft_sim"] == pytest.approx(z, rel=1e-9)
        assert row["static_converged"] == truth["conv"][i, j]
        if truth["conv"][i, j]:
            assert row["static_e_test"] == pytest.approx(1.05 * f, rel=1e-12)
            assert row["rel_dev_static"] == pytest.approx(1 / 1.05 - 1, rel=1e-9)
        else:
            assert math.isnan(row["static_e_test"]) and math.isnan(row["rel_dev_static"])
    s = phase_summary(tab)
    n = len(tab)
    assert s["n_points"] == n and s["n_below_floor"] == 1 and s["n_unsettled"] == 1
    assert s["n_trusted"] == n - 2
    # every trusted point has the same z and the same deviation from the theory
    z_all = np.abs(tab.loc[tab["dmft_trusted"], "z_dmft_sim"])
    assert s["median_abs_z_sim"] == pytest.approx(float(np.median(z_all)))
    assert s["frac_abs_z_sim_le_2"] == pytest.approx(float(np.mean(z_all <= 2)))
    assert s["n_static_compared"] == n - 3 and s["median_rel_dev_static"] == pytest.approx(1 - 1 / 1.05)


def test_settle_window_is_two_octaves():
    assert SETTLED_WINDOW == 4.0  # the synthetic curves above place t_final/SETTLED_WINDOW at t = 4


def test_static_is_optional():
    dmft, sims, _, _ = synthetic({"alpha": [0.01, 0.1, 1.0], "delta": [0.5, 2.0]})
    tab = phase_table(dmft, sims)
    assert tab["static_e_test"].isna().all() and not tab["static_converged"].any()


def test_time_table_reads_each_snapshot():
    dmft, sims, _, truth = synthetic({"alpha": [0.01, 0.1, 1.0], "delta": [0.5, 2.0]})
    times = snapshot_times(dmft, n=3, decades=1.0)  # 1.6, 5.06, 16 → recorded 2, 4, 16
    np.testing.assert_allclose(times, [1.6, 1.6 * 10**0.5, 16.0])
    tt = phase_time_table(dmft, sims, times)
    assert len(tt) == 6 * 3 and tt.attrs["times"] == pytest.approx(list(times))
    for _, row in tt.iterrows():
        k = int(np.nonzero(TIME == row["time"])[0][0])
        assert row["time"] == [2.0, 4.0, 16.0][int(row["snapshot"])]
        point = {"alpha": row["alpha"], "delta": row["delta"]}
        ref = dmft.sel(point).squeeze()
        assert row["dmft_e_test"] == pytest.approx(float(ref["e_test"].values[k]))
        assert row["sim_e_test"] == pytest.approx(float(sims.sel(point).squeeze()["e_test"].isel(time=k).mean()))
    # the last snapshot is the final time, below the floor where the Dataset says so
    last = tt[tt["snapshot"] == 2]
    assert last["dmft_below_floor"].sum() == 1


@pytest.mark.parametrize("varied, named", [
    ({"alpha": [0.1, 1.0]}, "['alpha']"),
    ({"alpha": [0.1, 1.0], "rho": [0.1, 0.2]}, "['alpha', 'rho']"),
    ({"alpha": [0.1, 1.0], "delta": [0.5, 2.0], "rho": [0.1, 0.2]}, "['alpha', 'delta', 'rho']"),
])
def test_other_grids_are_refused_naming_the_axes(varied, named):
    dmft, *_ = synthetic({"alpha": [0.01, 0.1], "delta": [0.5, 2.0]})
    ds = xr.Dataset(coords=_coords(varied))
    with pytest.raises(PhaseDiagramError, match=r"\(alpha, delta\) or \(delta, rho\).*" + named.replace("[", r"\[").replace("]", r"\]")):
        phase_axes(ds)


def test_log_spaced_axes():
    assert log_spaced([0.01, 0.03, 0.1, 0.3, 1.0, 2.0])
    assert log_spaced([0.3, 0.5, 0.8, 1.5, 2.5])
    assert not log_spaced([0.1, 0.2, 0.3, 0.4])  # spans a factor 4
    assert not log_spaced([1.0, 5.0, 9.0, 13.0])  # arithmetic
    assert not log_spaced([0.5, 2.0])


def test_sweep_key_is_checked_before_compute(base_config):
    cfg = resolved(base_config)
    sweep = cfg["sweeps"]["dmft_phase"]
    check_sweep("dmft_phase", sweep)  # the shipped example passes
    assert cfg["sweeps"]["tiny"]["dmft"]["phase_diagram"] is False  # the default
    bad = {**sweep, "grid": {**sweep["grid"], "rho": [0.1, 0.2]}}
    with pytest.raises(ConfigError, match=r"^sweep dmft_phase: dmft\.phase_diagram = true: grid: a DMFT phase diagram .*\['alpha', 'delta', 'rho'\]"):
        check_sweep("dmft_phase", bad)
    with pytest.raises(ConfigError, match=r"^sweep dmft_phase: dmft\.phase_diagram = true: needs sweeps\.dmft_phase\.static\.enabled"):
        check_sweep("dmft_phase", {**sweep, "static": {**sweep["static"], "enabled": False}})


def test_figures_draw_from_synthetic_tables():
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    import matplotlib.pyplot as plt
    from phase_plots import dmft_phase_diagram, dmft_phase_times

    for varied in ({"alpha": [0.01, 0.1, 1.0], "delta": [0.5, 2.0]}, {"delta": [0.3, 0.6, 0.9], "rho": [0.1, 0.4]}):
        dmft, sims, static, _ = synthetic(varied)
        tab = phase_table(dmft, sims, static)
        fig = dmft_phase_diagram(tab, phase_summary(tab))
        assert len(fig.axes) >= 4
        plt.close(fig)
        fig = dmft_phase_times(phase_time_table(dmft, sims))
        assert len(fig.axes) >= 2 * 4
        plt.close(fig)
