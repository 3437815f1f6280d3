"""Leading-order predictions for the phenomena (search phase, incremental learning, lazy and
weight-decay timescales), written for the *discrete* algorithm with constant step dt.

See docs/phenomena.md for the derivations. Conventions as in docs/theory.md: L = ln(1/α).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from dln_kernels.measure.analysis import crossing_time, detect_plateaus
from dln_kernels.model.priors import DEFAULT_PRIOR, prior_of, second_moment


def _phi(x):
    x = np.clip(np.asarray(x, float), -40.0, 40.0)  # φ(±40) = 0 in float64; avoids x² overflow
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def g0_std(delta: float, rho: float, sigma: float = 0.0, prior: dict | None = None) -> float:
    """Standard deviation of the noise part of the initial gradient, √((σ² + E[β*²])/δ).

    At k = 0 the DMFT gradient of a coordinate is g₀ = β* + η₀ with η₀ ~ N(0, C_r[0,0]/δ) and
    C_r[0,0] = σ² + E[β*²] (β₀ = 0). While all β stay O(α²), C_r is constant in time, so
    η_k = η₀: the gradient of a coordinate is frozen at g₀ during the search phase."""
    prior = prior or DEFAULT_PRIOR
    return math.sqrt((sigma**2 + second_moment(prior, rho)) / delta)


def _components(prior, rho: float, s: float):
    """g₀ = B + N(0, s²) as a mixture of normals: list of (weight, mean, std), from the prior's
    components of B (:meth:`dln_kernels.model.priors.Prior.components`)."""
    return [(w, m, s if var == 0.0 else math.sqrt(var + s * s)) for w, m, var in prior_of(prior).components(rho)]


def tail_second_moment(c: float, delta: float, rho: float, sigma: float = 0.0, prior: dict | None = None) -> float:
    """E[g₀² 1{|g₀| ≥ c}] for g₀ = β* + N(0, (σ² + E[β*²])/δ) (closed form per component).

    For X = m + sZ and a = (c − m)/s: E[X² 1{X ≥ c}] = (m² + s²) Q(a) + s (m + c) φ(a), Q = 1 − Φ;
    the lower tail X ≤ −c is the same with m → −m."""
    prior = prior or DEFAULT_PRIOR
    s = g0_std(delta, rho, sigma, prior)
    tot = 0.0
    for w, m, sd in _components(prior, rho, s):
        for mm in (m, -m):
            a = (c - mm) / sd
            tot += w * ((mm * mm + sd * sd) * ndtr(-a) + sd * (mm + c) * _phi(a))
    return float(tot)


def escape_rate(g, dt: float = 0.0):
    """Growth rate per unit time of a coordinate with frozen gradient g under GD with step dt:
    u ± v grow by (1 + dt|g|) per step, so β ∝ exp(2·rate·t) with rate = ln(1 + dt|g|)/dt
    (→ |g| as dt → 0)."""
    g = np.abs(np.asarray(g, float))
    return g if dt == 0 else np.log1p(dt * g) / dt


def escape_threshold(tau: float, dt: float = 0.0) -> float:
    """Smallest |g| whose coordinate has escaped by t = τ·ln(1/α): rate(g)·τ ≥ 1."""
    return 1.0 / tau if dt == 0 else math.expm1(min(dt / tau, 700.0)) / dt


def frozen_train_fraction(tau, delta: float, rho: float, sigma: float = 0.0, prior: dict | None = None,
                          dt: float = 0.0):
    """Leading-order E_train(τ·ln(1/α)) / E_train(0) as α → 0 (first order in the drop).

    A coordinate escapes at t = ln(1/α)/rate(g₀) (β = (α²/2) sinh(2 g₀ t) with g₀ frozen), and,
    on the O(1) time scale that is instantaneous next to ln(1/α), fits itself: alone it would
    move to β = g₀ and lower E_train by g₀²/(2d). While the escaped set is a small fraction
    of the coordinates, their fits do not interact (first order in the drop), so

        E_train/E_train(0) = 1 − E[g₀² 1{rate(g₀) τ ≥ 1}] / (σ² + E[β*²]).
    """
    prior = prior or DEFAULT_PRIOR
    e0 = sigma**2 + second_moment(prior, rho)
    taus = np.atleast_1d(np.asarray(tau, float))
    out = np.array([1.0 - tail_second_moment(escape_threshold(t, dt), delta, rho, sigma, prior) / e0 for t in taus])
    return out if np.ndim(tau) else float(out[0])


def search_slope(fraction: float, delta: float, rho: float, sigma: float = 0.0, prior: dict | None = None,
                 dt: float = 0.0) -> float:
    """Predicted d t_f / d ln(1/α), t_f the first time E_train ≤ ``fraction``·E_train(0):
    the τ at which :func:`frozen_train_fraction` equals ``fraction``. Equivalently 1/|g|*, the
    inverse gradient of the last coordinates to escape before E_train has fallen to ``fraction``
    (|g|* is the g₀²-weighted upper (1 − fraction)(σ² + E[β*²])-quantile of |g₀|)."""
    f = lambda lt: frozen_train_fraction(math.exp(lt), delta, rho, sigma, prior, dt) - fraction  # noqa: E731
    return math.exp(brentq(f, math.log(1e-3), math.log(1e4), xtol=1e-12))


# ----------------------------------------------------------------------------------------------
# lazy phase
# ----------------------------------------------------------------------------------------------
def lazy_time_prediction(alpha, delta: float, m2: float, dt: float, sigma: float = 0.0,
                         fraction: float = 0.5, n_steps: int = 4000) -> np.ndarray:
    """Lazy-limit time at which E_train ≤ ``fraction``·E_train(0), for each α.

    For α → ∞, u ≈ α and β = u v follows β_{k+1} = β_k + (dt α²) g_k to leading order: gradient
    descent of linear least squares with step dt·α². Its d → ∞ curve is exact by
    Marchenko–Pastur quadrature (:mod:`dln_kernels.static.marchenko_pastur`); the crossing step k times
    dt is the prediction. As dt·α² → 0 it is t_lin/α² (slope −2 on log–log axes)."""
    from dln_kernels.static.marchenko_pastur import linear_gd_errors

    out = []
    for a in np.atleast_1d(np.asarray(alpha, float)):
        eta = dt * a * a
        k = np.arange(n_steps + 1)
        e_tr, _ = linear_gd_errors(delta=delta, dt=eta, steps=k, m2=m2, sigma=sigma)
        out.append(crossing_time(k * dt, e_tr, fraction * e_tr[0]))
    return np.asarray(out)


# ----------------------------------------------------------------------------------------------
# incremental learning
# ----------------------------------------------------------------------------------------------
def incremental_step_prediction(levels, alpha: float, dt: float = 0.0, reach: float = 1.0 / 3.0) -> np.ndarray:
    """Time at which coordinates of teacher magnitude |ℓ| are learned, for small α.

    With a frozen gradient g ≈ ℓ (large δ) a coordinate grows as β = (α²/4)(1 + dt|ℓ|)^{2k};
    it reaches the fraction ``reach`` of its target ℓ at t = (ln(1/α) + ½ ln(4·reach·|ℓ|)) /
    rate(ℓ), rate(ℓ) = ln(1 + dt|ℓ|)/dt. Leading order: ln(1/α)/|ℓ|; the ½ ln(4·reach·|ℓ|)
    term is the O(1) offset (reach ≈ 1/3 is where E_train has lost half of the plateau the
    level sits on; see docs/phenomena.md)."""
    lv = np.abs(np.asarray(levels, float))
    return (math.log(1.0 / alpha) + 0.5 * np.log(4.0 * reach * lv)) / escape_rate(lv, dt)


def incremental_steps(t, e, n_steps: int | None = None, drop: float = 0.5, slope_tol: float = 0.3,
                      min_decades: float = 0.05, **plateau_kw) -> dict:
    """Plateaus of E_train (:func:`dln_kernels.measure.analysis.detect_plateaus` with |d log E/d log t|
    < ``slope_tol`` over ≥ ``min_decades``: saddles of a few tenths of a decade, as at
    ln(1/α) ≈ 20, are resolved) and, after each, the
    step time: the first time after the plateau's end at which E_train ≤ ``drop``× its height.
    ``n_steps`` keeps only the first n plateaus. Returns {"plateaus", "heights", "step_times"}."""
    t, e = np.asarray(t, float), np.asarray(e, float)
    p = detect_plateaus(t, e, slope_tol=slope_tol, min_decades=min_decades, **plateau_kw)
    k = p.count if n_steps is None else min(p.count, n_steps)
    steps = []
    for j in range(k):
        after = t >= p.end_times[j]
        steps.append(crossing_time(t[after], e[after], drop * p.heights[j]) if after.sum() > 1 else np.nan)
    return {"plateaus": p, "heights": p.heights[:k], "step_times": np.asarray(steps)}


# ----------------------------------------------------------------------------------------------
# grokking-like delay
# ----------------------------------------------------------------------------------------------
def grokking_times(t, e_train, e_test, train_fraction: float = 0.5, lazy_fraction: float = 0.1,
                   test_fraction: float = 0.5) -> dict:
    """Times of a lazy fit followed by a late drop of the test error.

    t_train: E_train ≤ train_fraction·E_train(0) (the lazy fit); t_lazy: E_train ≤
    lazy_fraction·E_train(0) (end of the lazy phase), where the test-error plateau is read off;
    t_test: first time after t_lazy with E_test ≤ test_fraction·plateau; delay = t_test − t_train.
    NaN where a level is never reached."""
    t, e_train, e_test = (np.asarray(a, float) for a in (t, e_train, e_test))
    t_train = crossing_time(t, e_train, train_fraction * e_train[0])
    t_lazy = crossing_time(t, e_train, lazy_fraction * e_train[0])
    nan = float("nan")
    if not np.isfinite(t_lazy):
        return {"t_train": t_train, "t_lazy": nan, "plateau": nan, "t_test": nan, "delay": nan}
    plateau = float(np.interp(t_lazy, t, e_test))
    after = t >= t_lazy
    t_test = crossing_time(np.concatenate([[t_lazy], t[after]]), np.concatenate([[plateau], e_test[after]]),
                           test_fraction * plateau)
    return {"t_train": t_train, "t_lazy": t_lazy, "plateau": plateau, "t_test": t_test, "delay": t_test - t_train}


# ----------------------------------------------------------------------------------------------
# fits with uncertainties
# ----------------------------------------------------------------------------------------------
def crossing_time_se(t, e, e_se, level: float) -> float:
    """Uncertainty of a crossing time from a ±1 standard-error band of the curve: half the
    distance between the crossings of e − se and e + se (NaN if either is missing)."""
    e, e_se = np.asarray(e, float), np.asarray(e_se, float)
    lo = crossing_time(t, np.maximum(e - e_se, 1e-300), level)
    hi = crossing_time(t, e + e_se, level)
    return 0.5 * abs(hi - lo)


def line_fit(x, y, y_se=None) -> dict:
    """Least-squares line y = slope·x + intercept over the finite points.

    With ``y_se``: weighted, and the parameter errors are scaled up by √(χ²/dof) when the
    scatter exceeds the stated errors (Birge ratio), so they cover both. Without: ordinary
    least squares with errors from the residual scatter. Returns slope, slope_se, intercept,
    intercept_se, n."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if y_se is not None:
        y_se = np.asarray(y_se, float)
        ok &= np.isfinite(y_se)
    x, y = x[ok], y[ok]
    n = x.size
    nan = {"slope": np.nan, "slope_se": np.nan, "intercept": np.nan, "intercept_se": np.nan, "n": n}
    if n < 2:
        return nan
    w = np.ones(n) if y_se is None else 1.0 / np.maximum(y_se[ok], 1e-12 * np.abs(y).max()) ** 2
    A = np.vstack([x, np.ones(n)]).T
    Aw = A * w[:, None]
    cov = np.linalg.inv(A.T @ Aw)
    coef = cov @ (Aw.T @ y)
    resid = y - A @ coef
    dof = n - 2
    if dof <= 0:
        scale = 1.0 if y_se is not None else np.nan
    else:
        chi2 = float(resid @ (w * resid)) / dof
        scale = max(1.0, chi2) if y_se is not None else chi2
    cov = cov * scale
    return {"slope": float(coef[0]), "slope_se": float(np.sqrt(cov[0, 0])), "intercept": float(coef[1]),
            "intercept_se": float(np.sqrt(cov[1, 1])), "n": n}


