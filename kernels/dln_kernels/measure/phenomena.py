"""Measure the phenomena on the aggregated simulation and DMFT Datasets: the tables (pandas
DataFrames) of the numbers each phenomenon figure reports, and the arrays it draws.

Inputs are the files of a named sweep, loaded as xarray Datasets:

- ``sims``: ``results/NAME/simulations.nc``, dims (alpha, delta, rho, sigma, weight_decay, seed,
  time) with ``e_train``, ``e_test`` and the coordinate ``step`` (time = step·dt);
- ``dmft``: ``results/NAME/dmft.nc``, the same parameter dims without ``seed``, with ``e_train``,
  ``e_test``, their Monte-Carlo standard errors ``*_se``, the noise-floor masks
  ``*_below_floor`` and the late rates ``decay_rate``, ``decay_rate_se``,
  ``decay_rate_spectral``.

Times are in the sweep's time units (t = step·dt), errors as recorded (E_train, E_test), rates
per unit time (E ∝ exp(−rate·t)). Every measurement reads ρ, σ (and λ unless it is selected) at
their first value in the Dataset. Definitions and thresholds: docs/phenomena.md (sections a–e);
crossing times: :func:`dln_kernels.measure.analysis.crossing_time` (linear in (t, log E) between recorded
times); leading-order predictions: :mod:`dln_kernels.measure.predictions`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from dln_kernels.measure.analysis import crossing_time, late_decay_rate
from dln_kernels.measure.compare import seed_mean_se
from dln_kernels.measure.predictions import (
    crossing_time_se,
    depth_search_time,
    grokking_times,
    incremental_step_prediction,
    incremental_steps,
    lazy_time_prediction,
    line_fit,
    search_slope,
)
from dln_kernels.model.priors import second_moment
from dln_kernels.model.dln_state import effective_scale_runs
from dln_kernels.model.schedule import stability_bound

SEARCH_FRACTION = 0.5  # end of the search phase: E_train ≤ ½ E_train(0)
SEARCH_FIT_MAX_ALPHA = 1e-3  # leading order needs ln(1/α) ≫ 1: fit α ≤ 0.001 (ln(1/α) ≥ 6.9) only
SLOPE_FRACTIONS = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)  # drop fractions f of the slope-vs-f table
LAZY_FRACTION = 0.5  # lazy time: E_train ≤ ½ E_train(0)
SIM_TAIL = 0.3  # late-rate window: last 30 % of the valid time span
SIM_VALID = 1e-24  # simulation E_train below this is float64 round-off, not dynamics
DEPTH_FIT_MAX_ALPHA = 0.2  # power law of the depth-L escape: fit α ≤ 0.2 (leading order in α)
CONVERGED_FRACTION = 1e-3  # "converged" at t_max: DMFT E_train ≤ 1e-3 E_train(0) (then E_test is final)


# ----------------------------------------------------------------------------------------------
# curves out of the Datasets
# ----------------------------------------------------------------------------------------------
def _mean_se(values) -> tuple[float, float]:
    """(mean, standard error) over seeds of ``values`` (``compare.seed_mean_se`` without the count)."""
    stats = seed_mean_se(values)
    return stats.mean, stats.se


def select_curve(ds, **sel):
    """The part of ``ds`` at the selection ``sel`` (coordinate values), with ρ, σ, λ, the depth and
    the step multiplier (``rho``, ``sigma``, ``weight_decay``, ``depth``, ``dt_scale``) at their
    first value and the batch fraction at its largest (full-batch GD where the sweep has it)
    unless given in ``sel``."""
    for a in ("rho", "sigma", "weight_decay", "depth", "batch_fraction", "dt_scale"):
        if a in ds.dims and a not in sel:
            sel[a] = ds[a].values[-1 if a == "batch_fraction" else 0]
    return ds.sel(sel)


def masked_curve(dmft, var: str, **sel) -> np.ndarray:
    """DMFT curve ``var`` at the selection (:func:`select_curve`) as float, NaN where the Dataset
    flags it below the DMFT noise floor (``{var}_below_floor``, if present)."""
    sub = select_curve(dmft, **sel)
    y = sub[var].values.astype(float)
    if f"{var}_below_floor" in dmft:
        y = np.where(sub[f"{var}_below_floor"].values, np.nan, y)
    return y


def seed_curves(sims, var: str, **sel) -> np.ndarray:
    """The simulation curves ``var`` at the selection, one row per seed: (n_seeds, n_times)."""
    return np.array([select_curve(sims, seed=s, **sel)[var].values for s in sims["seed"].values])


def seed_geometric_mean(curves, floor: float = 1e-300) -> np.ndarray:
    """Geometric mean over seeds (axis 0) of curves spanning many decades; values are floored at
    ``floor`` so that an exact 0 (underflow) does not give −∞."""
    return np.exp(np.log(np.maximum(curves, floor)).mean(0))


def sweep_dt(ds) -> float:
    """The sweep's constant step: dt = time[-1] / step[-1] (a shared time axis only)."""
    t, k = ds["time"].values, ds["step"].values
    return float(t[-1] / k[-1])


def curve_times(ds, alphas, delta: float) -> np.ndarray:
    """Recorded times of each α at δ (the other axes as :func:`select_curve` fixes them):
    (n_α, n_times); the rows are equal when the sweep's points share one time axis."""
    return np.array([select_curve(ds, alpha=a, delta=delta)["time"].values for a in alphas], dtype=float)


def curve_dt(ds, alphas, delta: float) -> np.ndarray:
    """The constant step of each α at δ, time[-1]/step[-1] (per point under an alpha_rule schedule)."""
    return curve_times(ds, alphas, delta)[:, -1] / float(ds["step"].values[-1])


# Split of a merged timescales sweep (one α range, per-α steps): the search-phase measurement
# reads α ≤ 1, the lazy-time measurement α ≥ 2 (docs/phenomena.md a–b).
SEARCH_PHASE_MAX_ALPHA = 1.0
LAZY_PHASE_MIN_ALPHA = 2.0


# ----------------------------------------------------------------------------------------------
# crossing times and their slopes
# ----------------------------------------------------------------------------------------------
def seed_crossing_times(t, curves, fraction: float) -> np.ndarray:
    """Crossing times t_f (E ≤ ``fraction``·E(0), :func:`crossing_time`) of every curve:
    ``t`` (n_times,) or per curve (n_x, n_times), ``curves`` (n_seeds, n_x, n_times) → (n_seeds, n_x)."""
    tx = np.broadcast_to(np.asarray(t, dtype=float), curves.shape[1:])
    return np.array([[crossing_time(tt, e, fraction * e[0]) for tt, e in zip(tx, sc)] for sc in curves])


def seed_crossing_slopes(t, curves, x, fraction: float, transform=lambda v: v):
    """Per seed: the crossing times t_f (E ≤ ``fraction``·E(0), :func:`crossing_time`) of each
    curve and the slope of ``transform``\\(t_f) against ``x`` (:func:`dln_kernels.measure.predictions.line_fit`,
    unweighted).

    ``t``: recorded times, (n_times,) or per curve (n_x, n_times); ``curves``: (n_seeds, n_x,
    n_times). Returns (times (n_seeds, n_x), mean slope over seeds, its standard error: sd/√n
    over the seeds with a finite slope, NaN with fewer than 2)."""
    times = seed_crossing_times(t, curves, fraction)
    slopes = np.array([line_fit(x, transform(ts))["slope"] for ts in times])
    n = np.isfinite(slopes).sum()
    se = np.nanstd(slopes, ddof=1) / math.sqrt(n) if n > 1 else np.nan
    return times, float(np.nanmean(slopes)), float(se)


class TrainCrossings(NamedTuple):
    """What :func:`train_crossings` returns (a named tuple: it also unpacks in this order)."""

    e_dmft: np.ndarray  # DMFT E_train curves (n_α, n_times)
    e_dmft_se: np.ndarray  # their Monte-Carlo s.e. (n_α, n_times)
    t_dmft: np.ndarray  # DMFT crossing times (n_α,)
    t_dmft_se: np.ndarray  # their s.e. (n_α,)
    e_sim: np.ndarray  # simulation E_train curves (n_seeds, n_α, n_times)


def train_crossings(sims, dmft, alphas, delta: float, t, fraction: float) -> TrainCrossings:
    """At one δ, for each α of ``alphas``: the DMFT E_train curves and their Monte-Carlo s.e.
    (n_α, n_times), the DMFT crossing times of E_train = ``fraction``·E_train(0) and their s.e.
    (:func:`dln_kernels.measure.predictions.crossing_time_se`: half the distance between the crossings of
    E ∓ s.e.), and the simulations' E_train curves (n_seeds, n_α, n_times). ``t``: the recorded
    times, (n_times,) or per α (n_α, n_times) (:func:`curve_times`).

    Returns a :class:`TrainCrossings` (e_dmft, e_dmft_se, t_dmft, t_dmft_se, e_sim)."""
    e_th = np.array([select_curve(dmft, alpha=a, delta=delta)["e_train"].values for a in alphas])
    se_th = np.array([select_curve(dmft, alpha=a, delta=delta)["e_train_se"].values for a in alphas])
    tx = np.broadcast_to(np.asarray(t, dtype=float), e_th.shape)
    t_th = np.array([crossing_time(tt, e, fraction * e[0]) for tt, e in zip(tx, e_th)])
    t_th_se = np.array([crossing_time_se(tt, e, s, fraction * e[0]) for tt, e, s in zip(tx, e_th, se_th)])
    curves = np.array([[select_curve(sims, alpha=a, delta=delta, seed=s)["e_train"].values for a in alphas]
                       for s in sims["seed"].values])
    return TrainCrossings(e_dmft=e_th, e_dmft_se=se_th, t_dmft=t_th, t_dmft_se=t_th_se, e_sim=curves)


