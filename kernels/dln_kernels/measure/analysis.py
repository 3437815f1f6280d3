"""Trajectory analysis: timescales, rates and plateaus extracted from error curves.

Every function takes a time axis ``t`` (increasing, t[0] may be 0) and a curve ``e`` of the same
length: a single run, a seed mean or a DMFT curve alike. Crossing times interpolate linearly in
(t, log e) between samples, so they do not snap to the (often log-spaced) recorded times.
A quantity that does not exist in the data (a level never reached, no valid tail) is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def crossing_time(t, e, level: float) -> float:
    """First time at which ``e`` falls to ``level`` or below (NaN if it never does)."""
    t, e = np.asarray(t, float), np.asarray(e, float)
    below = np.flatnonzero(e <= level)
    if below.size == 0:
        return float("nan")
    k = below[0]
    if k == 0:
        return float(t[0])
    e0, e1 = e[k - 1], e[k]
    if e1 <= 0 or e0 <= 0:
        return float(t[k])
    w = (np.log(e0) - np.log(level)) / (np.log(e0) - np.log(e1))
    return float(t[k - 1] + w * (t[k] - t[k - 1]))


def search_end_time(t, e_train, fraction: float = 0.5) -> float:
    """End of the search phase: first time E_train ≤ ``fraction`` × E_train(0)."""
    return crossing_time(t, e_train, fraction * np.asarray(e_train, float)[0])


def descent_duration(t, e_train, start_fraction: float = 0.5, end_fraction: float = 1e-2) -> float:
    """Duration of the descent: from E_train = start·E(0) to E_train = end·E(0)."""
    e0 = np.asarray(e_train, float)[0]
    return crossing_time(t, e_train, end_fraction * e0) - crossing_time(t, e_train, start_fraction * e0)


def lazy_time(t, e_train, fraction: float = 0.5) -> float:
    """Lazy-phase time scale: first time E_train ≤ ``fraction`` × E_train(0) (use at large α)."""
    return search_end_time(t, e_train, fraction)


def train_test_delay(t, e_train, e_test, fraction: float = 0.5):
    """(train drop time, test drop time, delay): each the first time the error ≤ fraction × its
    initial value; the delay (test − train) is large in grokking-like dynamics."""
    t_train = crossing_time(t, e_train, fraction * np.asarray(e_train, float)[0])
    t_test = crossing_time(t, e_test, fraction * np.asarray(e_test, float)[0])
    return t_train, t_test, t_test - t_train


@dataclass
class RateFit:
    """Exponential fit e ≈ A·exp(−rate·t) on the window [t_start, t_end] of ``n_points`` points."""

    rate: float
    rate_se: float
    t_start: float
    t_end: float
    n_points: int
    r_squared: float


def late_decay_rate(t, e, valid=None, tail_fraction: float = 0.3, min_points: int = 5,
                    edge_power: float = 0.0) -> RateFit:
    """Late-time exponential rate of ``e``: least squares of log e on t over the last
    ``tail_fraction`` of the valid time span (valid: finite, > 0, and ``valid`` mask if given,
    e.g. 'not below the DMFT noise floor'). Reports the window, the standard error of the slope
    and R² as goodness of fit; NaN rate if fewer than ``min_points`` points are in the window.

    ``edge_power`` p fits e ∝ t^(−p)·exp(−rate·t) instead: E_train of gradient descent decays
    through a soft spectral edge with a square-root density, so p = 1.5 removes the +p/t bias
    of a plain exponential fit (see dln_kernels.dmft.spectral_rate)."""
    t, e = np.asarray(t, float), np.asarray(e, float)
    ok = np.isfinite(e) & (e > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    tv, ev = t[ok], e[ok]
    nan = RateFit(float("nan"), float("nan"), float("nan"), float("nan"), 0, float("nan"))
    if tv.size < min_points:
        return nan
    t_cut = tv[-1] - tail_fraction * (tv[-1] - tv[0])
    w = tv >= t_cut
    if w.sum() < min_points:
        w = np.zeros_like(w)
        w[-min_points:] = True
    x, y = tv[w], np.log(ev[w]) + edge_power * np.log(np.maximum(tv[w], 1e-300))
    A = np.vstack([np.ones_like(x), x]).T
    coef, res, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    n = x.size
    s2 = resid @ resid / max(n - 2, 1)
    se = np.sqrt(s2 / np.sum((x - x.mean()) ** 2))
    ss_tot = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - (resid @ resid) / ss_tot if ss_tot > 0 else 1.0
    return RateFit(float(-coef[1]), float(se), float(x[0]), float(x[-1]), int(n), float(r2))


@dataclass
class Plateaus:
    """Plateaus of a curve on log–log axes: where it is flat, between its drops (steps)."""

    count: int
    start_times: np.ndarray
    end_times: np.ndarray
    heights: np.ndarray  # median value of e on each plateau

    @property
    def step_times(self) -> np.ndarray:
        """Times at which the curve leaves a plateau (the starts of the drops)."""
        return self.end_times[:-1] if self.count > 1 else np.empty(0)


def detect_plateaus(t, e, slope_tol: float = 0.1, min_decades: float = 0.15, min_drop: float = 0.1) -> Plateaus:
    """Plateaus of E_train: maximal stretches where |d log e / d log t| < ``slope_tol`` that last
    at least ``min_decades`` decades of time. Adjacent plateaus closer in height than a factor
    (1 − ``min_drop``) are merged, so each boundary between plateaus is a real step down.
    Uses t > 0 only (log time axis); resample densely in log t for best results."""
    t, e = np.asarray(t, float), np.asarray(e, float)
    keep = (t > 0) & np.isfinite(e) & (e > 0)
    lt, le = np.log10(t[keep]), np.log10(e[keep])
    if lt.size < 3:
        return Plateaus(0, np.empty(0), np.empty(0), np.empty(0))
    slope = np.gradient(le, lt)
    flat = np.abs(slope) < slope_tol
    segments = []
    i = 0
    while i < flat.size:
        if flat[i]:
            j = i
            while j + 1 < flat.size and flat[j + 1]:
                j += 1
            if lt[j] - lt[i] >= min_decades:
                segments.append([i, j])
            i = j + 1
        else:
            i += 1
    merged = []
    for s in segments:
        if merged:
            prev = merged[-1]
            h_prev, h_new = np.median(le[prev[0] : prev[1] + 1]), np.median(le[s[0] : s[1] + 1])
            if 10 ** (h_new - h_prev) > 1 - min_drop:
                prev[1] = s[1]
                continue
        merged.append(list(s))
    tk = t[keep]
    ek = e[keep]
    return Plateaus(
        count=len(merged),
        start_times=np.array([tk[a] for a, _ in merged]),
        end_times=np.array([tk[b] for _, b in merged]),
        heights=np.array([np.median(ek[a : b + 1]) for a, b in merged]),
    )
