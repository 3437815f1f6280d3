"""Long-time (static) predictions for gradient flow of the diagonal linear network.

Conventions (those of the project): X has i.i.d. N(0, 1/d) entries, δ = n/d, y = Xβ* + σξ,
u₀ = α·1, v₀ = 0, c = α², weight decay λ. All errors returned here use the project's
normalisation

    E_test  = ‖β_∞ − β*‖² / (2d)        (half of the theory's (1/d)‖β_∞ − β*‖²)
    E_train = ‖y − Xβ_∞‖² / (2n)

Three regimes (theory.md §3):

- λ = 0, δ < 1: β_∞ is the minimum-Φ_c interpolator. Its error follows from the two equations

      τ² = σ²/δ + (1/δ) E[(p(B + τZ) − B)²],      E[p'(B + τZ)] = δ,

  with p = prox_{γΦ_c}. They are solved by a damped Newton method in (log τ, log γ) with an
  analytic Jacobian; every expectation over Z uses piecewise Gauss–Legendre quadrature split at
  the kinks of the prox (see ``docs/static.md`` for the measurements behind this choice), and
  the expectation over B is exact (mixture components of the prior).
- λ = 0, δ ≥ 1: least squares. δ > 1: E_test = σ²/(2(δ − 1)), E_train = σ²(1 − 1/δ)/2. δ = 1: X is
  square and a.s. invertible, so β_∞ = β* + σX⁻¹ξ: E_test = +inf for σ > 0 (the d → ∞ error
  diverges), E_test = 0 for σ = 0 (exact recovery); E_train = 0.
- λ > 0: LASSO with penalty λ‖β‖₁ (min over uv = β of λ(u² + v²)/2 is λ|β|), state evolution in
  (τ, θ) with closed-form Gaussian expectations (soft thresholding).

Nothing is ever returned silently: each point carries ``converged`` and ``residual`` (the largest
relative residual of its fixed-point equations); non-converged points keep their last iterate.

The potential-independent parts of the (τ, γ) state evolution (quadrature rule, moments,
residuals, Newton solvers) are in :mod:`dln_kernels.static.state_evolution`, shared with
:mod:`dln_kernels.static.depth`; this module adds the prox of Φ_c, the soft-thresholding closed
forms, the regimes and the public solver. The pieces of it that ``depth`` reuses are public:
:func:`kink_z`, :func:`gamma_from_threshold`, :class:`SolveOptions`, :class:`Points`,
:func:`flat_points`, :func:`empty_result`, :func:`chunks_of`, :func:`store_interpolator`,
:func:`reshaped`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import gammainc, ndtr

from dln_kernels.model.priors import DEFAULT_PRIOR, prior_of, second_moment
from dln_kernels.static.state_evolution import (
    Z_MAX,
    NodeValues,
    abs_tail,
    accumulate_moments,
    bracketed_newton,
    damped_newton,
    nested_log_tau,
    phi,
    quiet,
    reduced_slope,
    se_residual,
    split_rule,
    take_components,
)

# Regime codes returned in ``out["regime"]``.
REGIME_INTERPOLATOR = 0  # λ = 0, δ < 1
REGIME_LEAST_SQUARES = 1  # λ = 0, δ > 1
REGIME_SQUARE = 2  # λ = 0, δ = 1
REGIME_LASSO = 3  # λ > 0
REGIME_TRIVIAL = 4  # β* = 0 and σ = 0: β_∞ = 0 exactly


# ---------------------------------------------------------------------------------------------
# The prox of γΦ_c
# ---------------------------------------------------------------------------------------------


def phi_c(beta, c):
    """Φ_c(β) = ½ β arcsinh(2β/c) − ¼ √(c² + 4β²) + c/4 (the implicit-bias potential)."""
    beta = np.asarray(beta, dtype=float)
    return 0.5 * beta * np.arcsinh(2 * beta / c) - 0.25 * np.hypot(c, 2 * beta) + 0.25 * c


def prox_w(x, gamma, c, max_iter: int = 100):
    """w = arcsinh(2 p/c) for p = prox_{γΦ_c}(x), i.e. the root of (c/2) sinh w + (γ/2) w = x.

    Safeguarded Newton: h(w) = (c/2) sinh w + (γ/2) w − |x| is increasing and convex on w ≥ 0, and
    both 2|x|/γ and arcsinh(2|x|/c) are upper bounds of the root, so Newton started at their
    minimum decreases monotonically onto the root (no overshoot, no bracketing needed).
    Returns (w, n_iter, max step of the last iteration).
    """
    x, gamma, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, gamma, c)))
    a = np.abs(x)
    hc, hg = 0.5 * c, 0.5 * gamma
    w = np.minimum(a / hg, np.arcsinh(a / hc))
    step = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        sh = np.sinh(w)
        h = hc * sh + hg * w - a
        dh = hc * np.cosh(w) + hg
        dw = h / dh
        w = np.maximum(w - dw, 0.0)
        step = float(np.max(np.abs(dw) / (1.0 + w), initial=0.0))
        if step < 1e-14:
            break
    return np.copysign(w, x), it, step


def prox(x, gamma, c):
    """p = prox_{γΦ_c}(x), the root z of z + (γ/2) arcsinh(2z/c) = x."""
    w, _, _ = prox_w(x, gamma, c)
    return 0.5 * np.asarray(c, dtype=float) * np.sinh(w)


def prox_inverse(z, gamma, c):
    """x with prox_{γΦ_c}(x) = z (explicit)."""
    z = np.asarray(z, dtype=float)
    return z + 0.5 * gamma * np.arcsinh(2 * z / c)


# ---------------------------------------------------------------------------------------------
# Quadrature over Z ~ N(0, 1)
# ---------------------------------------------------------------------------------------------

# Prox kinks. p' = s/(s + γ) with s = √(c² + 4p²) goes from ≈ c/γ (dead zone, |p| ≲ c) to 1, and
# approaches 1 only like 1 − γ/(2|p|), so p(x) ≈ x − (γ/2) log(4|x|/c) carries a logarithm over
# all scales from γ to the Gaussian scale. The rule therefore splits at x = ±x(z) for z = c and
# for z on a geometric ladder z = γ·KINK_RATIO^k, k = −2, −1, 0, … up to the scale of X.
KINK_RATIO = 8.0


def kink_z(gamma, c, zmax):
    """Breakpoints z of the rule over Z for prox_{γΦ_c} (list of arrays, positions in p): c and
    γ·KINK_RATIO^k, k = −2 … K with γ·R^K ≥ zmax (the largest |μ| + Z_MAX·r of the points);
    K is capped at 40. Also used by ``depth`` for L = 2 (with γ/2 and c = 4α²)."""
    gamma = np.asarray(gamma, float)
    kmax = int(np.ceil(np.log(max(float(np.max(zmax / gamma)), 1.0)) / np.log(KINK_RATIO)))
    kmax = min(max(kmax, 0), 40)
    return [np.asarray(c, float)] + [gamma * KINK_RATIO**k for k in range(-2, kmax + 1)]


def _z_nodes(mu, r, gamma, c, n_per: int, kinks: bool):
    """Nodes and weights (…, K·n_per) for E_Z[f(μ + rZ)], piecewise Gauss–Legendre on [−Z_MAX, Z_MAX].

    Breakpoints: fixed ones (to follow the Gaussian) plus, with ``kinks``, the Z at which
    μ + rZ = ±x(z_k) for the prox kinks. mu, r, gamma, c broadcast to a common shape S.
    """
    shape = np.broadcast_shapes(np.shape(mu), np.shape(r), np.shape(gamma), np.shape(c))
    xks = []
    if kinks:
        zmax = np.abs(mu) + Z_MAX * np.asarray(r)
        xks = [prox_inverse(z, gamma, c) for z in kink_z(gamma, c, zmax)]
    return split_rule(mu, r, xks, shape, n_per)


def gauss_hermite_nodes(n: int):
    """Plain Gauss–Hermite rule for E_Z[f(Z)] (used only for the quadrature comparison)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / np.sqrt(2 * np.pi)