# ----------------------------------------------------------------------------------------------
# a. search phase (docs/phenomena.md, a)
# ----------------------------------------------------------------------------------------------
def search_slope_theory(sims, prior: dict, delta: float, fraction, dt: float | None = None):
    """Leading-order slope d t_f / d ln(1/α) (:func:`dln_kernels.measure.predictions.search_slope`) at the
    sweep's ρ, σ (first values) and dt (default the sweep's constant step; give the
    search-phase step, ``search_phase_measure(...)["dt"]``, for per-point steps), for one drop
    fraction or an array of them."""
    rho, sigma = float(sims["rho"].values[0]), float(sims["sigma"].values[0])
    dt = sweep_dt(sims) if dt is None else float(dt)
    if np.ndim(fraction):
        return np.array([search_slope(f, delta, rho, sigma, prior, dt) for f in fraction])
    return search_slope(fraction, delta, rho, sigma, prior, dt)


def search_phase_measure(sims, dmft, prior: dict) -> dict:
    """Search phase vs L = ln(1/α), per δ.

    t_f: first time E_train ≤ f·E_train(0); the end of the search phase is t_{1/2}
    (``SEARCH_FRACTION``). DMFT slopes of t_f against L: weighted line fit over α ≤
    ``SEARCH_FIT_MAX_ALPHA`` with the crossing-time s.e. (floored at 1e-3) as errors; simulation
    slopes: one unweighted fit per seed, mean ± s.e. over seeds; leading order:
    :func:`dln_kernels.measure.predictions.search_slope` (first order in the drop).

    Returns a dict:

    - ``table``: one row per (δ, f ∈ ``SLOPE_FRACTIONS``): slope_dmft, slope_dmft_se,
      slope_sim, slope_sim_se, slope_leading_order, rel_dev_dmft = slope_dmft/prediction − 1;
    - ``L`` (ln(1/α) per α), ``fit`` (mask of the fitted α), ``rho``, ``sigma``, ``dt``;
    - ``per_delta``: per δ a dict with ``delta``, ``t_dmft``, ``t_dmft_se`` (t_{1/2} per α),
      ``t_sim`` (t_{1/2}, seeds × α), ``fit_dmft`` (line fit of t_{1/2} over the fitted α) and
      ``slope_leading_order`` (at f = ½).
    """
    alphas = sims["alpha"].values
    alphas = alphas[alphas <= SEARCH_PHASE_MAX_ALPHA]  # a merged timescales sweep: its search side
    L = np.log(1 / alphas)
    fit = alphas <= SEARCH_FIT_MAX_ALPHA
    rho = float(sims["rho"].values[0])
    sigma = float(sims["sigma"].values[0])
    # the step of the fitted α (under an alpha_rule schedule dt = c/(α² + b) is constant there
    # to O(α²/b); the largest relative spread is reported in ``dt_spread``)
    dts = curve_dt(sims, alphas[fit], sims["delta"].values[0])
    dt = float(np.median(dts))
    rows, per_delta = [], []
    for delta in sims["delta"].values:
        t = curve_times(sims, alphas, delta)
        e_th, se_th, t_th, t_th_se, curves = train_crossings(sims, dmft, alphas, delta, t, SEARCH_FRACTION)
        t_sim_all = seed_crossing_times(t, curves, SEARCH_FRACTION)
        f_th = line_fit(L[fit], t_th[fit], np.maximum(t_th_se[fit], 1e-3))
        pred = search_slope(SEARCH_FRACTION, delta, rho, sigma, prior, dt)
        per_delta.append({"delta": delta, "t_dmft": t_th, "t_dmft_se": t_th_se, "t_sim": t_sim_all,
                          "fit_dmft": f_th, "slope_leading_order": pred})
        for f in np.array(SLOPE_FRACTIONS):
            tt = np.array([crossing_time(tk, e, f * e[0]) for tk, e in zip(t, e_th)])
            tt_se = np.array([crossing_time_se(tk, e, s, f * e[0]) for tk, e, s in zip(t, e_th, se_th)])
            ft = line_fit(L[fit], tt[fit], np.maximum(tt_se[fit], 1e-3))
            _, s_sim, s_sim_se = seed_crossing_slopes(t[fit], curves[:, fit], L[fit], f)
            p = search_slope(f, delta, rho, sigma, prior, dt)
            rows.append({"delta": delta, "fraction": f, "slope_dmft": ft["slope"], "slope_dmft_se": ft["slope_se"],
                         "slope_sim": s_sim, "slope_sim_se": s_sim_se, "slope_leading_order": p,
                         "rel_dev_dmft": ft["slope"] / p - 1})
    return {"table": pd.DataFrame(rows), "L": L, "fit": fit, "rho": rho, "sigma": sigma, "dt": dt,
            "dt_spread": float(np.ptp(dts) / dt), "alpha": alphas, "per_delta": per_delta}


# ----------------------------------------------------------------------------------------------
# b. lazy time (docs/phenomena.md, b)
# ----------------------------------------------------------------------------------------------
def lazy_time_theory(sims, prior: dict, delta: float, alpha, fraction: float = LAZY_FRACTION) -> np.ndarray:
    """Lazy-limit t_f for each α (:func:`dln_kernels.measure.predictions.lazy_time_prediction`: linear
    regression with step dt·α², Marchenko–Pastur) at the sweep's ρ (E[β*²] =
    :func:`dln_kernels.model.priors.second_moment`), σ, dt and number of steps round(t_max/dt)."""
    rho, sigma = float(sims["rho"].values[0]), float(sims["sigma"].values[0])
    n_steps = int(sims["step"].values[-1])
    alpha = np.atleast_1d(np.asarray(alpha, dtype=float))
    grid = sims["alpha"].values.astype(float)
    # each α's own step (one value for a constant-dt sweep), log-interpolated between grid values
    dts = np.exp(np.interp(np.log(alpha), np.log(grid), np.log(curve_dt(sims, grid, delta))))
    return np.concatenate([lazy_time_prediction(a, delta, second_moment(prior, rho), dt, sigma, fraction, n_steps)
                           for a, dt in zip(alpha, dts)])


def lazy_time_measure(sims, dmft, prior: dict) -> dict:
    """Lazy time t_lazy = t_{1/2} of E_train (``LAZY_FRACTION``) vs α, per δ, and its log–log
    slope: DMFT by a weighted line fit of ln t against ln α (errors s.e.(t)/t), simulations one
    fit per seed (mean ± s.e. over seeds), the lazy-limit prediction (:func:`lazy_time_theory`)
    by an unweighted fit (slope −2 as dt·α² → 0).

    Returns a dict:

    - ``table``: per (δ, α) t_lazy_dmft, t_lazy_dmft_se, t_lazy_sim_mean, t_lazy_sim_sd (over
      seeds), t_lazy_linear_pred; then per δ a row with α = NaN and slope_dmft, slope_dmft_se,
      slope_sim, slope_sim_se, slope_pred;
    - ``rho``, ``sigma``, ``dt``;
    - ``per_delta``: per δ a dict with ``delta``, ``t_dmft``, ``t_dmft_se``, ``t_sim`` (seeds × α),
      ``fit_dmft``, ``slope_sim``, ``slope_sim_se``, ``pred`` (per α), ``fit_pred``.
    """
    alphas = sims["alpha"].values
    alphas = alphas[alphas >= LAZY_PHASE_MIN_ALPHA] if alphas.max() >= LAZY_PHASE_MIN_ALPHA else alphas
    rho, sigma = float(sims["rho"].values[0]), float(sims["sigma"].values[0])
    dt = curve_dt(sims, alphas, sims["delta"].values[0])
    dt = float(dt[0]) if np.ptp(dt) == 0 else dt  # per α under an alpha_rule schedule
    rows, per_delta = [], []
    for delta in sims["delta"].values:
        t = curve_times(sims, alphas, delta)
        e_th, se_th, t_th, t_th_se, curves = train_crossings(sims, dmft, alphas, delta, t, LAZY_FRACTION)
        t_sim, s_sim, s_sim_se = seed_crossing_slopes(t, curves, np.log(alphas), LAZY_FRACTION, np.log)
        pred = lazy_time_theory(sims, prior, delta, alphas, LAZY_FRACTION)
        f_th = line_fit(np.log(alphas), np.log(t_th), t_th_se / t_th)
        f_pred = line_fit(np.log(alphas), np.log(pred))
        per_delta.append({"delta": delta, "t_dmft": t_th, "t_dmft_se": t_th_se, "t_sim": t_sim, "fit_dmft": f_th,
                          "slope_sim": s_sim, "slope_sim_se": s_sim_se, "pred": pred, "fit_pred": f_pred})
        for a, x, xs, p, ts in zip(alphas, t_th, t_th_se, pred, t_sim.T):
            rows.append({"delta": delta, "alpha": a, "t_lazy_dmft": x, "t_lazy_dmft_se": xs,
                         "t_lazy_sim_mean": ts.mean(), "t_lazy_sim_sd": ts.std(ddof=1), "t_lazy_linear_pred": p})
        rows.append({"delta": delta, "alpha": np.nan, "slope_dmft": f_th["slope"], "slope_dmft_se": f_th["slope_se"],
                     "slope_sim": s_sim, "slope_sim_se": s_sim_se, "slope_pred": f_pred["slope"]})
    return {"table": pd.DataFrame(rows), "rho": rho, "sigma": sigma, "dt": dt, "alpha": alphas,
            "per_delta": per_delta}


