"""Theory vs simulation: per-point deviation statistics over whole trajectories."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dln_kernels.measure.curves import point_times
from dln_kernels.registry import GRID_AXES

POINT_DIMS = GRID_AXES  # every grid axis the Datasets hold (depth, batch_fraction included), by name


def deviation_table(sims, theory, variables=("e_train", "e_test")):
    """One row per grid point and variable: relative deviation of the simulation seed mean from
    the theory, r(t) = mean/theory − 1, over the recorded times t > 0 where the theory is above its
    noise floor (for E_train that is the log-scale comparison: r is the ratio on a log plot).

    Columns: worst |r|, median |r|, the median combined relative standard error
    (seed standard error of the mean ⊕ theory Monte-Carlo error), and the fraction of times
    with |r| ≤ 2 combined standard errors. Returns a pandas DataFrame.
    """
    import pandas as pd

    n_seed = sims.sizes["seed"]
    mean = sims.mean("seed")
    sem = sims.std("seed", ddof=1) / np.sqrt(n_seed)
    rows = []
    dims = tuple(d for d in POINT_DIMS if d in sims.dims)
    for idx in np.ndindex(*(sims.sizes[d] for d in dims)):
        point = {d: sims[d].values[i].item() for d, i in zip(dims, idx)}
        times = point_times(sims, point)
        for var in variables:
            th = theory[var].sel(point).values
            ok = (times > 0) & np.isfinite(th) & (th > 0)
            if f"{var}_below_floor" in theory:
                ok &= ~theory[f"{var}_below_floor"].sel(point).values.astype(bool)
            m = mean[var].sel(point).values
            se = sem[var].sel(point).values
            th_se = theory[f"{var}_se"].sel(point).values if f"{var}_se" in theory else 0.0 * th
            r = m[ok] / th[ok] - 1.0
            comb = np.sqrt(se[ok] ** 2 + np.asarray(th_se)[ok] ** 2) / th[ok]
            rows.append({
                **point, "variable": var, "n_times": int(ok.sum()),
                "worst_rel_dev": float(np.max(np.abs(r))) if r.size else np.nan,
                "median_rel_dev": float(np.median(np.abs(r))) if r.size else np.nan,
                "median_rel_se": float(np.median(comb)) if r.size else np.nan,
                "frac_within_2se": float(np.mean(np.abs(r) <= 2 * comb)) if r.size else np.nan,
                "final_sim": float(m[-1]), "final_theory": float(th[-1]),
            })
    return pd.DataFrame(rows)


class SeedStats(NamedTuple):
    """Seed statistics of one quantity: ``mean``, its standard error ``se`` and the count ``n``."""

    mean: float
    se: float
    n: int


def seed_mean_se(values) -> SeedStats:
    """Mean, standard error of the mean (sample std, ddof 1, / √n; NaN for n < 2) and count n of
    the finite values of ``values`` (e.g. one number per seed); (NaN, NaN, 0) if there are none."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return SeedStats(math.nan, math.nan, 0)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return SeedStats(float(v.mean()), se, int(v.size))
