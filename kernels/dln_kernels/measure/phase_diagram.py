"""DMFT phase diagrams: final E_test of the DMFT, of the simulations and of the long-time theory at
every point of a sweep's two varied grid axes, and E_test at several times (docs/dmft.md,
"Phase diagrams").

Inputs are the aggregated files of a sweep, loaded as xarray Datasets:

- ``dmft``: ``results/NAME/dmft.nc``, dims (grid axes, time) with ``e_test``, its Monte-Carlo
  standard error ``e_test_se`` and the noise-floor mask ``e_test_below_floor``;
- ``sims``: ``results/NAME/simulations.nc``, dims (grid axes, seed, time) with ``e_test``;
- ``static`` (optional): the root group of ``results/NAME/static.nc``, dims (grid axes): the
  long-time theory ``e_test_final`` (NaN where its solver did not converge) and ``converged``,
  evaluated by ``sweep.static_on_grid`` exactly at the sweep's own grid values (no interpolation).

The diagram is drawn over the two grid axes that hold more than one value, (α, δ) or (δ, ρ);
every other grid axis must hold one value. Times are read per point from the selected curve
(``ds.sel(point)["time"]``), so nothing here assumes that all points share one time axis.
E_test = ‖β − β*‖²/(2d) (d → ∞ for the DMFT and the long-time theory).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dln_kernels.measure.compare import seed_mean_se
from dln_kernels.measure.curves import record_dim
from dln_kernels.registry import GRID_AXES, PHASE_PLANES

# The pairs of grid axes a phase diagram is drawn over (x, y), in registry order.
PHASE_AXES = tuple(PHASE_PLANES.values())  # (alpha, delta), (delta, rho)
# The DMFT's final E_test has "settled" when it changed by at most SETTLED_RTOL of itself over the
# last factor SETTLED_WINDOW in time (t_end/4 → t_end); otherwise the run ended before its long-time
# value and the long-time theory is not the value to compare it with. Two octaves, not one: a
# plateau before a late change (small α near δ = 1 with label noise) passes a one-octave test.
SETTLED_RTOL = 0.02
SETTLED_WINDOW = 4.0
N_SNAPSHOTS = 4  # times of the time-resolved maps, the last one included
SNAPSHOT_DECADES = 2.0  # ... log-spaced over the last two decades of the recorded times
Z_AGREE = 2.0  # |DMFT − simulation| within 2 combined standard errors counts as agreement


class PhaseDiagramError(ValueError):
    """A Dataset (or a sweep's grid) a phase diagram cannot be drawn over."""


def _varied_pair(sizes: dict, where: str) -> tuple[str, str]:
    varied = tuple(a for a in GRID_AXES if sizes.get(a, 1) > 1)
    if varied not in PHASE_AXES:
        pairs = " or ".join(f"({x}, {y})" for x, y in PHASE_AXES)
        raise PhaseDiagramError(
            f"{where}: a DMFT phase diagram needs exactly two grid axes with more than one value, {pairs}, "
            f"and one value of every other axis; the grid varies {list(varied) or 'no axis'} "
            f"({', '.join(f'{a}: {sizes[a]} values' for a in varied)})"
        )
    return varied


def phase_axes(ds) -> tuple[str, str]:
    """The (x, y) grid axes of ``ds`` with more than one value: ("alpha", "delta") or ("delta", "rho").

    Raises PhaseDiagramError naming the varied axes otherwise (one, three, or another pair).
    """
    return _varied_pair({a: ds.sizes[a] for a in GRID_AXES if a in ds.dims}, "dataset")


def check_phase_grid(grid: dict, key: str = "grid") -> tuple[str, str]:
    """As :func:`phase_axes` for a sweep's ``grid`` (axis → list of values); the error names ``key``."""
    return _varied_pair({a: len(set(v)) for a, v in grid.items()}, key)


def log_spaced(values) -> bool:
    """True if ``values`` (positive, ≥ 3 of them, spanning ≥ a factor 5) are closer to a
    geometric than to an arithmetic progression: such an axis is drawn on a log scale (α, and δ
    when its values grow by a factor per step)."""
    v = np.sort(np.asarray(values, dtype=float))
    if v.size < 3 or v[0] <= 0 or v[-1] / v[0] < 5:
        return False
    lin = np.std(np.diff(v)) / np.mean(np.diff(v))
    log = np.std(np.diff(np.log(v))) / np.mean(np.diff(np.log(v)))
    return bool(log < lin)


def _index(coord, value, axis: str) -> int:
    """Position of ``value`` on ``coord`` (to 1e-9 relative): files store the grid in float64
    (the depth as an integer in some, a float in others), so exact equality is not relied on."""
    c = np.asarray(coord, dtype=float)
    hit = np.nonzero(np.isclose(c, float(value), rtol=1e-9, atol=1e-12))[0]
    if hit.size == 0:
        raise PhaseDiagramError(f"{axis}={float(value):g} is not on the grid {c.tolist()}")
    return int(hit[0])


def _at(ds, point: dict):
    """``ds`` at the grid point ``point`` (axis → value; axes ``ds`` lacks are skipped)."""
    return ds.isel({a: _index(ds[a].values, v, a) for a, v in point.items() if a in ds.dims})


def _fixed(ds, x: str, y: str) -> dict:
    """The one value of every other grid axis of ``ds``."""
    return {a: ds[a].values[0].item() for a in GRID_AXES if a in ds.dims and a not in (x, y)}


def _nearest_index(t, target: float) -> int:
    """Index of the recorded time nearest to ``target`` in log time (t > 0 only)."""
    t = np.asarray(t, dtype=float)
    pos = np.nonzero(t > 0)[0]
    return int(pos[np.argmin(np.abs(np.log(t[pos]) - math.log(target)))])


def snapshot_times(dmft, n: int = N_SNAPSHOTS, decades: float = SNAPSHOT_DECADES) -> np.ndarray:
    """(n,) target times of the time-resolved maps: log-spaced from t_end/10^decades (or the first
    recorded positive time, if later) to t_end, t_end the earliest final time over the points.

    Common to every point, so each map is one time; each point then uses its recorded time
    nearest in log time (reported in the table).
    """
    x, y = phase_axes(dmft)
    fixed = _fixed(dmft, x, y)
    t_end, t_first = math.inf, 0.0
    for xv in dmft[x].values:
        for yv in dmft[y].values:
            t = np.asarray(_at(dmft, {**fixed, x: xv, y: yv})["time"].values, dtype=float)
            t_end = min(t_end, float(t[-1]))
            t_first = max(t_first, float(t[t > 0][0]))
    lo = max(t_first, t_end / 10.0**decades)
    return np.geomspace(lo, t_end, n) if n > 1 else np.array([t_end])


def _sim_stats(curve, k: int) -> tuple[float, float, int]:
    """Seed mean, standard error of the mean (ddof 1) and seed count of ``e_test`` at record index k."""
    return seed_mean_se(curve["e_test"].isel({record_dim(curve): k}).values)


def phase_table(dmft, sims, static=None) -> pd.DataFrame:
    """Final E_test per grid point of the two varied axes (:func:`phase_axes` of ``dmft``).

    One row per point (x, y ascending), columns:

    - ``{x}``, ``{y}``: the point; ``t_final``: the DMFT's last recorded time there;
    - ``dmft_e_test``, ``dmft_e_test_se``: DMFT at t_final ± its Monte-Carlo standard error;
      ``dmft_below_floor``: flagged under 3 × its noise floor (the value is noise);
      ``dmft_rel_change``: (E(t_final) − E(t_w))/E(t_final), t_w the recorded time nearest
      t_final/SETTLED_WINDOW; ``dmft_settled``: |dmft_rel_change| ≤ SETTLED_RTOL;
      ``dmft_trusted``: settled and not below the floor;
    - ``sim_e_test``, ``sim_e_test_se``, ``n_seeds``: simulations at t_final, seed mean ± standard
      error of the mean (seed std, ddof 1, / √n_seeds);
    - ``z_dmft_sim``: (DMFT − sim)/√(se_DMFT² + se_sim²);
    - ``static_e_test``, ``static_converged``: long-time theory at the point (NaN / False without
      ``static``); ``rel_dev_static``: (DMFT − static)/static (NaN where static is 0 or NaN).

    ``table.attrs``: ``axes`` (x, y) and ``fixed`` (the other axes' values). Raises
    PhaseDiagramError if the axes do not form a phase diagram or a point is missing from
    ``sims`` or ``static``.
    """
    x, y = phase_axes(dmft)
    fixed = _fixed(dmft, x, y)
    rows = []
    for xv in np.sort(dmft[x].values):
        for yv in np.sort(dmft[y].values):
            point = {**fixed, x: xv, y: yv}
            th = _at(dmft, point)
            t = np.asarray(th["time"].values, dtype=float)
            e = np.asarray(th["e_test"].values, dtype=float)
            k_w = _nearest_index(t, t[-1] / SETTLED_WINDOW)
            rel = float((e[-1] - e[k_w]) / e[-1]) if e[-1] != 0 else math.nan
            below = bool(th["e_test_below_floor"].values[-1]) if "e_test_below_floor" in th else False
            settled = bool(abs(rel) <= SETTLED_RTOL)
            sim = _at(sims, point)
            k_sim = _index(sim["time"].values, t[-1], "time")  # the simulation at the same time
            s_mean, s_se, n_seeds = _sim_stats(sim, k_sim)
            d_se = float(th["e_test_se"].values[-1]) if "e_test_se" in th else math.nan
            comb = math.hypot(d_se, s_se)
            st, st_ok = math.nan, False
            if static is not None:
                sp = _at(static, point)
                st = float(sp["e_test_final"].values)
                st_ok = bool(sp["converged"].values) if "converged" in sp else bool(np.isfinite(st))
            rows.append({
                x: float(xv), y: float(yv), "t_final": float(t[-1]),
                "dmft_e_test": float(e[-1]), "dmft_e_test_se": d_se, "dmft_below_floor": below,
                "dmft_rel_change": rel, "dmft_settled": settled, "dmft_trusted": settled and not below,
                "sim_e_test": s_mean, "sim_e_test_se": s_se, "n_seeds": n_seeds,
                "z_dmft_sim": (float(e[-1]) - s_mean) / comb if comb > 0 else math.nan,
                "static_e_test": st, "static_converged": st_ok,
                "rel_dev_static": (float(e[-1]) - st) / st if (st_ok and st != 0) else math.nan,
            })
    table = pd.DataFrame(rows)
    table.attrs.update(axes=(x, y), fixed=fixed)
    return table


def phase_time_table(dmft, sims, times=None) -> pd.DataFrame:
    """E_test of the DMFT and of the simulations at several times per grid point (long form).

    ``times``: target times (default :func:`snapshot_times`); each point uses its recorded time
    nearest in log time. One row per (point, snapshot): ``{x}``, ``{y}``, ``snapshot`` (0 …),
    ``t_target``, ``time`` (the recorded time used), ``dmft_e_test``, ``dmft_e_test_se``,
    ``dmft_below_floor``, ``sim_e_test``, ``sim_e_test_se`` (seed mean ± standard error).
    ``table.attrs``: ``axes``, ``fixed``, ``times`` (the targets).
    """
    x, y = phase_axes(dmft)
    fixed = _fixed(dmft, x, y)
    times = snapshot_times(dmft) if times is None else np.asarray(times, dtype=float)
    rows = []
    for xv in np.sort(dmft[x].values):
        for yv in np.sort(dmft[y].values):
            point = {**fixed, x: xv, y: yv}
            th, sim = _at(dmft, point), _at(sims, point)
            t = np.asarray(th["time"].values, dtype=float)
            for j, target in enumerate(times):
                k = _nearest_index(t, float(target))
                s_mean, s_se, _ = _sim_stats(sim, _index(sim["time"].values, t[k], "time"))
                rows.append({
                    x: float(xv), y: float(yv), "snapshot": j, "t_target": float(target), "time": float(t[k]),
                    "dmft_e_test": float(th["e_test"].values[k]),
                    "dmft_e_test_se": float(th["e_test_se"].values[k]) if "e_test_se" in th else math.nan,
                    "dmft_below_floor": bool(th["e_test_below_floor"].values[k]) if "e_test_below_floor" in th else False,
                    "sim_e_test": s_mean, "sim_e_test_se": s_se,
                })
    table = pd.DataFrame(rows)
    table.attrs.update(axes=(x, y), fixed=fixed, times=[float(v) for v in times])
    return table


def phase_summary(table: pd.DataFrame) -> dict:
    """The numbers a phase diagram reports, from :func:`phase_table`:

    ``n_points``; ``n_trusted`` (DMFT settled and above its floor); over the trusted points the
    median and maximum |z| of DMFT − simulation and the fraction with |z| ≤ Z_AGREE; over the
    trusted points where the long-time theory converged, the median and maximum
    |DMFT − static|/static and the median of the same in DMFT standard errors.
    """
    ok = table["dmft_trusted"].to_numpy(bool)
    z = np.abs(table.loc[ok, "z_dmft_sim"].to_numpy(float))
    z = z[np.isfinite(z)]
    st = ok & table["static_converged"].to_numpy(bool) & np.isfinite(table["rel_dev_static"].to_numpy(float))
    rel = np.abs(table.loc[st, "rel_dev_static"].to_numpy(float))
    z_st = np.abs((table.loc[st, "dmft_e_test"] - table.loc[st, "static_e_test"]) / table.loc[st, "dmft_e_test_se"]).to_numpy(float)
    nan = math.nan
    return {
        "n_points": int(len(table)), "n_trusted": int(ok.sum()), "n_below_floor": int(table["dmft_below_floor"].sum()),
        "n_unsettled": int((~table["dmft_settled"].to_numpy(bool)).sum()),
        "median_abs_z_sim": float(np.median(z)) if z.size else nan,
        "max_abs_z_sim": float(np.max(z)) if z.size else nan,
        "frac_abs_z_sim_le_2": float(np.mean(z <= Z_AGREE)) if z.size else nan,
        "n_static_compared": int(st.sum()),
        "median_rel_dev_static": float(np.median(rel)) if rel.size else nan,
        "max_rel_dev_static": float(np.max(rel)) if rel.size else nan,
        "median_abs_z_static": float(np.median(z_st)) if z_st.size else nan,
    }