# ----------------------------------------------------------------------------------------------
# c. incremental learning (docs/phenomena.md, c)
# ----------------------------------------------------------------------------------------------
def teacher_levels(prior: dict) -> np.ndarray:
    """Distinct teacher magnitudes |ℓ| of a discrete prior, largest (learned first) first."""
    return np.sort(np.unique(np.abs(np.asarray(prior["values"], float))))[::-1]


def incremental_measure(sims, dmft, prior: dict) -> dict:
    """Incremental learning at the first δ, per α (ascending): plateaus of E_train and the step
    after each (:func:`dln_kernels.measure.predictions.incremental_steps`; the DMFT curve with its
    below-floor part set to 0), step j matched to the j-th largest teacher magnitude
    (:func:`teacher_levels`), against :func:`dln_kernels.measure.predictions.incremental_step_prediction`.

    Returns a dict:

    - ``table``: per (α, level) t_step_dmft, t_step_sim_mean, t_step_sim_sd (over seeds; 0 with
      one seed), t_step_theory, rel_dev_dmft = t_step_dmft/t_step_theory − 1; then per α a row
      with level = NaN and the slope of the DMFT step times against 1/rate(ℓ) =
      dt/ln(1 + dt|ℓ|) (slope_vs_inverse_rate, slope_se; leading order: ln(1/α), given as
      ln_inv_alpha);
    - ``levels``, ``delta``, ``rho``, ``dt``, ``e_train0`` (DMFT E_train(0) at the smallest α);
    - ``per_alpha``: per α a dict with ``alpha``, ``e_dmft`` (masked below the floor), ``e_sim``
      (seeds × time), ``steps_dmft`` (the incremental_steps dict of the DMFT), ``t_step_dmft``,
      ``t_step_sim`` (seeds × level), ``t_step_sim_mean``, ``t_step_sim_sd``, ``t_step_theory``.
    """
    t, dt = sims["time"].values, sweep_dt(sims)
    alphas = np.sort(sims["alpha"].values)
    delta = float(sims["delta"].values[0])
    levels = teacher_levels(prior)
    n_lv = levels.size
    rows, per_alpha = [], []
    for a in alphas:
        e_th = masked_curve(dmft, "e_train", alpha=a, delta=delta)
        e_sim = seed_curves(sims, "e_train", alpha=a, delta=delta)
        st = incremental_steps(t, np.nan_to_num(e_th, nan=0.0), n_steps=n_lv)
        sim_steps = np.full((e_sim.shape[0], n_lv), np.nan)
        for s, e in enumerate(e_sim):
            ss = incremental_steps(t, e, n_steps=n_lv)["step_times"]
            sim_steps[s, : ss.size] = ss
        pred = incremental_step_prediction(levels, a, dt)
        th_steps = np.full(n_lv, np.nan)
        th_steps[: st["step_times"].size] = st["step_times"]
        sm = np.nanmean(sim_steps, 0)
        sd = np.nanstd(sim_steps, 0, ddof=1) if sim_steps.shape[0] > 1 else np.zeros(n_lv)
        f_th = line_fit(dt / np.log1p(dt * levels), th_steps)
        per_alpha.append({"alpha": a, "e_dmft": e_th, "e_sim": e_sim, "steps_dmft": st, "t_step_dmft": th_steps,
                          "t_step_sim": sim_steps, "t_step_sim_mean": sm, "t_step_sim_sd": sd,
                          "t_step_theory": pred})
        for j, lvl in enumerate(levels):
            rows.append({"alpha": a, "level": lvl, "t_step_dmft": th_steps[j], "t_step_sim_mean": sm[j],
                         "t_step_sim_sd": sd[j], "t_step_theory": pred[j], "rel_dev_dmft": th_steps[j] / pred[j] - 1})
        rows.append({"alpha": a, "level": np.nan, "slope_vs_inverse_rate": f_th["slope"],
                     "slope_se": f_th["slope_se"], "ln_inv_alpha": math.log(1 / a)})
    e0 = float(select_curve(dmft, alpha=alphas[0], delta=delta)["e_train"].values[0])
    return {"table": pd.DataFrame(rows), "levels": levels, "delta": delta, "rho": float(sims["rho"].values[0]),
            "dt": dt, "e_train0": e0, "per_alpha": per_alpha}


# ----------------------------------------------------------------------------------------------
# d. grokking-like delay (docs/phenomena.md, d)
# ----------------------------------------------------------------------------------------------
def grokking_table(sims, dmft) -> pd.DataFrame:
    """Grokking times (:func:`dln_kernels.measure.predictions.grokking_times`) at the first δ, one row per
    (α, λ): t_train_dmft, t_test_dmft, delay_dmft, plateau_dmft (DMFT); t_test_sim_mean,
    t_test_sim_sd, delay_sim_mean (over seeds, NaN-aware); hypothesis_ln_alpha_over_lambda =
    ln(α)/λ (the weight-decay hypothesis t_test ≈ ln(α/α_c)/λ with α_c = 1)."""
    t = sims["time"].values
    delta = float(sims["delta"].values[0])
    rows = []
    for a in sims["alpha"].values:
        for lam in sims["weight_decay"].values:
            th = grokking_times(t, select_curve(dmft, alpha=a, delta=delta, weight_decay=lam)["e_train"].values,
                                select_curve(dmft, alpha=a, delta=delta, weight_decay=lam)["e_test"].values)
            sim = [grokking_times(t, select_curve(sims, alpha=a, delta=delta, weight_decay=lam, seed=s)["e_train"].values,
                                  select_curve(sims, alpha=a, delta=delta, weight_decay=lam, seed=s)["e_test"].values)
                   for s in sims["seed"].values]
            ts = np.array([g["t_test"] for g in sim])
            rows.append({"alpha": a, "weight_decay": lam, "t_train_dmft": th["t_train"], "t_test_dmft": th["t_test"],
                         "delay_dmft": th["delay"], "plateau_dmft": th["plateau"],
                         "t_test_sim_mean": np.nanmean(ts), "t_test_sim_sd": np.nanstd(ts, ddof=1),
                         "delay_sim_mean": np.nanmean([g["delay"] for g in sim]),
                         "hypothesis_ln_alpha_over_lambda": math.log(a) / lam})
    return pd.DataFrame(rows)


def grokking_fit(tab, col: str = "t_test_dmft") -> dict:
    """t_test = A·ln(α)/λ + B/λ + C by least squares: A = 1 is the hypothesis (weights shrink as
    α e^{−λt}); B = −ln α_c sets the scale α_c at which the dynamics turns rich; C is a
    λ-independent lag (the duration of the rich descent itself). Returns A, B, C and their s.e.

    ``tab``: a :func:`grokking_table` (columns alpha, weight_decay and ``col``); rows with a
    non-finite ``col`` are left out. The s.e. are from the residual variance with
    max(n − 3, 1) degrees of freedom; also returns rms_resid and n."""
    ok = np.isfinite(tab[col].values)
    a, lam, y = tab.alpha.values[ok], tab.weight_decay.values[ok], tab[col].values[ok]
    A = np.vstack([np.log(a) / lam, 1 / lam, np.ones_like(y)]).T
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(y) - 3, 1)
    cov = np.linalg.inv(A.T @ A) * (resid @ resid) / dof
    se = np.sqrt(np.diag(cov))
    return {"A": coef[0], "A_se": se[0], "B": coef[1], "B_se": se[1], "C": coef[2], "C_se": se[2],
            "rms_resid": float(np.sqrt(np.mean(resid**2))), "n": int(len(y))}


def grokking_model(fit: dict, alpha, weight_decay):
    """The fitted delay model A·ln(α)/λ + B/λ + C of :func:`grokking_fit` at (α, λ)."""
    return fit["A"] * np.log(alpha) / weight_decay + fit["B"] / weight_decay + fit["C"]


def grokking_fit_summary(tab) -> pd.DataFrame:
    """:func:`grokking_fit` of the DMFT (t_test_dmft) and of the simulations' seed mean
    (t_test_sim_mean): one row each, ``source`` = "dmft" / "simulation"."""
    fit_th, fit_sim = grokking_fit(tab, "t_test_dmft"), grokking_fit(tab, "t_test_sim_mean")
    return pd.DataFrame([{"source": "dmft", **fit_th}, {"source": "simulation", **fit_sim}])


