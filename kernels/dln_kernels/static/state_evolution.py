"""The state-evolution machinery shared by the depth-2 (:mod:`.solver`, prox of Φ_c) and the
depth-L (:mod:`.depth`, prox of Q_L) minimum-potential interpolators (theory.md §3, §6).

Both solve the same two equations in (τ, γ), for a prox p = prox_{γQ} that only the caller knows,

    τ² = σ²/δ + (1/δ) E[(p(B + τZ) − B)²],      E[p'(B + τZ)] = δ,

with the expectation over B exact (mixture components of the prior, list of (weight, mean,
variance)) and the one over Z by a piecewise Gauss–Legendre rule split at the prox's kinks
(``docs/static.md``). This module holds the parts that do not depend on the potential:

- :func:`split_rule`: the piecewise rule over Z;
- :func:`accumulate_moments` (→ :class:`Moments`): E[p'], E[(p − B)²] and their (τ, γ) partials,
  given the prox at the nodes (a ``point`` callback returning :class:`NodeValues`);
- :func:`se_residual` (→ :class:`Residual`): the log-form residuals and their Jacobian;
- the solvers: :func:`damped_newton` (2-d, in (log τ, log γ)), :func:`bracketed_newton`
  (scalar, safeguarded) and :func:`nested_log_tau` (the reduced equation in log τ);
- mixture helpers (:func:`take_components`, :func:`abs_tail`), the normal density :func:`phi`
  and the :func:`quiet` decorator.

Every function works on 1-d arrays over points unless its docstring says otherwise.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, roots_legendre

_SQRT2PI = np.sqrt(2.0 * np.pi)

Z_MAX = 10.0  # φ(10) ≈ 8e-23: the mass outside [−10, 10] is below double precision
BASE_BREAKS = np.array([-Z_MAX, -6.0, -3.0, -1.0, 1.0, 3.0, 6.0, Z_MAX])  # fixed breaks of the rule over Z


def quiet(fn):
    """Run ``fn`` with floating-point warnings off: limits (τ → 0, x → ±∞) are handled explicitly
    and every result carries its own convergence flag and residual."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def phi(x):
    """The standard normal density φ(x)."""
    return np.exp(-0.5 * x * x) / _SQRT2PI


# ---------------------------------------------------------------------------------------------
# Mixtures (the prior's components)
# ---------------------------------------------------------------------------------------------


def take_components(comps, idx):
    """The components ``comps`` (list of (weight, mean, variance)) at the points ``idx``: array
    weights are indexed, scalar weights kept."""
    return [(w[idx] if np.ndim(w) else w, m, v) for w, m, v in comps]


def abs_tail(x0, tau, comps, extra_var=0.0):
    """P(|B + sZ| > x0) with s² = τ² + extra_var (mixture, closed form)."""
    P = 0.0
    for wgt, mu, s2 in comps:
        r = np.sqrt(s2 + tau * tau + extra_var)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(r > 0, (x0 - mu) / r, np.where(x0 - mu >= 0, np.inf, -np.inf))
            lo = np.where(r > 0, (x0 + mu) / r, np.where(x0 + mu >= 0, np.inf, -np.inf))
        P = P + wgt * (ndtr(-up) + ndtr(-lo))
    return P


# ---------------------------------------------------------------------------------------------
# Quadrature over Z ~ N(0, 1) and the moments
# ---------------------------------------------------------------------------------------------