# ---------------------------------------------------------------------------------------------
# Expectations for the Φ_c interpolator
# ---------------------------------------------------------------------------------------------


def _interp_moments(tau, gamma, c, comps, n_per: int = 12, kinks: bool = True, derivs: bool = True, rule=None):
    """E[p'], E[(p − B)²] and their (τ, γ) partial derivatives, expectation over B and Z.

    All inputs are 1-d arrays over points; p = prox_{γΦ_c}. See
    :func:`~dln_kernels.static.state_evolution.accumulate_moments` (returns its ``Moments``).
    ``rule``: optional (z, w) fixed nodes (e.g. Gauss–Hermite) instead of the split rule.
    """
    C = c[:, None]

    def point(mu, R, z, A, G, derivs):  # the prox of Φ_c at the nodes: NodeValues
        x = mu + R * z
        wv, _, _ = prox_w(x, G, C)
        p = 0.5 * C * np.sinh(wv)
        s = C * np.cosh(wv)  # √(c² + 4p²)
        dp = s / (s + G)
        # e = p − E[B | X]. Where |p| is not small, use p = x − (γ/2)w (the prox equation) so that
        # e = (1 − a)(x − μ) − (γ/2)w has no cancellation when p ≈ B (deep in the recovery phase).
        e = np.where(
            np.abs(p) > 0.5 * np.abs(x),
            (1.0 - A) * (x - mu) - 0.5 * G * wv,
            p - mu - A * (x - mu),
        )
        if not derivs:
            return NodeValues(dp, e)
        d2p = 4.0 * G * p / (s + G) ** 3
        p_g = -0.5 * wv * dp  # ∂p/∂γ at fixed x
        s_g = 4.0 * p / s * p_g
        dp_g = (G * s_g - s) / (s + G) ** 2
        return NodeValues(dp, e, d2p, p_g, dp_g)

    nodes = lambda mu, r: _z_nodes(mu, r, gamma, c, n_per, kinks)
    return accumulate_moments(tau, gamma, comps, nodes, point, derivs, rule)