def grokking_curves_measure(sims, dmft) -> dict:
    """The grokking curves' numbers: ``{"table": grokking_table(sims, dmft)}``."""
    return {"table": grokking_table(sims, dmft)}


def grokking_delay_measure(sims, dmft) -> dict:
    """The grokking delay's numbers: the :func:`grokking_table` (``"table"``) and its
    :func:`grokking_fit_summary` (``"summary"``)."""
    tab = grokking_table(sims, dmft)
    return {"table": tab, "summary": grokking_fit_summary(tab)}


# ----------------------------------------------------------------------------------------------
# e. convergence rate vs generalisation (docs/phenomena.md, e)
# ----------------------------------------------------------------------------------------------
def dmft_window(t, below_floor, late_fraction=0.5, min_points=4):
    """The window of ``dln_kernels.dmft.solver.decay_rate``: the last ``late_fraction`` of the recorded
    times before the first one flagged below the noise floor (boolean mask over t)."""
    bad = np.flatnonzero(below_floor)
    end = bad[0] if bad.size else t.size
    w = np.zeros(t.size, bool)
    if end < min_points:
        return w
    lo = t[end - 1] - late_fraction * (t[end - 1] - t[0])
    w[:end] = t[:end] >= lo
    if w.sum() < min_points:
        w[:] = False
        w[end - min_points : end] = True
    return w


def tradeoff_measure(sims, dmft) -> dict:
    """Late exponential rate of E_train against the final E_test (t = t_max), parametric in α, at
    the first δ.

    Simulations: :func:`dln_kernels.measure.analysis.late_decay_rate` per seed on the last ``SIM_TAIL``
    of the span where E_train > ``SIM_VALID``, and again on exactly the DMFT's ``decay_rate``
    window (:func:`dmft_window`). DMFT: ``decay_rate`` ± ``decay_rate_se`` and
    ``decay_rate_spectral`` (NaN if absent) as recorded in the Dataset.

    Returns a dict:

    - ``table``: per α final_e_test_dmft, final_e_test_sim_mean/_sd/_se (over seeds),
      late_rate_sim_mean/_sd, late_window_sim (text "t_start-t_end" of the first seed),
      sim_fit_r2_min, rate_dmft_spectral, window_rate_dmft, window_rate_dmft_se,
      window_rate_sim_mean/_sd, dmft_window (text, "" if empty);
    - ``delta``, ``rho``;
    - ``per_alpha``: per α a dict with ``alpha``, ``e_sim`` (E_train, seeds × time), ``e_dmft``
      (masked below the floor) and ``window`` (the DMFT rate window, mask over time).
    """
    t = sims["time"].values
    delta = float(sims["delta"].values[0])
    rows, per_alpha = [], []
    for a in sims["alpha"].values:
        e_sim = seed_curves(sims, "e_train", alpha=a, delta=delta)
        te_sim = np.array([select_curve(sims, alpha=a, delta=delta, seed=s)["e_test"].values[-1]
                           for s in sims["seed"].values])
        fits = [late_decay_rate(t, e, valid=e > SIM_VALID, tail_fraction=SIM_TAIL) for e in e_sim]
        r_sim = np.array([f.rate for f in fits])
        th = select_curve(dmft, alpha=a, delta=delta)
        w = dmft_window(t, th["e_train_below_floor"].values)
        r_sim_w = np.array([late_decay_rate(t, e, valid=w, tail_fraction=1.0).rate for e in e_sim])
        e_th = masked_curve(dmft, "e_train", alpha=a, delta=delta)
        per_alpha.append({"alpha": a, "e_sim": e_sim, "e_dmft": e_th, "window": w})
        r_th, r_th_se = float(th["decay_rate"].values), float(th["decay_rate_se"].values)
        r_sp = float(th["decay_rate_spectral"].values) if "decay_rate_spectral" in th else np.nan
        te_th = float(th["e_test"].values[-1])
        rows.append({"alpha": a, "final_e_test_dmft": te_th, "final_e_test_sim_mean": te_sim.mean(),
                     "final_e_test_sim_sd": te_sim.std(ddof=1),
                     "final_e_test_sim_se": te_sim.std(ddof=1) / math.sqrt(te_sim.size),
                     "late_rate_sim_mean": np.nanmean(r_sim), "late_rate_sim_sd": np.nanstd(r_sim, ddof=1),
                     "late_window_sim": f"{fits[0].t_start:.3g}-{fits[0].t_end:.3g}",
                     "sim_fit_r2_min": np.nanmin([f.r_squared for f in fits]),
                     "rate_dmft_spectral": r_sp,
                     "window_rate_dmft": r_th, "window_rate_dmft_se": r_th_se,
                     "window_rate_sim_mean": np.nanmean(r_sim_w), "window_rate_sim_sd": np.nanstd(r_sim_w, ddof=1),
                     "dmft_window": f"{t[w][0]:.3g}-{t[w][-1]:.3g}" if w.any() else ""})
    return {"table": pd.DataFrame(rows), "delta": delta, "rho": float(sims["rho"].values[0]), "per_alpha": per_alpha}


# ----------------------------------------------------------------------------------------------
# f. depth-L networks: saddle escape and final error (docs/phenomena.md, f)
# ----------------------------------------------------------------------------------------------
def depth_escape_measure(sims, dmft, prior: dict, n_static: int = 40) -> dict:
    """End of the search phase t_{1/2} and final E_test against α, per depth L, at the first δ.

    t_{1/2}: first time E_train ≤ ½ E_train(0) (``SEARCH_FRACTION``); DMFT value with the
    crossing-time s.e. (:func:`dln_kernels.measure.predictions.crossing_time_se`), simulations per seed
    (mean ± s.e. over seeds; NaN, i.e. "> t_max", where a curve does not cross); leading order
    :func:`dln_kernels.measure.predictions.depth_search_time` = τ_{1/2}·Λ_L(α). Power law: for L ≥ 3 a
    weighted line fit of ln t_{1/2} (DMFT) against ln α over α ≤ ``DEPTH_FIT_MAX_ALPHA``, whose
    slope leading order predicts to be −(L − 2); for L = 2 the fit of t_{1/2} against ln(1/α),
    predicted slope τ_{1/2}/2.

    Final error: E_test at t_max (simulations mean ± s.e. over seeds, DMFT ± s.e.), flagged
    ``converged`` where the DMFT's E_train(t_max) ≤ ``CONVERGED_FRACTION``·E_train(0); only
    there is it the long-time value that the static theory of the depth-L network predicts
    (:func:`dln_kernels.static.depth.solve_static_network`, network ``pm``, λ = 0: the
    minimum-ΣQ_L interpolator for δ < 1).

    Returns a dict: ``table`` (one row per (depth, α): t_half_dmft, t_half_dmft_se,
    t_half_sim_mean, t_half_sim_se, n_sim_crossed, t_half_leading_order, final_e_test_dmft,
    final_e_test_dmft_se, final_e_test_sim_mean, final_e_test_sim_se, final_e_train_ratio_dmft,
    converged, e_test_static), ``fits`` (one row per depth: slope, slope_se, predicted slope, the
    fitted α), ``static_curves`` (per depth: (α grid of ``n_static`` points, static E_test)),
    ``delta``, ``rho``, ``sigma``, ``dt``.
    """
    t, dt = sims["time"].values, sweep_dt(sims)
    alphas = sims["alpha"].values
    delta = float(sims["delta"].values[0])
    rho, sigma = float(sims["rho"].values[0]), float(sims["sigma"].values[0])
    rows, fits, static_curves = [], [], {}
    for L in sims["depth"].values:
        L = int(L)
        pred = np.asarray(depth_search_time(alphas, L, delta, rho, sigma, prior, dt, SEARCH_FRACTION))
        rows_L = [_depth_escape_row(sims, dmft, t, a, delta, L, float(pred[j])) for j, a in enumerate(alphas)]
        st = _depth_static(alphas, delta, rho, sigma, prior, L, n_static)
        for j, row in enumerate(rows_L):
            row["e_test_static"] = float(st.at_alpha[j])
        static_curves[L] = (st.grid, st.e_test)
        rows += rows_L
        t_th = np.array([r["t_half_dmft"] for r in rows_L])
        t_th_se = np.array([r["t_half_dmft_se"] for r in rows_L])
        fits.append(_depth_fit(L, alphas, t_th, t_th_se, pred))
    return {"table": pd.DataFrame(rows), "fits": pd.DataFrame(fits), "static_curves": static_curves,
            "delta": delta, "rho": rho, "sigma": sigma, "dt": dt}