def split_rule(mu, r, xks, shape, n_per: int):
    """Piecewise Gauss–Legendre rule for E_Z[f(μ + rZ)] on [−Z_MAX, Z_MAX]: breaks at
    ``BASE_BREAKS`` and at the Z with μ + rZ = ±x_k for each kink position x_k in ``xks``
    (clipped to [−Z_MAX, Z_MAX]); n_per nodes per piece, weights times φ(z).

    mu, r and each x_k broadcast to ``shape`` = S. Returns (z, w), each of shape S + (K·n_per,)."""
    t, wt = roots_legendre(n_per)
    breaks = [np.broadcast_to(b, shape) for b in BASE_BREAKS]
    for xk in xks:
        for s in (1.0, -1.0):
            zz = (s * xk - mu) / r
            breaks.append(np.broadcast_to(np.clip(zz, -Z_MAX, Z_MAX), shape))
    b = np.sort(np.stack(breaks, axis=-1), axis=-1)  # (S, K+1)
    lo, hi = b[..., :-1], b[..., 1:]
    half = 0.5 * (hi - lo)
    mid = 0.5 * (hi + lo)
    z = (mid[..., None] + half[..., None] * t).reshape(shape + (-1,))
    w = (half[..., None] * wt).reshape(shape + (-1,)) * phi(z)
    return z, w


class NodeValues(NamedTuple):
    """The prox at the quadrature nodes X = μ + Rz (what a ``point`` callback returns): p', the
    error e = p − E[B | X], and (with derivatives, else None) p'', ∂p/∂γ and ∂p'/∂γ at fixed X."""

    dp: np.ndarray
    e: np.ndarray
    d2p: np.ndarray | None = None
    p_gamma: np.ndarray | None = None
    dp_gamma: np.ndarray | None = None


class Moments(NamedTuple):
    """D = E[p'], M = E[(p − B)²] and their τ- and γ-partials (zero without derivatives)."""

    D: np.ndarray
    M: np.ndarray
    D_tau: np.ndarray
    D_gamma: np.ndarray
    M_tau: np.ndarray
    M_gamma: np.ndarray


class _Component(NamedTuple):
    """One mixture component B ~ N(μ, s²) seen through X = μ + rZ, r² = s² + τ²: B | X ~
    N(μ + a(X − μ), q), a = s²/r², q = s²τ²/r² (arrays over points)."""

    V: np.ndarray  # r²
    r: np.ndarray
    a: np.ndarray
    q: np.ndarray


def _component(tau, s2):
    V = s2 + tau * tau
    r = np.sqrt(V)
    a = s2 / V
    a = np.where(tau > 0, a, 1.0) if s2 > 0 else a
    return _Component(V=V, r=r, a=a, q=s2 * tau * tau / V)


def accumulate_moments(tau, gamma, comps, nodes, point, derivs, rule) -> Moments:
    """Sum over the prior's components of the Z-quadratures giving E[p'], E[(p − B)²] and their τ-,
    γ-partials, for any prox (tau, gamma: 1-d arrays over points).

    For a component B ~ N(μ, s²) we integrate over X = μ + rZ, r² = s² + τ², with
    B | X ~ N(μ + a(X − μ), q), a = s²/r², q = s²τ²/r²; so E[(p − B)²] = E[e²] + q with
    e = p − E[B | X], and ∂e/∂τ at fixed Z follows from ∂X/∂τ = (τ/r)Z.
    ``nodes(mu, r) -> (z, w)``: the rule over Z (used unless ``rule`` = fixed (z, w) is given).
    ``point(mu, R, z, A, G, derivs) -> NodeValues`` (p', e, p'', ∂p/∂γ, ∂p'/∂γ) at X = μ + Rz
    (columns R = r, A = a, G = γ; the last three None without ``derivs``).
    Returns :class:`Moments`; its four partials are zero without ``derivs``.
    """
    D = np.zeros_like(tau)
    M = np.zeros_like(tau)
    Dt = np.zeros_like(tau)
    Dg = np.zeros_like(tau)
    Mt = np.zeros_like(tau)
    Mg = np.zeros_like(tau)
    for wgt, mu, s2 in comps:
        wgt = np.broadcast_to(wgt, tau.shape)
        cp = _component(tau, s2)
        if rule is None:
            z, w = nodes(mu, cp.r)
        else:
            z = np.broadcast_to(rule[0], tau.shape + rule[0].shape)
            w = np.broadcast_to(rule[1], tau.shape + rule[1].shape)
        R, G, A = cp.r[:, None], gamma[:, None], cp.a[:, None]
        dp, e, d2p, p_g, dp_g = point(mu, R, z, A, G, derivs)
        D += wgt * np.sum(w * dp, axis=-1)
        M += wgt * (np.sum(w * e * e, axis=-1) + cp.q)
        if derivs:
            V, r = cp.V, cp.r
            tr = (tau / r)[:, None]
            da_dt = (-2.0 * s2 * tau / V**2)[:, None]
            dq_dt = 2.0 * tau * s2 * s2 / V**2
            e_t = z * ((dp - A) * tr - R * da_dt)
            Dt += wgt * np.sum(w * d2p * z, axis=-1) * (tau / r)
            Dg += wgt * np.sum(w * dp_g, axis=-1)
            Mt += wgt * (np.sum(w * 2.0 * e * e_t, axis=-1) + dq_dt)
            Mg += wgt * np.sum(w * 2.0 * e * p_g, axis=-1)
    return Moments(D, M, Dt, Dg, Mt, Mg)