@quiet
def interpolator_moments(tau, gamma, alpha, rho, prior=DEFAULT_PRIOR, n_per: int = 12, kinks: bool = True, rule=None):
    """(E[p'(B + τZ)], E[(p(B + τZ) − B)²]) at given (τ, γ): the building blocks of the equations.

    Public for the quadrature study; arrays broadcast. ``rule`` = (nodes, weights) for a plain
    rule over Z (e.g. :func:`gauss_hermite_nodes`) instead of the split Gauss–Legendre rule.
    """
    tau, gamma, alpha, rho = (np.ravel(a) for a in np.broadcast_arrays(*(np.asarray(v, float) for v in (tau, gamma, alpha, rho))))
    comps = prior_of(prior).components(rho)
    m = _interp_moments(tau, gamma, alpha**2, comps, n_per, kinks, derivs=False, rule=rule)
    return m.D, m.M


def _interp_residual(lt, lg, c, comps, s2p, delta, n_per, kinks, derivs=True):
    """The ``Residual`` of the (τ, γ) equations for prox_{γΦ_c} (see ``state_evolution.se_residual``)."""
    moments = lambda tau, gamma, derivs: _interp_moments(tau, gamma, c, comps, n_per, kinks, derivs)
    return se_residual(lt, lg, moments, s2p, delta, derivs)


def gamma_from_threshold(theta, c):
    """γ whose prox_{γΦ_c} has its soft-threshold-like kink at x ≈ θ: the root of
    θ = γ/2 + (γ/2) arcsinh(γ/c), by 80 bisections in log γ (arrays broadcast). It turns the ℓ1
    interpolator's threshold into a starting γ (also used by ``depth`` for L = 2)."""
    theta = np.asarray(theta, float)
    c = np.asarray(c, float)
    lo = np.full_like(theta, -60.0) + np.log(np.maximum(theta, 1e-300))
    hi = np.log(np.maximum(2 * theta, 1e-300)) + 0.0 * lo
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        g = np.exp(mid)
        f = 0.5 * g * (1 + np.arcsinh(g / c)) - theta
        lo = np.where(f < 0, mid, lo)
        hi = np.where(f < 0, hi, mid)
    return np.exp(0.5 * (lo + hi))


def _gamma_for_tau(lt, c, comps, delta, EB2, n_per, kinks, tol=1e-13, max_iter=60):
    """log γ solving E[p'(B + τZ)] = δ at fixed τ: safeguarded Newton in log γ inside a bracket.

    D(γ) = E[p'] decreases from 1 (γ → 0) to 0. Since p' = s/(s + γ) with c ≤ s ≤ c + 2|X|:
    D ≥ c/(c + γ), so D ≥ δ at γ = c(1/δ − 1); and by Jensen D ≤ (c + 2E|X|)/(c + 2E|X| + γ), so
    D ≤ δ at γ = (c + 2√(E[B²] + τ²))(1/δ − 1). These two values bracket the root.
    """
    tau = np.exp(lt)
    lo = np.log(c * (1 / delta - 1))
    hi = np.log((c + 2 * np.sqrt(EB2 + tau**2)) * (1 / delta - 1))

    def fdf(lg, idx):
        g = np.exp(lg)
        m = _interp_moments(tau[idx], g, c[idx], take_components(comps, idx), n_per, kinks, True)
        return np.log(m.D) - np.log(delta[idx]), g * m.D_gamma / m.D

    return bracketed_newton(0.5 * (lo + hi), lo, hi, fdf, tol, 1e-14, max_iter)


def _solve_interpolator_nested(alpha, delta, rho, sigma, prior, n_per=12, kinks=True, tol=1e-11, max_iter=100):
    """Robust (slower) solver: γ(τ) exactly by :func:`_gamma_for_tau`, then the reduced scalar
    equation R(log τ) = F1(log τ, log γ(τ)) by ``state_evolution.nested_log_tau``.
    """
    c = alpha**2
    comps = prior_of(prior).components(rho)
    s2p = sigma**2 / delta
    EB2 = second_moment(prior, rho)

    def R(lt, idx, derivs):
        lg = _gamma_for_tau(lt, c[idx], take_components(comps, idx), delta[idx], EB2[idx], n_per, kinks)
        r = _interp_residual(lt, lg, c[idx], take_components(comps, idx), s2p[idx], delta[idx], n_per, kinks, derivs)
        if not derivs:
            return r.F1, lg
        return r.F1, lg, reduced_slope(r.J)

    return nested_log_tau(R, s2p, EB2, delta, tol, max_iter)