def _depth_escape_row(sims, dmft, t, a, delta: float, L: int, pred: float) -> dict:
    """The table row of :func:`depth_escape_measure` at (L, α), without ``e_test_static``;
    ``pred``: the leading-order t_{1/2}."""
    f = SEARCH_FRACTION
    th = select_curve(dmft, alpha=a, delta=delta, depth=L)
    e_tr, e_tr_se = th["e_train"].values.astype(float), th["e_train_se"].values.astype(float)
    t_sim = np.array([crossing_time(t, e, f * e[0]) for e in seed_curves(sims, "e_train", alpha=a, delta=delta, depth=L)])
    te_sim = seed_curves(sims, "e_test", alpha=a, delta=delta, depth=L)[:, -1]
    ok = np.isfinite(t_sim)
    ratio = float(e_tr[-1] / e_tr[0])
    return {
        "depth": L, "alpha": float(a),
        "t_half_dmft": crossing_time(t, e_tr, f * e_tr[0]), "t_half_dmft_se": crossing_time_se(t, e_tr, e_tr_se, f * e_tr[0]),
        "t_half_sim_mean": float(t_sim[ok].mean()) if ok.all() else np.nan,
        "t_half_sim_se": float(t_sim.std(ddof=1) / math.sqrt(t_sim.size)) if ok.all() and t_sim.size > 1 else np.nan,
        "n_sim_crossed": int(ok.sum()),
        "t_half_leading_order": pred,
        "final_e_test_dmft": float(th["e_test"].values[-1]),
        "final_e_test_dmft_se": float(th["e_test_se"].values[-1]),
        "final_e_test_sim_mean": float(te_sim.mean()),
        "final_e_test_sim_se": float(te_sim.std(ddof=1) / math.sqrt(te_sim.size)) if te_sim.size > 1 else np.nan,
        "final_e_train_ratio_dmft": ratio,
        "converged": bool(ratio <= CONVERGED_FRACTION),
    }


class _StaticCurve(NamedTuple):
    """The depth-L static E_test at the sweep's α (``at_alpha``) and on a dense α ``grid``."""

    at_alpha: np.ndarray
    grid: np.ndarray
    e_test: np.ndarray


def _depth_static(alphas, delta: float, rho: float, sigma: float, prior: dict, L: int, n_static: int) -> _StaticCurve:
    """:func:`dln_kernels.static.depth.solve_static_network` (network ``pm``, depth L, λ = 0) at
    the sweep's α and on ``n_static`` geometric points over [0.8 min α, 1.25 max α], one call."""
    from dln_kernels.static.depth import solve_static_network

    grid = np.geomspace(alphas.min() * 0.8, alphas.max() * 1.25, n_static)
    e = solve_static_network(np.concatenate([alphas, grid]), delta, rho, sigma, 0.0, prior=prior,
                             network="pm", depth=L)["e_test"]
    return _StaticCurve(at_alpha=e[:alphas.size], grid=grid, e_test=np.asarray(e[alphas.size:], float))


def _depth_fit(L: int, alphas, t_th, t_th_se, pred) -> dict:
    """The power-law fit of the DMFT t_{1/2} over α ≤ ``DEPTH_FIT_MAX_ALPHA`` (a row of ``fits``):
    L = 2 against ln(1/α) (predicted slope τ_{1/2}/2), L ≥ 3 log–log (predicted −(L − 2))."""
    sel = alphas <= DEPTH_FIT_MAX_ALPHA
    if L == 2:
        fit = line_fit(np.log(1 / alphas[sel]), t_th[sel], np.maximum(t_th_se[sel], 1e-3))
        slope_pred = float(pred[0] / np.log(1 / alphas[0]))  # τ/2, the slope in ln(1/α)
        against = "ln(1/alpha)"
    else:
        fit = line_fit(np.log(alphas[sel]), np.log(t_th[sel]), np.maximum(t_th_se[sel] / t_th[sel], 1e-3))
        slope_pred, against = -(L - 2.0), "ln(alpha) [log-log]"
    return {"depth": L, "fit_of_t_half_dmft_against": against, "slope": fit["slope"],
            "slope_se": fit["slope_se"], "slope_leading_order": slope_pred, "n_alpha_fitted": fit["n"],
            "alpha_max_fitted": DEPTH_FIT_MAX_ALPHA}


# ----------------------------------------------------------------------------------------------
# g. Gaussian universality: simulations on other designs against the isotropic DMFT and the DMFT
#    of each design's spectrum
# ----------------------------------------------------------------------------------------------
UNIVERSALITY_VARS = ("e_train", "e_test")