# ---------------------------------------------------------------------------------------------
# The equations in (log τ, log γ)
# ---------------------------------------------------------------------------------------------


class Residual(NamedTuple):
    """Residuals F1, F2 of the (τ, γ) equations in log form, their (…, 2, 2) Jacobian J in
    (log τ, log γ) (None without derivatives) and the moments D = E[p'], M = E[(p − B)²]."""

    F1: np.ndarray
    F2: np.ndarray
    J: np.ndarray | None
    D: np.ndarray
    M: np.ndarray

    def max_abs(self):
        """max(|F1|, |F2|): the max-norm used by the stopping tests and reported as ``residual``."""
        return np.maximum(np.abs(self.F1), np.abs(self.F2))

    def hypot(self):
        """√(F1² + F2²): the norm that ranks starting points."""
        return np.hypot(self.F1, self.F2)


def se_residual(lt, lg, moments, s2p, delta, derivs=True) -> Residual:
    """Residuals of the (τ, γ) equations in log form,

        F1 = log(σ²/δ + M/δ) − 2 log τ,   F2 = log D − log δ,

    with :class:`Moments` (D, M, ∂τD, ∂γD, ∂τM, ∂γM) = moments(τ, γ, derivs) and s2p = σ²/δ.
    Returns :class:`Residual`; J is the Jacobian in (log τ, log γ) (None without ``derivs``)."""
    tau, gamma = np.exp(lt), np.exp(lg)
    D, M, Dt, Dg, Mt, Mg = moments(tau, gamma, derivs)
    T = s2p + M / delta
    F1 = np.log(T) - 2.0 * lt
    F2 = np.log(D) - np.log(delta)
    if not derivs:
        return Residual(F1, F2, None, D, M)
    J = np.empty(lt.shape + (2, 2))
    J[:, 0, 0] = tau * Mt / delta / T - 2.0
    J[:, 0, 1] = gamma * Mg / delta / T
    J[:, 1, 0] = tau * Dt / D
    J[:, 1, 1] = gamma * Dg / D
    return Residual(F1, F2, J, D, M)


def reduced_slope(J):
    """dF1/dlog τ along the curve F2 = 0 (γ = γ(τ)): J₀₀ − J₀₁J₁₀/J₁₁."""
    return J[:, 0, 0] - J[:, 0, 1] * J[:, 1, 0] / J[:, 1, 1]


# ---------------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------------