def _solve_interpolator(alpha, delta, rho, sigma, prior, n_per=12, kinks=True, tol=1e-11, max_iter=30):
    """Newton solve of the (τ, γ) equations for points with λ = 0, δ < 1 (1-d arrays)."""
    c = alpha**2
    comps = prior_of(prior).components(rho)
    s2p = sigma**2 / delta
    EB2 = second_moment(prior, rho)
    # Two starting guesses: the minimum-ℓ2 (large α) and the ℓ1 (small α) solutions; keep the better.
    t2_l2 = s2p / (1 - delta) + (1 - delta) * EB2 / delta
    lt_a = 0.5 * np.log(np.maximum(t2_l2, 1e-300))
    lg_a = np.log(c * (1 / delta - 1)) + 0.0 * lt_a
    l1 = l1_interpolator(delta, rho, sigma, prior=prior)
    tau_l1 = np.maximum(l1["tau"], 1e-3 * np.sqrt(np.maximum(t2_l2, 1e-300)))
    lt_b = np.log(tau_l1)
    lg_b = np.log(gamma_from_threshold(l1["theta_over_tau"] * tau_l1, c))
    na = _interp_residual(lt_a, lg_a, c, comps, s2p, delta, n_per, kinks, derivs=False).hypot()
    nb = _interp_residual(lt_b, lg_b, c, comps, s2p, delta, n_per, kinks, derivs=False).hypot()
    na = np.where(np.isfinite(na), na, np.inf)
    use_b = nb < na
    lt = np.where(use_b, lt_b, lt_a)
    lg = np.where(use_b, lg_b, lg_a)

    def resid(lt, lg, idx, derivs):
        r = _interp_residual(lt, lg, c[idx], take_components(comps, idx), s2p[idx], delta[idx], n_per, kinks, derivs)
        return r.F1, r.F2, r.J

    damped_newton(lt, lg, resid, tol, max_iter)
    # fallback: the nested, bracketed solver for the points Newton did not converge
    res = _interp_residual(lt, lg, c, comps, s2p, delta, n_per, kinks, derivs=False).max_abs()
    bad = np.flatnonzero(~(res < tol * 10))
    if bad.size:
        lt_b, lg_b = _solve_interpolator_nested(
            alpha[bad], delta[bad], rho[bad], sigma[bad], prior, n_per, kinks, tol, max_iter=max(3 * max_iter, 1)
        )
        lt[bad], lg[bad] = lt_b, lg_b
    # final residual and moments
    final = _interp_residual(lt, lg, c, comps, s2p, delta, n_per, kinks, derivs=False)
    res = final.max_abs()
    res = np.where(np.isfinite(res), res, np.inf)
    return {
        "tau": np.exp(lt),
        "gamma": np.exp(lg),
        "mse": final.M,
        "converged": res < 100 * tol,
        "residual": res,
    }


# ---------------------------------------------------------------------------------------------
# Soft thresholding: closed-form Gaussian expectations (LASSO and the ℓ1 interpolator)
# ---------------------------------------------------------------------------------------------


class _SoftMoments(NamedTuple):
    D: np.ndarray  # E[η_θ'(X)]
    M: np.ndarray  # E[(η_θ(X) − B)²]


def _soft_moments(theta, tau, comps):
    """E[η_θ'(X)] and E[(η_θ(X) − B)²] with X = B + τZ, in closed form (sums over components).

    Stein's identity (Cov(X − B, X) = τ² for every component B ~ N(μ, s²)) with h = η − X,
    h' = −1{|X| ≤ θ}, gives  E[(η(X) − B)²] = θ² P(|X| > θ) + E[X²; |X| ≤ θ] + τ²(1 − 2P(|X| ≤ θ)),
    which has no cancellation as τ, θ → 0 (the regime of exact recovery).
    """
    D = np.zeros(np.broadcast_shapes(np.shape(theta), np.shape(tau)))
    M = np.zeros_like(D)
    for wgt, mu, s2 in comps:
        r = np.sqrt(s2 + tau * tau)
        with np.errstate(divide="ignore", invalid="ignore"):
            zu = (theta - mu) / r
            zl = (-theta - mu) / r
        p_out = ndtr(-zu) + ndtr(zl)
        p_mid = np.where(zl > 0, ndtr(-zl) - ndtr(-zu), ndtr(zu) - ndtr(zl))
        e1 = phi(zl) - phi(zu)  # E[Z; zl < Z < zu]
        e2 = _half_chi3(zu) - _half_chi3(zl)  # E[Z²; zl < Z < zu]
        x2_mid = mu * mu * p_mid + 2 * mu * r * e1 + r * r * e2
        m = theta * theta * p_out + x2_mid + tau * tau * (1 - 2 * p_mid)
        m = np.where(r > 0, m, np.where(np.abs(mu) > theta, theta * theta, mu * mu))
        D = D + wgt * np.where(r > 0, p_out, np.abs(mu) > theta)
        M = M + wgt * m
    return _SoftMoments(D, M)


def _half_chi3(u):
    """∫_0^u z² φ(z) dz (odd in u), accurate for small |u|."""
    u = np.asarray(u, float)
    return np.sign(u) * 0.5 * gammainc(1.5, 0.5 * u * u)