# ----------------------------------------------------------------------------------------------
# depth-L networks: escape from the saddle
# ----------------------------------------------------------------------------------------------
def escape_clock(alpha, depth: int):
    """Λ_L(α): the escape time of one coordinate of the depth-L ``pm`` network
    (β = u^L − v^L, u₀ = v₀ = α) under a frozen gradient of size |g| = 1, to leading order as
    α → 0 (time units of the sweep; a coordinate with gradient g escapes at Λ_L(α)/|g|).

    Gradient flow du/dt = L u^{L−1} g (theory.md §6, λ = 0):

    - L = 2: u = α e^{2gt}, v = α e^{−2gt}, so β = 2α² sinh(4gt) is O(1) at Λ₂ = ln(1/α)/2;
    - L ≥ 3: u^{2−L} = α^{2−L} − L(L−2) g t blows up at t* = α^{2−L}/(L(L−2)|g|), so
      Λ_L = 1/(L(L−2) α^{L−2}) (Woodworth et al. 2020; Gissin et al. 2020): a power of 1/α,
      not a logarithm.

    ``alpha`` broadcasts (array or float); ``depth`` is an integer ≥ 2. Raises ValueError for
    depth < 2 or α ≤ 0.
    """
    a = np.asarray(alpha, float)
    if depth < 2 or int(depth) != depth:
        raise ValueError(f"depth must be an integer >= 2, got {depth}")
    if np.any(a <= 0):
        raise ValueError(f"alpha must be positive, got {alpha}")
    L = int(depth)
    out = 0.5 * np.log(1.0 / a) if L == 2 else a ** (2 - L) / (L * (L - 2))
    return out if np.ndim(alpha) else float(out)


def depth_search_time(alpha, depth: int, delta: float, rho: float, sigma: float = 0.0, prior: dict | None = None,
                      dt: float = 0.0, fraction: float = 0.5):
    """Leading-order end of the search phase of the depth-L ``pm`` network: the first time
    E_train ≤ ``fraction``·E_train(0), t_f = τ_f · Λ_L(α) (:func:`escape_clock`).

    τ_f = 1/|g|* is the inverse frozen gradient of the last coordinates to escape before E_train
    has fallen to ``fraction`` (:func:`search_slope`): coordinates escape in the order of their
    |g₀| at every depth, only the clock Λ_L differs. Discrete steps: at L = 2 the ``pm`` network
    at step dt is ``uv`` at 2dt (theory.md §6), so τ_f is taken at 2dt; at L ≥ 3 the relative
    growth per step, dt·L·u^{L−2}|g|, vanishes as α → 0, so the flow's τ_f (dt = 0) is the
    leading order. Returns the same shape as ``alpha``.
    """
    tau = search_slope(fraction, delta, rho, sigma, prior, 2.0 * dt if int(depth) == 2 else 0.0)
    return tau * escape_clock(alpha, depth)