def bracketed_newton(x, lo, hi, fdf, tol, xtol, max_iter):
    """Vectorised safeguarded Newton for F(x) = 0 with F decreasing, F(lo) > 0 > F(hi).
    ``fdf(x[idx], idx) -> (F, F')``; x, lo, hi (1-d) are updated in place.

    Each iterate shrinks the bracket by the sign of F; the Newton candidate is taken only when it
    is finite and strictly inside the bracket, else the midpoint (so it cannot diverge, and keeps
    Newton's quadratic rate near the root). A point stops when |F| < tol or the bracket is below
    xtol; ``max_iter`` is a cap. Returns x.
    """
    active = np.ones(x.size, bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        F, dF = fdf(x[idx], idx)
        lo[idx] = np.where(F > 0, x[idx], lo[idx])
        hi[idx] = np.where(F > 0, hi[idx], x[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            cand = x[idx] - F / dF
        bad = ~np.isfinite(cand) | (cand <= lo[idx]) | (cand >= hi[idx])
        cand = np.where(bad, 0.5 * (lo[idx] + hi[idx]), cand)
        done = (np.abs(F) < tol) | (hi[idx] - lo[idx] < xtol)
        x[idx] = np.where(done, x[idx], cand)
        active[idx[done]] = False
    return x


def _log_tau_bracket(R, s2p, EB2, delta, floor):
    """(lo, hi) in log τ with R(lo) > 0 > R(hi) (where reachable): stepping outwards from the
    scale of the min-ℓ2 solution, down from max(σ', ``floor``) or max(σ', 1e-6·scale)."""
    all_idx = np.arange(delta.size)
    scale = np.sqrt(np.maximum(s2p / (1 - delta) + EB2 / delta, 1e-300))
    hi = np.log(scale) + 1.0
    lo = np.log(np.maximum(np.sqrt(s2p), 1e-6 * scale))
    if floor is not None:  # τ ≳ floor in the recovery phase: start the downward search there
        lo = np.minimum(lo, np.log(np.maximum(np.sqrt(s2p), floor)))
    for _ in range(40):  # R(hi) < 0
        f, _ = R(hi, all_idx, False)
        grow = ~(f < 0)
        if not np.any(grow):
            break
        hi = np.where(grow, hi + 2.0, hi)
    for _ in range(60):  # R(lo) > 0 (σ' > 0 gives it at lo = log σ' already)
        f, _ = R(lo, all_idx, False)
        grow = ~(f > 0) & (lo > -700)
        if not np.any(grow):
            break
        lo = np.where(grow, lo - 5.0, lo)
    return lo, hi


def nested_log_tau(R, s2p, EB2, delta, tol, max_iter, floor=None):
    """Solve the reduced equation R(log τ) = F1(log τ, log γ(τ)) = 0.

    ``R(lt, idx, derivs)`` -> (F1, log γ) or, with ``derivs``, (F1, log γ, dF1/dlog τ along γ(τ)).
    R → +∞ as τ → 0 (M > 0) and R < 0 for large τ, so a sign bracket exists: it is found by
    stepping outwards in log τ from the scale of the min-ℓ2 solution (down from
    max(σ', ``floor``) when a floor is given, else from max(σ', 1e-6·scale)), then
    :func:`bracketed_newton`. Returns (log τ, log γ).
    """
    lo, hi = _log_tau_bracket(R, s2p, EB2, delta, floor)
    lg = np.zeros(delta.size)

    def fdf(lt, idx):
        F, lg[idx], dR = R(lt, idx, True)
        return F, dR

    lt = bracketed_newton(0.5 * (lo + hi), lo, hi, fdf, tol, 1e-15, max_iter)
    return lt, lg


def _newton_direction(F, J, finite_det):
    """The Newton step −J⁻¹F (rows of F (…, 2), J (…, 2, 2)), −F where J is singular, scaled so
    that no component exceeds 2. Returns (s1, s2)."""
    det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
    ok = np.abs(det) > 1e-300
    if finite_det:
        ok = np.isfinite(det) & ok
    det = np.where(ok, det, 1.0)
    s1 = -(J[:, 1, 1] * F[:, 0] - J[:, 0, 1] * F[:, 1]) / det
    s2 = -(-J[:, 1, 0] * F[:, 0] + J[:, 0, 0] * F[:, 1]) / det
    s1 = np.where(ok, s1, -F[:, 0])
    s2 = np.where(ok, s2, -F[:, 1])
    big = np.maximum(np.abs(s1), np.abs(s2))
    scale = np.minimum(1.0, 2.0 / np.maximum(big, 1e-300))
    return s1 * scale, s2 * scale


def _backtrack(lt0, lg0, s1, s2, nrm, idx, resid):
    """Backtracking on the max-norm from (lt0, lg0) along (s1, s2) at the points ``idx``: halve
    the step (at most 12 times) until max|F| < (1 − 1e-4·step)·nrm; a point whose line search
    fails takes the smallest step anyway. Returns the new (lt, lg) at ``idx``."""
    step = np.ones(idx.size)
    pending = np.ones(idx.size, bool)
    new_lt, new_lg = lt0.copy(), lg0.copy()
    for _ls in range(12):
        j = np.flatnonzero(pending)
        if j.size == 0:
            break
        tl = lt0[j] + step[j] * s1[j]
        tg = lg0[j] + step[j] * s2[j]
        G1, G2, _ = resid(tl, tg, idx[j], False)
        gn = np.maximum(np.abs(G1), np.abs(G2))
        acc = np.isfinite(gn) & (gn < (1 - 1e-4 * step[j]) * nrm[j])
        new_lt[j[acc]] = tl[acc]
        new_lg[j[acc]] = tg[acc]
        pending[j[acc]] = False
        step[j[~acc]] *= 0.5
    # points whose line search failed take the smallest step anyway (may escape a flat spot)
    j = np.flatnonzero(pending)
    new_lt[j] = lt0[j] + step[j] * s1[j]
    new_lg[j] = lg0[j] + step[j] * s2[j]
    return new_lt, new_lg


def damped_newton(lt, lg, resid, tol, max_iter, finite_det=False):
    """Damped Newton on the 2-d system F(log τ, log γ) = 0, vectorised over points; lt, lg (1-d)
    are updated in place (every point ends at its last iterate).

    ``resid(lt, lg, idx, derivs) -> (F1, F2, J)`` at the points ``idx`` (J: (…, 2, 2) Jacobian,
    None without ``derivs``). A point stops once max(|F1|, |F2|) < tol; ``max_iter`` is a cap.

    - Damping: the Newton step is scaled so that no component exceeds 2 in log units (a factor e²
      in τ or γ). Far from the root the Jacobian of the log-moment equations is poor (dead zone
      of the prox, τ → 0), and an undamped step can leave the region where the moments are
      representable. A singular Jacobian (|det| ≤ 1e-300; with ``finite_det`` also a non-finite
      det) falls back to the step −F.
    - Backtracking on the max-norm (the same norm as the stopping test, so acceptance and
      convergence agree): halve the step until max|F| < (1 − 1e-4·step)·max|F_old| (Armijo-type
      sufficient decrease), non-finite residuals rejected.
    - 12 halvings (step ≥ 2⁻¹¹ ≈ 5e-4) bound the cost per iteration; a point whose line search
      fails takes that smallest step anyway, which may escape a flat spot of the max-norm.
    """
    active = np.ones(lt.size, bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        F1, F2, J = resid(lt[idx], lg[idx], idx, True)
        F = np.stack([F1, F2], -1)
        nrm = np.max(np.abs(F), -1)
        done = nrm < tol
        active[idx[done]] = False
        keep = ~done
        if not np.any(keep):
            break
        idx, F, J, nrm = idx[keep], F[keep], J[keep], nrm[keep]
        s1, s2 = _newton_direction(F, J, finite_det)
        lt[idx], lg[idx] = _backtrack(lt[idx], lg[idx], s1, s2, nrm, idx, resid)
    return lt, lg