def _bisect(f, lo, hi, n_iter=100):
    """Vectorised bisection for f(lo) > 0 > f(hi) (or the opposite, consistently)."""
    flo = f(lo)
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        same = np.sign(fm) == np.sign(flo)
        lo = np.where(same, mid, lo)
        flo = np.where(same, fm, flo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def _kappa_for_tau(tau, comps, delta, n_iter: int = 60):
    """κ ≥ 0 with P(|B + τZ| > κτ) = δ (decreasing in κ): safeguarded Newton in a bracket [0, 40]."""
    lo = np.zeros_like(tau)
    hi = np.full_like(tau, 40.0)
    k = np.ones_like(tau)
    for _ in range(n_iter):
        P = np.zeros_like(tau)
        dP = np.zeros_like(tau)
        for wgt, mu, s2 in comps:
            r = np.sqrt(s2 + tau * tau)
            up, lw = (k * tau - mu) / r, (k * tau + mu) / r
            P = P + wgt * (ndtr(-up) + ndtr(-lw))
            dP = dP - wgt * (phi(up) + phi(lw)) * tau / r
        F = P - delta
        lo = np.where(F > 0, k, lo)
        hi = np.where(F > 0, hi, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            cand = k - F / dP
        bad = ~np.isfinite(cand) | (cand <= lo) | (cand >= hi)
        k_new = np.where(bad, 0.5 * (lo + hi), cand)
        if np.all(np.abs(k_new - k) < 1e-13 * (1 + k)):
            k = k_new
            break
        k = k_new
    return k


@quiet
def l1_interpolator(delta, rho, sigma, prior=DEFAULT_PRIOR):
    """The α → 0 limit: minimum-ℓ1 interpolator (basis pursuit when σ = 0), δ < 1.

    Equations: P(|B + τZ| > θ) = δ, τ² = σ²/δ + (1/δ) E[(η_θ(B + τZ) − B)²]. Solved with θ = κτ by
    bisection (κ from the first equation at given τ, then τ from the second in log scale).
    Returns dict with tau, theta_over_tau, mse = (1/d)‖β − β*‖², e_test = mse/2.
    When σ = 0 and τ = 0 is the only fixed point (below the Donoho–Tanner curve) tau = 0.
    """
    delta, rho, sigma = (np.ravel(a).astype(float) for a in np.broadcast_arrays(delta, rho, sigma))
    comps = prior_of(prior).components(rho)
    s2p = sigma**2 / delta
    EB2 = second_moment(prior, rho)

    def kappa_of(tau):
        return _kappa_for_tau(tau, comps, delta)

    def G(lt):
        tau = np.exp(lt)
        k = kappa_of(tau)
        _, M = _soft_moments(k * tau, tau, comps)
        return np.log(s2p + M / delta) - 2 * lt

    scale = np.sqrt(np.maximum(s2p / (1 - delta) + EB2 / delta, 1e-300))
    lt_lo = np.log(np.maximum(np.sqrt(s2p), 1e-12 * scale))
    lt_hi = np.log(scale) + 3.0
    glo = G(lt_lo)
    lt = _bisect(G, lt_lo, lt_hi, 60)
    zero = glo < 0  # no positive fixed point above the floor: τ = max(σ', 0⁺)
    tau = np.where(zero, np.sqrt(s2p), np.exp(lt))
    k = kappa_of(np.maximum(tau, 1e-12 * scale))
    _, M = _soft_moments(k * tau, tau, comps)
    M = np.where(zero & (s2p == 0), 0.0, M)
    return {"tau": tau, "theta_over_tau": k, "mse": M, "e_test": 0.5 * M}


def min_l2_interpolator(delta, rho, sigma, prior=DEFAULT_PRIOR):
    """The α → ∞ limit (δ < 1): E_test = [(1 − δ) E[B²] + σ²δ/(1 − δ)] / 2."""
    delta, rho, sigma = np.broadcast_arrays(*(np.asarray(v, float) for v in (delta, rho, sigma)))
    return 0.5 * ((1 - delta) * second_moment(prior, rho) + sigma**2 * delta / (1 - delta))


class _LassoPoint(NamedTuple):
    lam: np.ndarray  # the penalty λ(κ) at which κ = θ/τ is the LASSO's
    tau: np.ndarray  # the fixed point τ(κ)


def _solve_lasso(lam, delta, rho, sigma, prior):
    """LASSO state evolution at penalty λ (1-d arrays). Parametrised by κ = θ/τ: for each κ above
    the minimal κ_min (where E[η_κ(Z)²] = δ, so that the τ-map contracts at large τ) the fixed point
    τ(κ) is found by bisection in log τ, and κ by bisection on λ(κ) = κτ(1 − E[η']/δ) = λ."""
    comps = prior_of(prior).components(rho)
    s2p = sigma**2 / delta
    EB2 = second_moment(prior, rho)
    scale = np.sqrt(np.maximum(s2p + EB2 / delta, 1e-300))

    def tau_of(kap):
        def G(lt):
            tau = np.exp(lt)
            _, M = _soft_moments(kap * tau, tau, comps)
            return np.log(s2p + M / delta) - 2 * lt

        lt_lo = np.log(np.maximum(np.sqrt(s2p), 1e-14 * scale))
        lt_hi = np.log(scale) + 12.0
        lt = _bisect(G, lt_lo, lt_hi, 70)
        return np.where(G(lt_lo) < 0, np.exp(lt_lo), np.exp(lt))

    # κ_min: E[η_κ(Z)²] = 2[(1 + κ²)Φ(−κ) − κφ(κ)] = δ  (0 when δ ≥ 1)
    one = [(np.ones_like(delta), 0.0, 0.0)]
    f = lambda k: _soft_moments(k, np.ones_like(delta), one).M - delta  # decreasing in κ
    kmin = np.where(delta >= 1, 0.0, _bisect(f, np.zeros_like(delta), np.full_like(delta, 10.0), 70))

    def lam_of(kap):  # (λ(κ), τ(κ))
        tau = tau_of(kap)
        D, _ = _soft_moments(kap * tau, tau, comps)
        return _LassoPoint(kap * tau * (1 - D / delta), tau)

    k_lo = kmin + 1e-9
    k_hi = np.maximum(kmin, 1.0) + 1.0
    for _ in range(60):  # grow the bracket until λ(κ_hi) ≥ λ
        lh, _ = lam_of(k_hi)
        grow = lh < lam
        if not np.any(grow):
            break
        k_hi = np.where(grow, 2 * k_hi, k_hi)
    kap = _bisect(lambda k: lam - lam_of(k).lam, k_lo, k_hi, 60)
    lam_hat, tau = lam_of(kap)
    D, M = _soft_moments(kap * tau, tau, comps)
    T = s2p + M / delta
    res = np.maximum(np.abs(lam_hat - lam) / lam, np.abs(T - tau**2) / np.maximum(tau**2, 1e-300))
    theta = kap * tau
    return {
        "tau": tau,
        "theta": theta,
        "mse": M,
        "e_train": 0.5 * delta * tau**2 * (lam / np.maximum(theta, 1e-300)) ** 2,
        "converged": res < 1e-6,
        "residual": res,
    }


# ---------------------------------------------------------------------------------------------
# Public solver
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolveOptions:
    """Numerical options of :func:`solve_static` and ``depth.solve_static_depth`` (meanings in
    the docstring of :func:`solve_static`)."""

    threshold: float = 1e-2
    n_per: int = 8
    tol: float = 1e-11
    max_iter: int = 30
    chunk: int = 2048


@dataclass(frozen=True)
class Points:
    """The points of a static solve: the broadcast ``shape`` and the parameters as 1-d float
    arrays (own copies) over the n = prod(shape) points; ``depth`` only for the depth-L solver."""

    shape: tuple
    alpha: np.ndarray
    delta: np.ndarray
    rho: np.ndarray
    sigma: np.ndarray
    weight_decay: np.ndarray
    depth: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.alpha.size


def flat_points(caller: str, alpha, delta, rho, sigma, weight_decay, depth=None) -> Points:
    """Broadcast the parameters (with ``depth`` if given) and flatten them into :class:`Points`.
    Raises ValueError, prefixed by ``caller``, unless α > 0, δ > 0, 0 ≤ ρ ≤ 1, σ ≥ 0, λ ≥ 0."""
    values = (alpha, delta, rho, sigma, weight_decay) + (() if depth is None else (depth,))
    arrs = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))
    p = Points(arrs[0].shape, *(np.ravel(a).copy() for a in arrs))
    al, de, rh, si, lam = p.alpha, p.delta, p.rho, p.sigma, p.weight_decay
    if np.any(al <= 0) or np.any(de <= 0) or np.any((rh < 0) | (rh > 1)) or np.any(si < 0) or np.any(lam < 0):
        raise ValueError(f"{caller}: need alpha > 0, delta > 0, 0 ≤ rho ≤ 1, sigma ≥ 0, weight_decay ≥ 0")
    return p