def relative_deviation(sim, theory) -> np.ndarray:
    """|sim − theory| / theory per time, NaN where the theory is NaN (below its noise floor) or
    not positive. Shapes broadcast; dimensionless."""
    sim, theory = np.asarray(sim, dtype=float), np.asarray(theory, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(theory > 0, np.abs(sim - theory) / theory, np.nan)


def median_relative_deviation(t, sim, theory) -> float:
    """Median over the recorded times t > 0 of :func:`relative_deviation` (times where the
    theory is NaN are left out); NaN if none is left. t = 0 is left out: there both are the
    initial error, and the simulation's differs from the DMFT's only by the draw of β*. With
    log-spaced recorded times every decade of t weighs the same, so the median is dominated by
    the early dynamics when most of the decades are early; the late end is ``final_rel_dev``."""
    dev = relative_deviation(sim, theory)[np.asarray(t) > 0]
    dev = dev[np.isfinite(dev)]
    return float(np.median(dev)) if dev.size else math.nan


def spectrum_share(sim, iso, spec, se=(0.0, 0.0, 0.0)) -> tuple:
    """How much of the gap between the simulation and the isotropic DMFT the design's spectrum
    explains: (gap, spectrum gap, share, share s.e.) with gap = ln(sim/iso), spectrum gap =
    ln(spec/iso), share = ln(spec/iso)/ln(sim/iso) (1: all of it; 0: none, e.g. a flat spectrum;
    > 1: overshoots; < 0: the wrong way). Scalars > 0 (E_train or E_test at one time); ``se``: the
    standard errors of (sim, iso, spec), propagated to first order as independent (conservative
    for the two DMFTs, which share their random numbers; 0 for a flat spectrum, whose spectrum
    DMFT *is* the isotropic solve). NaN where a value is not positive and finite, and a share of
    NaN where the gap is 0."""
    vals = np.array([sim, iso, spec], dtype=float)
    if not np.all(np.isfinite(vals) & (vals > 0)):
        return math.nan, math.nan, math.nan, math.nan
    rel = np.asarray(se, dtype=float) / vals  # s.e. of the logarithms
    gap, spec_gap = math.log(sim / iso), math.log(spec / iso)
    if gap == 0:
        return gap, spec_gap, math.nan, math.nan
    grads = np.array([-spec_gap / gap**2, (spec_gap - gap) / gap**2, 1.0 / gap])  # d share / d ln(sim, iso, spec)
    return gap, spec_gap, spec_gap / gap, float(np.sqrt(np.nansum((grads * rel) ** 2)))


def _dmft_of(dmft, design: str):
    """(isotropic DMFT, DMFT of ``design``'s spectrum or None) out of dmft.nc: its ``design`` dim
    (labels: the designs and ``isotropic``, ``designs.ISOTROPIC``), or a file without one (the
    isotropic DMFT only, as written before the DMFT per design)."""
    from dln_kernels.model.designs import ISOTROPIC

    if "design" not in dmft.dims:
        return dmft, None
    labels = [str(v) for v in dmft["design"].values]
    return dmft.sel(design=ISOTROPIC), (dmft.sel(design=design) if design in labels else None)


def _final_dmft(dmft, var: str, alpha, delta) -> tuple:
    """(value, standard error) of a DMFT curve at the last time, NaN where masked (its floor)."""
    if dmft is None:
        return math.nan, math.nan
    value = masked_curve(dmft, var, alpha=alpha, delta=delta)[-1]
    se = select_curve(dmft, alpha=alpha, delta=delta)[f"{var}_se"].values[-1] if f"{var}_se" in dmft else math.nan
    return float(value), float(se)


def _universality_row(t, mean, se, iso, spec, var, flat) -> dict:
    """The numbers of one (design, α, δ, observable): deviations from the isotropic DMFT over time
    and at the last time, the three final predictions and the share of the gap the spectrum
    explains (:func:`spectrum_share`). ``iso``, ``spec``: (curve, final value, final s.e.)."""
    dev = relative_deviation(mean, iso[0])[t > 0]
    errs = (se[-1], 0.0, 0.0) if flat else (se[-1], iso[2], spec[2])  # flat: the spectrum DMFT *is* the isotropic one
    gap, spec_gap, share, share_se = spectrum_share(mean[-1], iso[1], spec[1], errs)
    return {"observable": var, "median_rel_dev": median_relative_deviation(t, mean, iso[0]),
            "max_rel_dev": float(np.nanmax(dev)) if np.isfinite(dev).any() else math.nan,
            "final_rel_dev": float(relative_deviation(mean[-1], iso[0][-1])),
            "final_sim": float(mean[-1]), "final_sim_se": float(se[-1]),
            "final_dmft": iso[1], "final_dmft_se": iso[2],
            "final_dmft_spectrum": spec[1], "final_dmft_spectrum_se": spec[2],
            "final_rel_dev_spectrum": float(relative_deviation(mean[-1], spec[1])),
            "gap": gap, "gap_se": float(se[-1] / mean[-1]), "gap_spectrum": spec_gap, "share": share, "share_se": share_se}


def _share_from_start(runs, iso, spec) -> dict:
    """:func:`spectrum_share` of the errors relative to their own first recorded value (t = 0),
    E(t_last)/E(0): the simulation's as the seed mean of the per-seed ratios (so the draw of β*
    and X, which sets E(0), leaves the gap), the DMFTs' from their curves. ``runs`` (seeds,
    times); ``iso``, ``spec`` (times) or None. The s.e. counts the seeds only (each DMFT ratio
    shares one replica's paths at both times)."""
    ratios = runs[:, -1] / runs[:, 0]
    se = float(ratios.std(ddof=1) / math.sqrt(ratios.size)) if ratios.size > 1 else math.nan
    spec_ratio = math.nan if spec is None else spec[-1] / spec[0]
    gap, spec_gap, share, share_se = spectrum_share(float(ratios.mean()), iso[-1] / iso[0], spec_ratio, (se, 0.0, 0.0))
    return {"gap_from_start": gap, "gap_from_start_se": se / float(ratios.mean()), "gap_spectrum_from_start": spec_gap,
            "share_from_start": share, "share_from_start_se": share_se}


def universality_measure(sims, dmft) -> dict:
    """Per design, α, δ and observable (E_train, E_test): the seed-mean simulation curve against
    two DMFT predictions at the same (α, δ, ρ, σ, λ), the isotropic (Gaussian) DMFT and the DMFT
    of the design's own spectrum (dmft.nc's ``design`` dim, docs/file_formats.md); the relative
    deviation |sim − DMFT| / DMFT from the isotropic one (median over t > 0,
    :func:`median_relative_deviation`, maximum, last time) and the share of the final gap that the
    spectrum explains (:func:`spectrum_share`, at the last time).

    ``sims`` must have the ``design`` dim (labels = design names); ``d`` is read from its attribute
    ``designs``, NaN if absent. A ``dmft`` without a ``design`` dim is the isotropic DMFT only (the
    spectrum columns are NaN). ρ, σ, λ at their first value (:func:`select_curve`).

    The same share of the errors relative to their values at t = 0 (``*_from_start``,
    :func:`_share_from_start`) leaves out the draw of β* and X that sets E(0): at an early last
    time, when E_test has hardly moved, that draw is most of the plain gap.

    Returns {"table": DataFrame (design, d, flat_spectrum, alpha, delta, observable,
    median_rel_dev, max_rel_dev, final_rel_dev, final_sim, final_sim_se, final_dmft,
    final_dmft_se, final_dmft_spectrum, final_dmft_spectrum_se, final_rel_dev_spectrum, gap, gap_se
    (the simulation's s.e. of ln sim), gap_spectrum, share, share_se, gap_from_start,
    gap_from_start_se, gap_spectrum_from_start, share_from_start, share_from_start_se), "curves": {(design, alpha, delta, var): (sim seed mean, sim
    seed s.e., isotropic DMFT, spectrum DMFT or None)}, "t": times}. Errors are dimensionless,
    gaps natural logarithms. The seed mean is arithmetic: the DMFT predicts the mean error of the
    d → ∞ limit, where it self-averages.
    """
    import json

    # one depth (the first; a sweep over designs has depth 2): curves over time only
    sims, dmft = (ds.isel(depth=0) if "depth" in ds.dims else ds for ds in (sims, dmft))
    t = sims["time"].values
    dims = {e["design"]["name"]: e["d"] for e in json.loads(sims.attrs.get("designs", "[]"))}
    rows, curves = [], {}
    for design, alpha, delta in itertools.product(*(sims[a].values for a in ("design", "alpha", "delta"))):
        iso_ds, spec_ds = _dmft_of(dmft, str(design))
        flat = spec_ds is not None and all(np.array_equal(iso_ds[v].values, spec_ds[v].values) for v in UNIVERSALITY_VARS)
        for var in UNIVERSALITY_VARS:
            runs = seed_curves(sims.sel(design=design), var, alpha=alpha, delta=delta)
            mean = runs.mean(0)
            se = runs.std(0, ddof=1) / math.sqrt(runs.shape[0]) if runs.shape[0] > 1 else np.full_like(mean, np.nan)
            iso = masked_curve(iso_ds, var, alpha=alpha, delta=delta)
            spec = None if spec_ds is None else masked_curve(spec_ds, var, alpha=alpha, delta=delta)
            curves[(str(design), float(alpha), float(delta), var)] = (mean, se, iso, spec)
            row = _universality_row(t, mean, se, (iso, *_final_dmft(iso_ds, var, alpha, delta)),
                                    (spec, *_final_dmft(spec_ds, var, alpha, delta)), var, flat)
            rows.append({"design": str(design), "d": dims.get(str(design), math.nan), "flat_spectrum": flat,
                         "alpha": float(alpha), "delta": float(delta), **row,
                         **_share_from_start(runs, iso, spec)})
    return {"table": pd.DataFrame(rows), "curves": curves, "t": t}


# ----------------------------------------------------------------------------------------------
# h. mini-batch SGD: does the selection noise act like a smaller α? (docs/phenomena.md, h; theory.md §5)
# ----------------------------------------------------------------------------------------------
def effective_alpha(alphas, e_ref, e) -> np.ndarray:
    """α_eff such that the reference (full-batch) final error curve ``e_ref(α)`` equals ``e``:
    linear interpolation in (ln α, E) on the reference curve. Needs ``e_ref`` strictly monotone
    in α (else all NaN); NaN where ``e`` lies outside the reference range.

    Shapes: alphas, e_ref (A,) with alphas ascending; e (...,). Returns α_eff shaped like ``e``.
    """
    alphas, e_ref, e = (np.asarray(x, dtype=float) for x in (alphas, e_ref, e))
    d = np.diff(e_ref)
    if not (np.all(d > 0) or np.all(d < 0)) or not np.all(np.isfinite(e_ref)):
        return np.full(e.shape, np.nan)
    order = np.argsort(e_ref)
    la = np.interp(e, e_ref[order], np.log(alphas)[order], left=np.nan, right=np.nan)
    return np.exp(la)


class FinalError(NamedTuple):
    """Final E_test of one (b, α) point: simulation seed mean and standard error, DMFT value and
    replica standard error, and whether the DMFT value is masked (below its floor)."""

    sim_mean: float
    sim_se: float
    dmft: float
    dmft_se: float
    dmft_masked: bool


def sgd_noise_measure(sims, dmft) -> dict:
    """Final E_test vs α for each batch fraction b at the first δ (ρ, σ, λ at their first value),
    simulation and DMFT, and the effective initialisation of each SGD run: the α_eff at which
    full-batch GD (b = the largest b of the sweep, 1 in the shipped sweep) ends at the same
    E_test (:func:`effective_alpha`, on the simulations' seed mean and on the DMFT separately).
    α_eff/α < 1: the noise acts like a smaller initialisation. DMFT values flagged by
    ``e_test_below_floor`` (replica floor, and convergence in N where the sweep checks it) give
    no α_eff and are left out of the DMFT reference curve.

    Returns a dict: ``table`` (per (b, α): final_e_test_sim_mean, final_e_test_sim_se,
    final_e_test_dmft, final_e_test_dmft_se, dmft_below_floor, alpha_eff_sim, alpha_eff_dmft
    and their ratios to α), ``delta``, ``rho``, ``t_final``, ``b_ref``.
    """
    delta = float(sims["delta"].values[0])
    alphas = np.sort(sims["alpha"].values.astype(float))
    bs = np.sort(sims["batch_fraction"].values.astype(float))
    b_ref = float(bs[-1])
    fin = {}
    for b in bs:
        for a in alphas:
            te = seed_curves(sims, "e_test", alpha=a, delta=delta, batch_fraction=b)[:, -1]
            th = select_curve(dmft, alpha=a, delta=delta, batch_fraction=b)
            fin[(b, a)] = FinalError(
                sim_mean=te.mean(), sim_se=te.std(ddof=1) / math.sqrt(te.size) if te.size > 1 else np.nan,
                dmft=float(th["e_test"].values[-1]), dmft_se=float(th["e_test_se"].values[-1]),
                dmft_masked=bool(th["e_test_below_floor"].values[-1]) if "e_test_below_floor" in th else False)
    ref_sim = np.array([fin[(b_ref, a)].sim_mean for a in alphas])
    ref_dmft = np.array([fin[(b_ref, a)].dmft for a in alphas])
    ref_ok = ~np.array([fin[(b_ref, a)].dmft_masked for a in alphas])  # masked DMFT values are not a reference
    rows = []
    for b in bs:
        e_sim = np.array([fin[(b, a)].sim_mean for a in alphas])
        e_th = np.array([np.nan if fin[(b, a)].dmft_masked else fin[(b, a)].dmft for a in alphas])
        eff_sim, eff_th = effective_alpha(alphas, ref_sim, e_sim), effective_alpha(alphas[ref_ok], ref_dmft[ref_ok], e_th)
        for i, a in enumerate(alphas):
            fe = fin[(b, a)]
            rows.append({"batch_fraction": b, "alpha": a, "final_e_test_sim_mean": fe.sim_mean,
                         "final_e_test_sim_se": fe.sim_se, "final_e_test_dmft": fe.dmft,
                         "final_e_test_dmft_se": fe.dmft_se, "dmft_below_floor": fe.dmft_masked,
                         "alpha_eff_sim": eff_sim[i], "alpha_eff_dmft": eff_th[i],
                         "alpha_eff_ratio_sim": eff_sim[i] / a, "alpha_eff_ratio_dmft": eff_th[i] / a})
    rho = float(sims["rho"].values[0]) if "rho" in sims.dims else float("nan")
    return {"table": pd.DataFrame(rows), "delta": delta, "rho": rho, "t_final": float(sims["time"].values[-1]),
            "b_ref": b_ref}


# ----------------------------------------------------------------------------------------------
# (g) step size vs solution: the effective initialisation of discrete GD (Even et al. 2023)
# ----------------------------------------------------------------------------------------------
def effective_scale_summary(scale, alpha: float) -> dict:
    """Summary of the effective initialisation c_i = α²·Π_k (1 − dt² g_{k,i}²) of ``uv`` runs
    (``simulate_grid(save_scale=True)``'s ``scale_final``, λ = 0), over the last axis (coordinates)
    and any leading axes (seeds).

    Returns ``alpha_eff`` = √(exp(mean ln c)) (the uniform scale with the same geometric mean,
    at which the static theory is evaluated), ``gain_mean`` = mean of −ln(c/α²) (the "gain" of
    Even et al.), and the 10 / 50 / 90 % quantiles of c/α². Raises ValueError for c ≤ 0 (a step
    past the (1 − dt² g²) > 0 regime, where the scale changes sign).
    """
    scale = np.asarray(scale, dtype=float).ravel()
    if np.any(scale <= 0):
        raise ValueError(f"scale: {int(np.sum(scale <= 0))} coordinates with u² − v² ≤ 0 (dt·|g| ≥ 1 at some step)")
    eff = effective_scale_runs(scale, float(alpha))  # the pooled coordinates as one run
    q10, q50, q90 = np.quantile(scale / float(alpha) ** 2, [0.1, 0.5, 0.9])
    return {"alpha_eff": float(eff["alpha_eff"]), "gain_mean": float(eff["gain_mean"]),
            "c_ratio_q10": float(q10), "c_ratio_median": float(q50), "c_ratio_q90": float(q90)}


# ----------------------------------------------------------------------------------------------
# a + b. one timescale sweep from the search phase to the lazy phase (docs/phenomena.md, a–b)
# ----------------------------------------------------------------------------------------------
def timescales_measure(sims, dmft, prior: dict) -> dict:
    """t_{1/2} (first time E_train ≤ ½ E_train(0)) over the whole α range of a sweep whose steps
    follow α (``schedule: alpha_rule``), per δ, against both leading orders:

    - search phase (small α): t_{1/2} ≈ s·ln(1/α) + c with the leading-order slope
      s = :func:`dln_kernels.measure.predictions.search_slope` and c matched to the DMFT's mean over the
      fitted α ≤ ``SEARCH_FIT_MAX_ALPHA`` (the slope is the prediction, the offset is not);
    - lazy phase (large α): :func:`lazy_time_theory`, linear regression with step dt·α² at each
      α's own dt (t ∝ 1/α² as dt·α² → 0).

    The crossover α_× is where the two leading orders meet (geometric interpolation between
    grid values; NaN if they do not cross on the grid).

    Returns a dict: ``table`` (per (δ, α): dt, t_end, t_half_dmft ± se, t_half_sim mean ± se
    over seeds, search and lazy predictions; then per δ a row with α = NaN and alpha_cross),
    ``per_delta`` (arrays for the figure: ``t_dmft``, ``t_dmft_se``, ``t_sim`` seeds × α,
    ``t_sim_mean``, ``t_sim_se`` (per α, over the seeds that crossed), ``search``, ``lazy``,
    ``alpha_cross``, ``times`` (α × n_times), ``e_dmft`` (α × n_times, E_train/E_train(0), NaN
    below the floor)), ``alpha``, ``rho``, ``sigma``.
    """
    alphas = sims["alpha"].values.astype(float)
    rho, sigma = float(sims["rho"].values[0]), float(sims["sigma"].values[0])
    fit = alphas <= SEARCH_FIT_MAX_ALPHA
    rows, per_delta = [], []
    for delta in sims["delta"].values:
        t = curve_times(sims, alphas, delta)
        dts = t[:, -1] / float(sims["step"].values[-1])
        e_th, se_th, t_th, t_th_se, curves = train_crossings(sims, dmft, alphas, delta, t, SEARCH_FRACTION)
        t_sim = seed_crossing_times(t, curves, SEARCH_FRACTION)
        slope = search_slope(SEARCH_FRACTION, delta, rho, sigma, prior, float(np.median(dts[fit])) if fit.any() else 0.0)
        L = np.log(1 / alphas)
        offset = float(np.nanmean(t_th[fit] - slope * L[fit])) if fit.any() else np.nan
        search = np.where(alphas <= SEARCH_PHASE_MAX_ALPHA, slope * L + offset, np.nan)
        lazy = lazy_time_theory(sims, prior, delta, alphas, SEARCH_FRACTION)
        diff = np.log(np.maximum(slope * L + offset, 1e-300)) - np.log(lazy)
        cross = np.nan
        for i in range(len(alphas) - 1):  # lazy time falls below the search asymptote's value
            if np.isfinite(diff[i]) and np.isfinite(diff[i + 1]) and diff[i] * diff[i + 1] < 0:
                w = diff[i] / (diff[i] - diff[i + 1])
                cross = float(np.exp(np.log(alphas[i]) + w * (np.log(alphas[i + 1]) - np.log(alphas[i]))))
                break
        e_norm = np.array([masked_curve(dmft, "e_train", alpha=a, delta=delta) for a in alphas])
        e_norm = e_norm / e_th[:, :1]
        per_delta.append({"delta": delta, "t_dmft": t_th, "t_dmft_se": t_th_se, "t_sim": t_sim, "search": search,
                          "lazy": lazy, "alpha_cross": cross, "times": t, "e_dmft": e_norm, "dt": dts,
                          "search_slope": slope})
        sim_stats = [seed_mean_se(t_sim[:, i]) for i in range(len(alphas))]
        t_sim_mean = np.array([st.mean for st in sim_stats])
        t_sim_se = np.array([st.se for st in sim_stats])
        per_delta[-1].update(t_sim_mean=t_sim_mean, t_sim_se=t_sim_se)
        for i, a in enumerate(alphas):
            rows.append({"delta": delta, "alpha": a, "dt": dts[i], "t_end": t[i, -1], "t_half_dmft": t_th[i],
                         "t_half_dmft_se": t_th_se[i], "t_half_sim_mean": t_sim_mean[i],
                         "t_half_sim_se": t_sim_se[i],
                         "t_half_search_leading_order": search[i], "t_half_lazy_leading_order": lazy[i]})
        rows.append({"delta": delta, "alpha": np.nan, "alpha_cross": cross, "search_slope": slope})
    return {"table": pd.DataFrame(rows), "per_delta": per_delta, "alpha": alphas, "rho": rho, "sigma": sigma}


# ----------------------------------------------------------------------------------------------
# i. step size vs solution: final E_test vs dt against the effective initialisation (Even et al.
#    2023; docs/phenomena.md, i)
# ----------------------------------------------------------------------------------------------
def _static_e_test(alpha, delta, rho, sigma, weight_decay, prior):
    """The default ``static`` of :func:`step_size_measure`: ``static.solve_static``'s E_test, NaN
    where it did not converge."""
    from dln_kernels.static.solver import solve_static

    res = solve_static(alpha, delta, rho, sigma, weight_decay, prior)
    return np.where(res["converged"], res["e_test"], np.nan)


def _first_value(ds, axis: str) -> float:
    return float(ds[axis].values[0]) if axis in ds.dims else float("nan")


@dataclass(frozen=True)
class _StepSizeAxes:
    """The axes of a step-size sweep: δ, ρ, σ, λ at their first value (σ, λ: 0 without the axis),
    and the sorted batch fractions, α and step multipliers s (``[1.0]`` without the axis)."""

    delta: float
    rho: float
    sigma: float
    weight_decay: float
    batch_fractions: np.ndarray
    alphas: np.ndarray
    dt_scales: np.ndarray
    has_batch_fraction: bool
    has_dt_scale: bool

    def selection(self, b, a, s) -> dict:
        """The coordinates of the point (b, α, s) (only the axes the sweep has)."""
        sel = {"alpha": a, "delta": self.delta}
        if self.has_batch_fraction:
            sel["batch_fraction"] = b
        if self.has_dt_scale:
            sel["dt_scale"] = s
        return sel


def _step_size_axes(sims) -> _StepSizeAxes:
    has_b, has_s = "batch_fraction" in sims.dims, "dt_scale" in sims.dims
    return _StepSizeAxes(
        delta=_first_value(sims, "delta"), rho=_first_value(sims, "rho"),
        sigma=_first_value(sims, "sigma") if "sigma" in sims.dims else 0.0,
        weight_decay=_first_value(sims, "weight_decay") if "weight_decay" in sims.dims else 0.0,
        batch_fractions=np.sort(sims["batch_fraction"].values.astype(float)) if has_b else np.array([1.0]),
        alphas=np.sort(sims["alpha"].values.astype(float)),
        dt_scales=np.sort(sims["dt_scale"].values.astype(float)) if has_s else np.array([1.0]),
        has_batch_fraction=has_b, has_dt_scale=has_s)


@dataclass(frozen=True)
class _StepRun:
    """The recorded curves of one (b, α, s) point: times ``t`` (1-D: every grid axis is selected),
    its constant step ``dt``, the simulations' E_test ``te`` (seeds × times) and α_eff/α per seed,
    ``sim`` and ``dmft`` (the point's parts of the Datasets)."""

    t: np.ndarray
    dt: float
    te: np.ndarray
    alpha_eff_ratio: np.ndarray
    sim: object
    dmft: object

    @property
    def final(self) -> np.ndarray:
        """Final E_test per seed."""
        return self.te[:, -1]

    @property
    def dmft_final(self) -> float:
        return float(self.dmft["e_test"].values[-1])

    def sim_at(self, t: float) -> np.ndarray:
        """E_test per seed at time t (linear in t between recorded times)."""
        return np.array([np.interp(t, self.t, row) for row in self.te])

    def dmft_at(self, t: float) -> float:
        return float(np.interp(t, self.t, np.asarray(self.dmft["e_test"].values, dtype=float)))


def _step_run(sims, dmft, sel: dict, a: float) -> _StepRun:
    sub = select_curve(sims, **sel)
    t = np.asarray(sub["time"].values, dtype=float)
    return _StepRun(t=t, dt=float(t[-1] / float(sub["step"].values[-1])),
                    te=np.asarray(sub["e_test"].transpose("seed", ...).values, dtype=float),
                    alpha_eff_ratio=np.asarray(sub["alpha_eff"].values, dtype=float) / a,
                    sim=sub, dmft=select_curve(dmft, **sel))


def _step_row(b, a, s, run: _StepRun, ref: _StepRun, bound: float) -> dict:
    """The table row of :func:`step_size_measure` at (b, α, s); ``ref``: the run of the smallest
    step at the same (b, α), against which the paired changes are taken."""
    t_same = float(ref.t[-1])
    ch_t, ch_t_se = _mean_se(run.sim_at(t_same) - ref.sim_at(t_same))
    m, se = _mean_se(run.final)
    ch, ch_se = _mean_se(run.final - ref.final)
    ae_m, ae_se = _mean_se(run.alpha_eff_ratio)
    mean_curve = run.te.mean(0)
    mid = int(np.argmin(np.abs(run.t - 0.5 * run.t[-1])))
    th, e_th = run.dmft, run.dmft_final
    return {
        "batch_fraction": b, "alpha": a, "dt_scale": s, "dt": run.dt, "dt_over_bound": run.dt / bound,
        "t_end": float(run.t[-1]), "e_test_sim": m, "e_test_sim_se": se,
        "e_test_dmft": e_th, "e_test_dmft_se": float(th["e_test_se"].values[-1]),
        "dmft_below_floor": bool(th["e_test_below_floor"].values[-1]) if "e_test_below_floor" in th else False,
        "change_sim": ch, "change_sim_se": ch_se, "rel_change_sim": ch / float(np.mean(ref.final)),
        "change_dmft": e_th - ref.dmft_final,
        "settle_sim": float((mean_curve[-1] - mean_curve[mid]) / mean_curve[-1]),
        "t_same": t_same, "change_same_t_sim": ch_t, "change_same_t_sim_se": ch_t_se,
        "change_same_t_dmft": run.dmft_at(t_same) - ref.dmft_at(t_same),
        "alpha_eff_ratio_sim": ae_m, "alpha_eff_ratio_sim_se": ae_se,
        "gain_mean_sim": seed_mean_se(run.sim["gain_mean"].values).mean if "gain_mean" in run.sim else float("nan"),
        "alpha_eff_ratio_dmft": float(th["alpha_eff"].values) / a,
    }


def _add_static_columns(tab, static, axes: _StepSizeAxes, prior):
    """The static theory at α and at both effective scales (one vectorised call of ``static``),
    and the changes it predicts (columns of :func:`step_size_measure`, added to ``tab``)."""
    pts = np.concatenate([tab.alpha.values, tab.alpha.values * tab.alpha_eff_ratio_sim.values,
                          tab.alpha.values * tab.alpha_eff_ratio_dmft.values])
    ok = np.isfinite(pts) & (pts > 0)
    e = np.full(pts.shape, np.nan)
    if np.any(ok):
        e[ok] = np.asarray(static(pts[ok], axes.delta, axes.rho, axes.sigma, axes.weight_decay, prior), dtype=float)
    n = len(tab)
    tab["e_test_static_alpha"] = e[:n]
    tab["e_test_static_alpha_eff"] = e[n:2 * n]
    tab["e_test_static_alpha_eff_dmft"] = e[2 * n:]
    tab["static_change"] = tab.e_test_static_alpha_eff - tab.e_test_static_alpha
    first_eff = tab.groupby(["batch_fraction", "alpha"]).e_test_static_alpha_eff.transform("first")  # s_min: rows by s
    tab["static_change_from_min"] = tab.e_test_static_alpha_eff - first_eff


def step_size_measure(sims, dmft, prior: dict, static=None) -> dict:
    """Final E_test vs the step size of uv GD / SGD against the static (gradient-flow) theory at
    the initial scale α and at the effective scale α_eff (docs/phenomena.md, i).

    Reads a sweep with per-point steps (axis ``dt_scale``, any ``batch_fraction``) and the opt-in
    observable ``alpha_eff`` (sweep key ``effective_scale``: per simulated run ``alpha_eff`` and
    ``gain_mean``, per DMFT point ``alpha_eff``); δ, ρ, σ, λ at their first value. Per (b, α, s):

    - ``dt`` = time[-1]/step[-1] of the point (constant per point), ``dt_over_bound`` = dt over
      ``schedule.stability_bound`` of the point (uv, depth 2, its b), ``t_end``;
    - ``e_test_sim`` ± ``e_test_sim_se``: final E_test, seed mean ± se; ``e_test_dmft`` ± se and
      ``dmft_below_floor``;
    - ``change_sim`` ± ``change_sim_se``: paired change E_test(s) − E_test(s_min) per seed (the runs
      of a seed share X, ξ, the teacher and, for b < 1, the selection uniforms, so the seed-to-seed
      spread cancels), ``rel_change_sim`` = change / E_test(s_min); ``change_dmft`` (one random
      stream for every point: also correlated, no se stored for the difference);
    - ``settle_sim``: (E_test(t_end) − E_test(t_mid))/E_test(t_end) of the seed mean, t_mid the
      recorded time nearest t_end/2 (a small value: the final E_test is settled);
    - ``t_same``: the end time of the smallest step (every point runs the same number of steps,
      so larger steps run longer); ``change_same_t_sim`` ± se (paired, per seed) and
      ``change_same_t_dmft``: the same changes at t = t_same (curves interpolated linearly in t
      between recorded times), i.e. the effect of the step at equal time, without the longer run;
    - ``alpha_eff_ratio_sim`` ± se (seed mean of α_eff/α), ``gain_mean_sim`` (seed mean of the mean
      gain −ln(c_i/α²)), ``alpha_eff_ratio_dmft``;
    - ``e_test_static_alpha``, ``e_test_static_alpha_eff`` (at the simulations' seed-mean α_eff),
      ``e_test_static_alpha_eff_dmft`` (at the DMFT's), ``static_change`` = static(α_eff) −
      static(α): the change the effective-initialisation picture predicts from gradient flow, and
      ``static_change_from_min`` = static(α_eff(s)) − static(α_eff(s_min)): its prediction of
      ``change_sim``.

    ``static``: a function (alpha array, delta, rho, sigma, weight_decay, prior) → e_test array,
    default ``static.solve_static``'s ``e_test`` (NaN where it did not converge); one call for all
    points. Returns a dict: ``table`` (pandas, rows ordered by b, α, s), ``delta``, ``rho``.
    Raises KeyError if the Datasets lack ``alpha_eff`` (a sweep without ``effective_scale: true``).
    """
    static = _static_e_test if static is None else static
    for ds, what in ((sims, "simulations"), (dmft, "DMFT")):
        if "alpha_eff" not in ds:
            raise KeyError(f"alpha_eff: not in the {what} (run the sweep with effective_scale: true)")
    axes = _step_size_axes(sims)
    rows = []
    for b in axes.batch_fractions:
        for a in axes.alphas:
            runs = [_step_run(sims, dmft, axes.selection(b, a, s), a) for s in axes.dt_scales]
            bound = stability_bound("dln", a, axes.delta, axes.weight_decay, prior, "uv", 2, b)
            rows += [_step_row(b, a, s, run, runs[0], bound) for s, run in zip(axes.dt_scales, runs)]
    tab = pd.DataFrame(rows)
    _add_static_columns(tab, static, axes, prior)
    return {"table": tab, "delta": axes.delta, "rho": axes.rho}