def empty_result(n: int) -> dict:
    """The result dict of :func:`solve_static` for n points before any regime fills it: NaN
    errors and parameters, e_train = 0, regime = −1, converged = False, residual = +inf."""
    return {
        "e_test": np.full(n, np.nan),
        "e_train": np.zeros(n),
        "tau": np.full(n, np.nan),
        "gamma": np.full(n, np.nan),
        "theta": np.full(n, np.nan),
        "frac_active": np.full(n, np.nan),
        "regime": np.full(n, -1, dtype=np.int8),
        "converged": np.zeros(n, bool),
        "residual": np.full(n, np.inf),
    }


def reshaped(out: dict, shape) -> dict:
    """Every array of the result dict ``out`` (1-d over points) in the broadcast ``shape``."""
    return {k: v.reshape(shape) for k, v in out.items()}


def chunks_of(mask, chunk: int):
    """The indices of ``mask``'s True points, in blocks of at most ``chunk`` (a list of arrays)."""
    i_all = np.flatnonzero(mask)
    return [i_all[s : s + chunk] for s in range(0, i_all.size, chunk)]


@dataclass(frozen=True)
class _Regimes:
    """Boolean masks over the points, one per regime (disjoint, covering every point)."""

    trivial: np.ndarray
    interpolator: np.ndarray
    least_squares: np.ndarray
    square: np.ndarray
    lasso: np.ndarray


def _regimes(p: Points, EB2) -> _Regimes:
    lam, de = p.weight_decay, p.delta
    trivial = (EB2 == 0) & (p.sigma == 0)
    return _Regimes(
        trivial=trivial,
        interpolator=(lam == 0) & (de < 1) & ~trivial,
        least_squares=(lam == 0) & (de > 1) & ~trivial,
        square=(lam == 0) & (de == 1) & ~trivial,
        lasso=(lam > 0) & ~trivial,
    )


def _mark_exact(out, i, regime):
    out["regime"][i] = regime
    out["converged"][i] = True
    out["residual"][i] = 0.0


def _fill_trivial(out, i):
    """β* = 0 and no noise: y = 0 and every regime returns β_∞ = 0."""
    out["e_test"][i] = 0.0
    out["tau"][i] = 0.0
    out["frac_active"][i] = 0.0
    _mark_exact(out, i, REGIME_TRIVIAL)


def _fill_least_squares(out, i, p, comps, threshold):
    """δ > 1, λ = 0: E_test = σ²/(2(δ − 1)), E_train = σ²(1 − 1/δ)/2, β_∞ = β* + τZ."""
    si, de = p.sigma[i], p.delta[i]
    v = si**2 / (de - 1)
    out["e_test"][i] = 0.5 * v
    out["e_train"][i] = 0.5 * si**2 * (1 - 1 / de)
    out["tau"][i] = np.sqrt(v)
    out["frac_active"][i] = abs_tail(threshold, np.sqrt(v), take_components(comps, i))
    _mark_exact(out, i, REGIME_LEAST_SQUARES)


def _fill_square(out, i, p, comps, threshold):
    """δ = 1, λ = 0: E_test = +inf for σ > 0, exact recovery (0) for σ = 0; E_train = 0."""
    si = p.sigma[i]
    out["e_test"][i] = np.where(si > 0, np.inf, 0.0)
    out["tau"][i] = np.where(si > 0, np.inf, 0.0)
    out["frac_active"][i] = np.where(si > 0, 1.0, abs_tail(threshold, 0.0 * si, take_components(comps, i)))
    _mark_exact(out, i, REGIME_SQUARE)


def _fill_lasso(out, i, p, prior, comps, threshold):
    """λ > 0: the LASSO state evolution at the points ``i``."""
    r = _solve_lasso(p.weight_decay[i], p.delta[i], p.rho[i], p.sigma[i], prior)
    out["e_test"][i] = 0.5 * r["mse"]
    out["e_train"][i] = r["e_train"]
    out["tau"][i] = r["tau"]
    out["theta"][i] = r["theta"]
    out["frac_active"][i] = abs_tail(threshold + r["theta"], r["tau"], take_components(comps, i))
    out["regime"][i] = REGIME_LASSO
    out["converged"][i] = r["converged"]
    out["residual"][i] = r["residual"]


def _fill_interpolator(out, i, p, prior, comps, opts: SolveOptions):
    """λ = 0, δ < 1: the minimum-Φ_c interpolator at the points ``i``."""
    al = p.alpha[i]
    r = _solve_interpolator(al, p.delta[i], p.rho[i], p.sigma[i], prior, n_per=opts.n_per, tol=opts.tol,
                            max_iter=opts.max_iter)
    x_thr = prox_inverse(opts.threshold, r["gamma"], al**2)
    store_interpolator(out, i, r, abs_tail(x_thr, r["tau"], take_components(comps, i)))


def store_interpolator(out: dict, i, r: dict, frac_active):
    """Write an interpolator solve ``r`` (dict with mse, tau, gamma, converged, residual) and its
    ``frac_active`` into the result dict ``out`` at the points ``i`` (regime REGIME_INTERPOLATOR)."""
    out["e_test"][i] = 0.5 * r["mse"]
    out["tau"][i] = r["tau"]
    out["gamma"][i] = r["gamma"]
    out["frac_active"][i] = frac_active
    out["regime"][i] = REGIME_INTERPOLATOR
    out["converged"][i] = r["converged"]
    out["residual"][i] = r["residual"]


@quiet
def solve_static(
    alpha,
    delta,
    rho,
    sigma=0.0,
    weight_decay=0.0,
    prior=DEFAULT_PRIOR,
    *,
    threshold: float = 1e-2,
    n_per: int = 8,
    tol: float = 1e-11,
    max_iter: int = 30,
    chunk: int = 2048,
):
    """Long-time (d → ∞, gradient-flow) predictions, broadcasting array arguments.

    Parameters: α (init scale), δ = n/d, ρ (sparsity), σ (label-noise std), λ (weight decay),
    prior (dict, see ``priors``). ``threshold``: level for the fraction of |β_i| above it.
    ``n_per``: Gauss–Legendre nodes per sub-interval (see docs/static.md for the accuracy).
    ``tol``: target max-norm of the (log-scaled) residuals of the interpolator equations; a point
    counts as converged when its residual is below 100·tol. ``max_iter``: Newton iterations (the
    bracketed fallback for the points Newton leaves unconverged gets 3·max_iter).

    Returns a dict of arrays of the broadcast shape:

    - ``e_test``: ‖β_∞ − β*‖²/(2d) (project convention; the theory's (1/d)‖·‖² is 2·e_test)
    - ``e_train``: ‖y − Xβ_∞‖²/(2n) (0 for interpolators)
    - ``tau``: effective noise level τ of the state evolution (NaN where not defined)
    - ``gamma``: prox parameter γ (interpolator only, NaN elsewhere)
    - ``theta``: soft threshold θ (LASSO only, NaN elsewhere)
    - ``frac_active``: fraction of coordinates with |β_i| > threshold
    - ``regime``: REGIME_* code; ``converged`` (bool) and ``residual`` (max relative residual).
    """
    p = flat_points("solve_static", alpha, delta, rho, sigma, weight_decay)
    opts = SolveOptions(threshold=threshold, n_per=n_per, tol=tol, max_iter=max_iter, chunk=chunk)
    out = empty_result(p.n)
    comps = prior_of(prior).components(p.rho)
    reg = _regimes(p, second_moment(prior, p.rho))
    _fill_trivial(out, np.flatnonzero(reg.trivial))
    _fill_least_squares(out, np.flatnonzero(reg.least_squares), p, comps, threshold)
    _fill_square(out, np.flatnonzero(reg.square), p, comps, threshold)
    for i in chunks_of(reg.lasso, chunk):
        _fill_lasso(out, i, p, prior, comps, threshold)
    for i in chunks_of(reg.interpolator, chunk):
        _fill_interpolator(out, i, p, prior, comps, opts)
    return reshaped(out, p.shape)


# ---------------------------------------------------------------------------------------------
# Phase boundaries
# ---------------------------------------------------------------------------------------------


@quiet
def donoho_tanner_rho(delta, *, per: str = "n"):
    """The ℓ1 weak phase transition (Donoho–Tanner), from its own parametric formula.

    For t > 0:  δ(t) = 2φ(t) / (t + 2(φ(t) − tΦ(−t))),  ρ(t) = 1 − tΦ(−t)/φ(t),
    with ρ = k/n (nonzeros per sample). δ(t) decreases from 1 (t → 0) to 0, so t(δ) is found by
    bisection. ``per="n"`` returns k/n; ``per="d"`` returns the project's sparsity k/d = δ·ρ.
    Known value: ρ(δ = 0.5) = 0.3857 (k/n). δ ≥ 1 returns 1 (k/n) — every ρ is recovered.
    """
    delta = np.asarray(delta, dtype=float)
    if per not in ("n", "d"):
        raise ValueError(f"per: expected 'n' or 'd', got {per!r}")
    d = np.clip(delta, 1e-12, 1 - 1e-15)

    def dpar(t):
        return 2 * phi(t) / (t + 2 * (phi(t) - t * ndtr(-t)))

    t = _bisect(lambda t: dpar(t) - d, np.zeros_like(d) + 1e-12, np.full_like(d, 40.0), 200)
    rho = 1 - t * ndtr(-t) / phi(t)
    rho = np.where(delta >= 1, 1.0, rho)
    return rho * delta if per == "d" else rho


@quiet
def recovery_boundary(alpha, delta, *, tol: float = 1e-3, prior=DEFAULT_PRIOR, n_iter: int = 30, n_per: int = 8):
    """Noiseless recovery boundary of the minimum-Φ_c interpolator (σ = 0, λ = 0, δ < 1).

    At α > 0 the interpolator is never exactly β*: below the ℓ1 transition its error decays like a
    power of α (see docs/static.md), so "the error becomes nonzero" needs a level. This returns the
    sparsity ρ (= k/d) at which the relative error (1/d)‖β_∞ − β*‖² / E[B²] = 2 E_test / E[B²]
    reaches ``tol`` (the error is increasing in ρ), found by bisection on ρ ∈ (0, 1).
    ``alpha = 0`` uses the α → 0 limit (minimum-ℓ1 interpolator); there ``tol = 0`` gives the
    exact onset of nonzero error, which is the Donoho–Tanner curve δ·ρ_DT(δ).
    Returns (rho_boundary, converged) arrays of the broadcast shape.
    """
    alpha, delta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(delta, float))
    shape = alpha.shape
    al, de = alpha.ravel(), delta.ravel()
    if np.any(de >= 1) or np.any(de <= 0):
        raise ValueError("recovery_boundary: needs 0 < delta < 1")
    ok = np.ones(al.size, bool)

    def rel_err(rho):
        out = np.empty(al.size)
        z = al == 0
        if np.any(z):
            r = l1_interpolator(de[z], rho[z], 0.0, prior=prior)
            out[z] = r["mse"] / second_moment(prior, rho[z])
        if np.any(~z):
            r = solve_static(al[~z], de[~z], rho[~z], 0.0, 0.0, prior=prior, n_per=n_per)
            out[~z] = 2 * r["e_test"] / second_moment(prior, rho[~z])
            ok[~z] &= r["converged"]
        return out

    lo = np.full(al.size, 1e-6)
    hi = np.full(al.size, 1.0 - 1e-6)
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        above = rel_err(mid) > tol
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return (0.5 * (lo + hi)).reshape(shape), ok.reshape(shape)
