"""Long-time (static) predictions for gradient flow of the depth-L ``pm`` network (theory.md §6).

Network β = u^L − v^L (coordinate-wise), u₀ = v₀ = α, L ≥ 2, objective
(1/(2δ))‖y − Xβ‖² + (λ/2)(‖u‖² + ‖v‖²), gradient flow (dt → 0). Conventions and error
normalisation are those of :mod:`dln_kernels.static.solver` (E_test = ‖β_∞ − β*‖²/(2d),
E_train = ‖y − Xβ_∞‖²/(2n)).

Implicit bias (λ = 0). With S(t) = ∫₀ᵗ g (g = Xᵀr/δ) the flow u̇ = L u^{L−1} g, v̇ = −L v^{L−1} g
integrates, for L ≥ 3, to u^{2−L} = α^{2−L}(1 − s), v^{2−L} = α^{2−L}(1 + s) with
s = κS, κ = L(L − 2)α^{L−2}, so

    β = α^L h_L(κS),   h_L(s) = (1 − s)^{−q} − (1 + s)^{−q},   q = L/(L − 2),   s ∈ (−1, 1).

β is the gradient of the convex conjugate of Q_L, Q_L′(β) = S = h_L⁻¹(β/α^L)/κ, Q_L(0) = 0, and
S(t) ∈ range(Xᵀ) (mirror descent). At a limit with Xβ_∞ = y the KKT conditions of
argmin Σᵢ Q_L(βᵢ) s.t. Xβ = y hold, hence (δ < 1) β_∞ is the minimum-Q_L interpolator.
For L = 2: u = α e^{2S}, v = α e^{−2S}, β = 2α² sinh(4S), Q_2′(β) = ¼ arcsinh(β/(2α²)), i.e.
Q_2 = Φ_c/2 with c = 4α² (the ``uv`` network at α_uv = 2α, theory.md §6: β_pm(α, t, λ) =
β_uv(2α, 2t, λ/2); the time factor does not change the limit, and the factor ½ in Q_2 only
rescales γ: prox_{γQ_2} = prox_{(γ/2)Φ_c}).

Regimes returned by :func:`solve_static_depth` (codes as in :mod:`static`):

- λ = 0, δ < 1: minimum-Q_L interpolator; (τ, γ) state evolution of theory.md §3 with
  p = prox_{γQ_L} (root z of z + γQ_L′(z) = x), solved exactly like the depth-2 one (damped Newton
  in (log τ, log γ), analytic Jacobian, piecewise Gauss–Legendre split at the prox kinks, bracketed
  fallback). ``gamma`` is the prox parameter of Q_L as normalised above (for L = 2 it is twice the
  γ of :func:`static.solve_static` at α_uv = 2α).
- λ = 0, δ > 1 (least squares), δ = 1 (square), β* = 0 and σ = 0 (trivial): independent of L and
  α, taken from :func:`static.solve_static`.
- λ > 0, L = 2: LASSO with penalty (λ/2)‖β‖₁ (min over u² − v² = β of (λ/2)(u² + v²) is (λ/2)|β|),
  from :func:`static.solve_static` with weight decay λ/2.
- λ > 0, L > 2: **not implemented** — the penalty min over u^L − v^L = β of (u² + v²)/2 is
  |β|^{2/L}/2, non-convex, so the long-time limit is a (path-dependent) local minimiser and no
  state evolution describes it. These points are returned as NaN with ``converged = False``,
  ``residual = NaN`` and ``regime = REGIME_NONCONVEX`` (no exception, so mixed grids still run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dln_kernels.model.priors import DEFAULT_PRIOR, prior_of, second_moment
from dln_kernels.static.solver import (
    REGIME_INTERPOLATOR,
    REGIME_LASSO,
    REGIME_LEAST_SQUARES,
    REGIME_SQUARE,
    REGIME_TRIVIAL,
    SolveOptions,
    chunks_of,
    empty_result,
    flat_points,
    gamma_from_threshold,
    kink_z,
    l1_interpolator,
    phi_c,
    prox_inverse,
    prox_w,
    reshaped,
    solve_static,
    store_interpolator,
)
from dln_kernels.static.state_evolution import (
    Z_MAX,
    NodeValues,
    Residual,
    abs_tail,
    accumulate_moments,
    bracketed_newton,
    damped_newton,
    nested_log_tau,
    quiet,
    reduced_slope,
    se_residual,
    split_rule,
    take_components,
)

__all__ = [  # the public names (the REGIME_* codes of ``static`` are re-exported, plus one)
    "REGIME_INTERPOLATOR", "REGIME_LEAST_SQUARES", "REGIME_SQUARE", "REGIME_LASSO", "REGIME_TRIVIAL",
    "REGIME_NONCONVEX", "KINK_RATIO", "h_depth", "qprime_depth", "q_depth", "prox_depth",
    "interpolator_moments_depth", "solve_static_depth", "solve_static_network",
]

# Regime codes: those of ``static`` (imported above) plus one.
REGIME_NONCONVEX = 5  # λ > 0 and L > 2: non-convex penalty |β|^{2/L}, no static theory (NaN)

KINK_RATIO = 8.0  # geometric ratio of the z-ladder of quadrature breakpoints (L > 2)


# ---------------------------------------------------------------------------------------------
# Potentials Q_L: the prox and its derivatives (one class per family, arrays over points)
# ---------------------------------------------------------------------------------------------


class _PotentialL2:
    """Q_2 = Φ_c/2, c = 4α² (L = 2). Wraps the depth-2 prox of :mod:`static` with γ_Φ = γ/2."""

    def __init__(self, alpha):
        self.alpha = np.asarray(alpha, float)
        self.c = 4.0 * self.alpha**2

    def take(self, idx):
        return _PotentialL2(self.alpha[idx])

    def col(self):
        return _PotentialL2(self.alpha[..., None])

    def prox(self, x, gamma):
        """(p, Q′(p), p′, 1 − p′, p″) of prox_{γQ}(x), elementwise (p′, p″ in x)."""
        c, gp = self.c, 0.5 * gamma
        w, _, _ = prox_w(x, gp, c)
        p = 0.5 * c * np.sinh(w)
        s = c * np.cosh(w)  # √(c² + 4p²)
        return p, 0.25 * w, s / (s + gp), gp / (s + gp), 4.0 * gp * p / (s + gp) ** 3

    def qprime(self, z):
        return 0.25 * np.arcsinh(2.0 * np.asarray(z, float) / self.c)

    def prox_inverse(self, z, gamma):
        return prox_inverse(z, 0.5 * gamma, self.c)

    def kink_z(self, gamma, zmax):
        return kink_z(0.5 * gamma, self.c, zmax)

    def gamma_lazy(self, delta):
        """γ with p′(0) = δ: p′(0) = 1/(1 + γQ″(0)), Q″(0) = 1/(2c)."""
        return 2.0 * self.c * (1.0 / delta - 1.0)

    def gamma_threshold(self, theta):
        return 2.0 * gamma_from_threshold(theta, self.c)

    def tau_floor(self):
        return None


class _Curve(NamedTuple):
    """A point of the curve β = m h(s), carried as (s, e = 1 − s), in the logarithmic form of
    :class:`_PotentialPower` (arrays)."""

    log_e: np.ndarray  # log e
    w: np.ndarray  # log((1 + s)/(1 − s))
    P: np.ndarray  # m e^{−q} (= u^L)
    E1: np.ndarray  # 1 − e^{−qw}
    b: np.ndarray  # e^{−(q+1)w}
    z: np.ndarray  # m h(s) = P·E1
    N: np.ndarray  # m h′(s) = q (P/e)(1 + b)


class _PotentialPower:
    """Q_L for real L > 2 (theory.md §6): Q′(β) = h_L⁻¹(β/m)/κ, m = α^L, κ = L(L − 2)α^{L−2}.

    Internally every point on the curve β = m h(s) is carried as the pair (s, e = 1 − s), with
    the representation that is exact in each half: s itself for s < ½ (tiny |β|/m: no loss when
    s → 0) and e for s ≥ ½ (large |β|/m: no loss when s → 1, where h blows up). All powers are
    evaluated through logarithms: with w = log((1 + s)/(1 − s)) and P = m e^{−q} (= u^L),

        m h = P (1 − e^{−qw}),   N := m h′ = q (P/e)(1 + e^{−(q+1)w}),
        m h″/N² = ((q + 1)/q) (1 − e^{−(q+2)w}) / (P (1 + e^{−(q+1)w})²),

    so nothing overflows or cancels for any |β|/m representable in float64.
    """

    def __init__(self, alpha, L):
        self.alpha = np.asarray(alpha, float)
        self.L = float(L)
        if not self.L > 2:
            raise ValueError(f"_PotentialPower: needs L > 2, got {L}")
        self.q = self.L / (self.L - 2.0)
        la = np.log(self.alpha)
        self.logm = self.L * la
        self.kappa = np.exp(np.log(self.L * (self.L - 2.0)) + (self.L - 2.0) * la)

    def take(self, idx):
        return _PotentialPower(self.alpha[idx], self.L)

    def col(self):
        return _PotentialPower(self.alpha[..., None], self.L)

    # -- the curve β = m h(s) ---------------------------------------------------------------
    @staticmethod
    def _logs(s, e):
        """(log e, w) with w = log((1 + s)/(1 − s)) = log1p(2s/e): both accurate in either
        representation (e = 1 − s has relative error ≤ ε whether s or e is the stored one)."""
        return np.log(e), np.log1p(2.0 * s / e)

    def _curve(self, s, e, logm) -> _Curve:
        """The :class:`_Curve` at (s, e) with s ≥ 0, for m = exp(``logm``)."""
        q = self.q
        le, w = self._logs(s, e)
        P = np.exp(logm - q * le)
        E1 = -np.expm1(-q * w)
        b = (1.0 - E1) * (e / (2.0 - e))
        return _Curve(log_e=le, w=w, P=P, E1=E1, b=b, z=P * E1, N=q * (P / e) * (1.0 + b))

    def _terms(self, s, e):
        """(z = m h(s), N = m h′(s), R2 = m h″/N²) at (s, e) with s ≥ 0."""
        q = self.q
        c = self._curve(s, e, self.logm)
        R2 = (q + 1.0) / q * -np.expm1(-(q + 2.0) * c.w) / (c.P * (1.0 + c.b) ** 2)
        return c.z, c.N, R2

    def _upper_bounds(self, a, g, logm):
        """The Newton start of :meth:`solve` (1-d arrays): min(a/g, y/(2q), 1 − (1 + y)^{−1/q})
        with y = a/m, as (s, e); (0, 1) where a = 0."""
        q = self.q
        ly = np.log(a) - logm
        l1y = np.logaddexp(0.0, ly)  # log(1 + y)
        s2 = -np.expm1(-l1y / q)
        e2 = np.exp(-l1y / q)
        s1 = a / g
        s3 = np.exp(np.minimum(ly, 700.0)) / (2.0 * q)
        s = np.minimum(np.minimum(s1, s3), s2)
        e = np.where(s == s2, e2, 1.0 - s)
        pos = a > 0
        return np.where(pos, s, 0.0), np.where(pos, e, 1.0)

    def _newton_step(self, s, e, a, g, logm):
        """One Newton step of :meth:`solve` on F(s) = m h(s) + g s − a (1-d arrays over the
        active elements). Returns (s_new, e_new, done)."""
        q = self.q
        c = self._curve(s, e, logm)
        # g s − a as (g − a) − g e where s ≈ 1: at the dead-zone edge (a ≈ g) the root has
        # z ≪ a and e may be far below ε, which the rounded s = 1 − e cannot carry
        F = np.where(s < 0.5, c.z + g * s - a, c.z - g * e + (g - a))
        ds = F / (c.N + g)
        ds = np.where(np.isfinite(ds), ds, 0.0)
        sn = np.maximum(s - ds, 0.0)
        en = np.minimum(e + ds, 1.0)
        small = sn < 0.5
        s_new = np.where(small, sn, 1.0 - en)
        e_new = np.where(small, 1.0 - sn, en)
        # F at its rounding level: z = exp(log m − q log e)(1 − e^{−qw}) carries a relative
        # error ≈ ε(|log m| + q(1 + |log e| + w)) (ε absolute in log e, ε relative in w)
        lin = np.where(s < 0.5, g * s + a, np.abs(g - a) + g * e)
        f_tol = 4e-16 * ((2.0 + np.abs(logm) + q * (1.0 - c.log_e + c.w)) * c.z + lin)
        done = (np.abs(ds) <= 1e-15 * np.minimum(s_new, e_new)) | (np.abs(F) <= f_tol)
        return s_new, e_new, done

    @quiet
    def solve(self, a, g, max_iter: int = 100):
        """(s, e) with m h(s) + g s = a for a ≥ 0, g ≥ 0 (g = 0: s = h⁻¹(a/m)); arrays broadcast
        with the potential's parameters.

        F(s) = m h(s) + g s − a is increasing and convex on [0, 1), so Newton started at an upper
        bound of the root decreases monotonically onto it (no safeguard needed). Upper bounds:
        s ≤ a/g; s ≤ y/(2q) (h(s) ≥ h′(0)s = 2qs by convexity), y = a/m; and
        1 − s ≥ (1 + y)^{−1/q} (h(s) ≥ (1 − s)^{−q} − 1). The update is applied to s and to
        e = 1 − s separately (e + Δ is exact where s ≈ 1, s − Δ where s ≈ 0), and only the
        elements not yet converged are iterated. An element stops when its step is below 1e-15 of
        min(s, e) or F is at its rounding level; ``max_iter`` is a cap (≤ 12 iterations were needed
        over L ∈ {2.01, 3, 4, 10}, α ∈ [1e-6, 30], g ∈ [0, 1e3], |x| ∈ [1e-6, 30]; up to ≈ 80 exactly
        at the dead-zone edge |x| = g, where e grows by ≈ 1 + 1/q per step from ε-level).
        Accuracy against 150-digit mpmath: ≤ 9e-14 relative in p, s, p′, p″.
        """
        a, g, logm = np.broadcast_arrays(np.asarray(a, float), np.asarray(g, float), self.logm)
        shape = a.shape
        a, g, logm = a.ravel(), g.ravel(), logm.ravel()
        s, e = self._upper_bounds(a, g, logm)
        idx = np.flatnonzero(a > 0)
        self.last_iter = 0
        for it in range(1, max_iter + 1):
            if idx.size == 0:
                break
            self.last_iter = it
            s_new, e_new, done = self._newton_step(s[idx], e[idx], a[idx], g[idx], logm[idx])
            s[idx], e[idx] = s_new, e_new
            idx = idx[~done]
        return s.reshape(shape), e.reshape(shape)

    def value(self, beta):
        """Q_L(β) (see :func:`q_depth`): (m/κ)[s h(s) − H(s)] at s = h⁻¹(|β|/m), with
        H(s) = [(1 − s)^{1−q} + (1 + s)^{1−q} − 2]/(q − 1) (its series for s < 1e-3)."""
        q = self.q
        s, e = self.solve(np.abs(beta), 0.0)
        le, w = self._logs(s, e)
        hs = np.exp(-q * le) * -np.expm1(-q * w)
        big = (np.expm1((1 - q) * le) + np.expm1((1 - q) * np.log1p(s))) / (q - 1)
        # series of H(s) = Σ_{j odd} 2 C_j s^{j+1}/(j+1), C_j = Γ(q + j)/(Γ(q) j!)
        c1 = q
        c3 = q * (q + 1) * (q + 2) / 6
        c5 = c3 * (q + 3) * (q + 4) / 20
        ser = 2 * (c1 * s**2 / 2 + c3 * s**4 / 4 + c5 * s**6 / 6)
        H = np.where(s < 1e-3, ser, big)
        return np.exp(self.logm) / self.kappa * (s * hs - H)

    # -- the interface used by the state evolution ------------------------------------------
    def prox(self, x, gamma):
        """(p, Q′(p), p′, 1 − p′, p″) of prox_{γQ_L}(x): the root of z + γQ_L′(z) = x, i.e.
        z = m h(s) with m h(s) + (γ/κ)s = |x|; p′ = N/(N + g), p″ = g m h″/(N + g)³, g = γ/κ."""
        x = np.asarray(x, float)
        g = gamma / self.kappa
        s, e = self.solve(np.abs(x), g)
        z, N, R2 = self._terms(s, e)
        dp = 1.0 / (1.0 + g / N)
        om = 1.0 / (1.0 + N / g)
        sg = np.sign(x)
        return sg * z, sg * s / self.kappa, dp, om, sg * om * dp * dp * R2

    def qprime(self, z):
        z = np.asarray(z, float)
        s, _ = self.solve(np.abs(z), 0.0)
        return np.sign(z) * s / self.kappa

    def prox_inverse(self, z, gamma):
        return np.asarray(z, float) + gamma * self.qprime(z)

    def kink_z(self, gamma, zmax):
        """Breakpoints in z: m (where h turns from linear to power law) and a geometric ladder
        z_k·R^j, j = −2 … K (z_k R^K ≥ zmax), around the kink z_k ≈ m (g/(qm))^{q/(q+1)} where
        N(z) = g, i.e. p′ = ½ (z_k = m when g ≤ qm: no kink)."""
        g = gamma / self.kappa
        lzk = self.logm + self.q / (self.q + 1.0) * np.maximum(np.log(g / self.q) - self.logm, 0.0)
        zk = np.exp(lzk)
        lr = np.log(KINK_RATIO)
        kmax = int(np.ceil(np.log(max(float(np.max(zmax / zk)), 1.0)) / lr))
        kmax = min(max(kmax, 0), 40)
        kmin = int(np.ceil(float(np.max(lzk - self.logm)) / lr)) + 2
        kmin = min(max(kmin, 2), 40)
        return [np.exp(self.logm) + 0.0 * zk] + [zk * KINK_RATIO**k for k in range(-kmin, kmax + 1)]

    def gamma_lazy(self, delta):
        """γ with p′(0) = δ: Q″(0) = 1/(κ m h′(0)) = 1/(2qmκ)."""
        return 2.0 * self.q * np.exp(self.logm) * self.kappa * (1.0 / delta - 1.0)

    def gamma_threshold(self, theta):
        """γ whose dead zone |x| < γ/κ matches a soft threshold θ (exact as α → 0)."""
        return self.kappa * theta

    def tau_floor(self):
        """α^L: the scale of τ in the noiseless recovery phase (off-support |β_i| ~ α^L)."""
        return np.exp(self.logm)


def _potential(alpha, depth):
    return _PotentialL2(alpha) if float(depth) == 2.0 else _PotentialPower(alpha, depth)


# ---------------------------------------------------------------------------------------------
# Public helpers: h_L, Q_L, Q_L′ and the prox
# ---------------------------------------------------------------------------------------------


def h_depth(s, depth):
    """h_L(s) = (1 − s)^{−L/(L−2)} − (1 + s)^{−L/(L−2)} on s ∈ (−1, 1), L > 2 (β/α^L along the flow)."""
    s = np.asarray(s, float)
    q = float(depth) / (float(depth) - 2.0)
    a = np.abs(s)
    w = np.log1p(a) - np.log1p(-a)
    return np.sign(s) * np.exp(-q * np.log1p(-a)) * -np.expm1(-q * w)


@quiet
def qprime_depth(beta, alpha, depth):
    """Q_L′(β) = h_L⁻¹(β/α^L)/(L(L − 2)α^{L−2}) (L > 2), = ¼ arcsinh(β/(2α²)) (L = 2).

    Equals the mirror variable S = ∫g at which the flow sits at β. Vectorised; accurate to a few
    ulp in relative terms for every |β|/α^L representable (see :class:`_PotentialPower`)."""
    beta, alpha = np.broadcast_arrays(np.asarray(beta, float), np.asarray(alpha, float))
    return _potential(alpha, depth).qprime(beta)


@quiet
def q_depth(beta, alpha, depth):
    """The implicit-bias potential Q_L(β), Q_L(0) = 0 (convex, even).

    L > 2: with s = h_L⁻¹(|β|/α^L), Q_L = (α^L/κ)[s h_L(s) − H(s)], H(s) = ∫₀ˢ h_L =
    [(1 − s)^{1−q} + (1 + s)^{1−q} − 2]/(q − 1) (series for s < 1e-3). L = 2: Φ_{4α²}(β)/2.
    Small α: Q_L ≈ |β|/κ (ℓ1); large α: Q_L ≈ β²/(4qα^Lκ) (ℓ2)."""
    beta, alpha = np.broadcast_arrays(np.asarray(beta, float), np.asarray(alpha, float))
    if float(depth) == 2.0:
        return 0.5 * phi_c(beta, 4.0 * alpha**2)
    return _PotentialPower(alpha, depth).value(beta)


@quiet
def prox_depth(x, gamma, alpha, depth):
    """p = prox_{γQ_L}(x) and p′(x) (arrays broadcast): the root z of z + γQ_L′(z) = x."""
    x, gamma, alpha = np.broadcast_arrays(*(np.asarray(v, float) for v in (x, gamma, alpha)))
    p, _, dp, _, _ = _potential(alpha, depth).prox(x, gamma)
    return p, dp


# ---------------------------------------------------------------------------------------------
# State evolution of the minimum-Q_L interpolator (generic in the potential)
# ---------------------------------------------------------------------------------------------


def _z_nodes(mu, r, gamma, pot, n_per: int):
    """Nodes/weights for E_Z[f(μ + rZ)]: the split rule of :mod:`.state_evolution` (fixed breaks
    plus x = ±prox⁻¹(z_k) for the potential's kink ladder)."""
    shape = np.broadcast_shapes(np.shape(mu), np.shape(r), np.shape(gamma))
    zmax = np.abs(mu) + Z_MAX * np.asarray(r)
    zs = np.stack(np.broadcast_arrays(*pot.kink_z(gamma, zmax)), axis=0)  # one batched prox⁻¹
    return split_rule(mu, r, pot.prox_inverse(zs, gamma), shape, n_per)


def _moments(tau, gamma, pot, comps, n_per: int = 8, derivs: bool = True, rule=None):
    """E[p′], E[(p − B)²] and their τ-, γ-derivatives (``state_evolution.accumulate_moments``, for
    any potential; returns its ``Moments``). ∂p/∂γ = −Q′(p)p′ and ∂p′/∂γ = −p′(1 − p′)/γ − Q′(p)p″
    at fixed x."""
    pc = pot.col()

    def point(mu, R, z, A, G, derivs):  # the prox of Q_L at the nodes: NodeValues
        xm = R * z  # x − μ, exact (μ + rZ − μ would lose ε|μ|/τ: τ ~ α^L ≪ 1 in the recovery phase)
        x = mu + xm
        p, Qp, dp, omdp, d2p = pc.prox(x, G)
        e = np.where(np.abs(p) > 0.5 * np.abs(x), (1.0 - A) * xm - G * Qp, p - mu - A * xm)
        if not derivs:
            return NodeValues(dp, e)
        return NodeValues(dp, e, d2p, -Qp * dp, -dp * omdp / G - Qp * d2p)

    nodes = lambda mu, r: _z_nodes(mu, r, gamma, pot, n_per)
    return accumulate_moments(tau, gamma, comps, nodes, point, derivs, rule)


@quiet
def interpolator_moments_depth(tau, gamma, alpha, rho, depth, prior=DEFAULT_PRIOR, n_per: int = 8, rule=None):
    """(E[p′(B + τZ)], E[(p(B + τZ) − B)²]) for p = prox_{γQ_L} (arrays broadcast; 1-d results)."""
    tau, gamma, alpha, rho = (np.ravel(a) for a in np.broadcast_arrays(*(np.asarray(v, float) for v in (tau, gamma, alpha, rho))))
    comps = prior_of(prior).components(rho)
    m = _moments(tau, gamma, _potential(alpha, depth), comps, n_per, derivs=False, rule=rule)
    return m.D, m.M


def _residual(lt, lg, pot, comps, s2p, delta, n_per, derivs=True) -> Residual:
    moments = lambda tau, gamma, derivs: _moments(tau, gamma, pot, comps, n_per, derivs)
    return se_residual(lt, lg, moments, s2p, delta, derivs)


def _gamma_for_tau(lt, pot, comps, delta, n_per, tol=1e-13, max_iter=80):
    """log γ with E[p′(B + τZ)] = δ at fixed τ: safeguarded Newton inside a bracket.

    E[p′] decreases in γ from 1 to 0. Lower end: p′ ≥ p′(0) = 1/(1 + γQ″(0)) (Q″ is largest at 0
    for these potentials), so E[p′] ≥ δ at γ_lazy = (1/δ − 1)/Q″(0). Upper end: found by growing
    γ by e² until E[p′] < δ.
    """
    tau = np.exp(lt)
    lo = np.log(pot.gamma_lazy(delta))
    hi = lo + 2.0
    for _ in range(200):
        D = _moments(tau, np.exp(hi), pot, comps, n_per, derivs=False).D
        grow = ~(D < delta)
        if not np.any(grow):
            break
        hi = np.where(grow, hi + 2.0, hi)

    def fdf(lg, idx):
        g = np.exp(lg)
        m = _moments(tau[idx], g, pot.take(idx), take_components(comps, idx), n_per, True)
        return np.log(m.D) - np.log(delta[idx]), g * m.D_gamma / m.D

    return bracketed_newton(0.5 * (lo + hi), lo, hi, fdf, tol, 1e-14, max_iter)


@dataclass(frozen=True)
class _Equations:
    """The (τ, γ) equations of the minimum-Q_L interpolator at a set of points (1-d arrays):
    the potential, the prior's components, σ²/δ, δ and the nodes per quadrature piece."""

    pot: object
    comps: list
    s2p: np.ndarray
    delta: np.ndarray
    n_per: int

    def take(self, idx) -> _Equations:
        """The equations at the points ``idx``."""
        return _Equations(self.pot.take(idx), take_components(self.comps, idx), self.s2p[idx], self.delta[idx],
                          self.n_per)

    def residual(self, lt, lg, derivs=True) -> Residual:
        """``state_evolution.Residual`` at (log τ, log γ), every point."""
        return _residual(lt, lg, self.pot, self.comps, self.s2p, self.delta, self.n_per, derivs)

    def newton_residual(self, lt, lg, idx, derivs):
        """(F1, F2, J) at the points ``idx``: the ``resid`` of ``state_evolution.damped_newton``."""
        r = self.take(idx).residual(lt, lg, derivs)
        return r.F1, r.F2, r.J

    def reduced(self, lt, idx, derivs):
        """R(log τ) = F1(log τ, log γ(τ)) at the points ``idx``, with γ(τ) by :func:`_gamma_for_tau`:
        the ``R`` of ``state_evolution.nested_log_tau`` ((F1, log γ[, dR/dlog τ]))."""
        eq = self.take(idx)
        lg = _gamma_for_tau(lt, eq.pot, eq.comps, eq.delta, eq.n_per)
        r = eq.residual(lt, lg, derivs)
        if not derivs:
            return r.F1, lg
        return r.F1, lg, reduced_slope(r.J)


def _solve_nested(pot, delta, rho, sigma, prior, n_per, tol, max_iter):
    """Bracketed fallback (as ``static.solver._solve_interpolator_nested``): γ(τ) exactly, then the
    reduced equation R(log τ) = F1(log τ, log γ(τ)) by ``state_evolution.nested_log_tau``."""
    s2p = sigma**2 / delta
    eq = _Equations(pot, prior_of(prior).components(rho), s2p, delta, n_per)
    # τ ≳ α^L in the recovery phase: the downward search for the bracket starts there
    return nested_log_tau(eq.reduced, s2p, second_moment(prior, rho), delta, tol, max_iter, floor=pot.tau_floor())


class _Start(NamedTuple):
    """A starting point (log τ, log γ) of the Newton solve and where it may be chosen."""

    lt: np.ndarray
    lg: np.ndarray
    allowed: np.ndarray | bool


def _starts(pot, delta, rho, sigma, prior, s2p) -> list:
    """The candidate starts: min-ℓ2 τ with γ_lazy (exact as α → ∞), the ℓ1 interpolator's τ with
    γ matched to its threshold (exact as α → 0) and, for L > 2, three recovery-phase starts."""
    EB2 = second_moment(prior, rho)
    t2_l2 = s2p / (1 - delta) + (1 - delta) * EB2 / delta
    lt_a = 0.5 * np.log(np.maximum(t2_l2, 1e-300))
    lg_a = np.log(pot.gamma_lazy(delta)) + 0.0 * lt_a
    l1 = l1_interpolator(delta, rho, sigma, prior=prior)
    tau_l1 = np.maximum(l1["tau"], 1e-3 * np.sqrt(np.maximum(t2_l2, 1e-300)))
    lt_b = np.log(tau_l1)
    lg_b = np.log(pot.gamma_threshold(l1["theta_over_tau"] * tau_l1))
    starts = [_Start(lt_a, lg_a, True), _Start(lt_b, lg_b, True)]
    floor = pot.tau_floor()
    if floor is not None:
        # Noiseless recovery phase (L > 2, σ = 0, ℓ1 error 0): τ ≈ C·α^L with C = 4 … 1e4 and
        # γ/κ ≈ 1.5 (θ/τ)_ℓ1 τ (measured). F1 is nearly flat in log τ there, so the residual does
        # not rank the starts, and Newton from the ℓ1 start (τ floored at 1e-3·scale) would need
        # many capped steps: these starts replace it.
        rec = (l1["tau"] == 0) & (s2p == 0)
        starts[1] = _Start(lt_b, lg_b, ~rec)
        for C in (4.0, 30.0, 300.0):
            tc = C * floor
            starts.append(_Start(np.log(tc), np.log(pot.gamma_threshold(1.5 * l1["theta_over_tau"] * tc)), True))
    return starts


def _best_start(eq: _Equations, starts: list):
    """Per point, the allowed start with the smallest finite √(F1² + F2²) (else the first):
    (log τ, log γ), new arrays."""
    lt, lg, _ = starts[0]
    best = np.full(lt.shape, np.inf)
    for st in starts:
        nrm = eq.residual(st.lt, st.lg, derivs=False).hypot()
        nrm = np.where(np.isfinite(nrm) & st.allowed, nrm, np.inf)
        use = nrm < best
        lt, lg, best = np.where(use, st.lt, lt), np.where(use, st.lg, lg), np.where(use, nrm, best)
    return lt, lg


def _nested_fallback(eq: _Equations, lt, lg, rho, sigma, prior, tol, max_iter):
    """Points with max|F| ≥ 10·tol after Newton: :func:`_solve_nested`, kept only where it is
    better; lt, lg updated in place."""
    res = eq.residual(lt, lg, derivs=False).max_abs()
    bad = np.flatnonzero(~(res < tol * 10))
    if not bad.size:
        return
    lt_b, lg_b = _solve_nested(eq.pot.take(bad), eq.delta[bad], rho[bad], sigma[bad], prior, eq.n_per, tol,
                               max(3 * max_iter, 1))
    rb = eq.take(bad).residual(lt_b, lg_b, derivs=False).max_abs()
    better = np.isfinite(rb) & ~(rb >= res[bad])
    lt[bad[better]], lg[bad[better]] = lt_b[better], lg_b[better]


def _solve_interpolator(pot, delta, rho, sigma, prior, n_per=8, tol=1e-11, max_iter=30):
    """Newton solve of the (τ, γ) equations with p = prox_{γQ} (1-d arrays over points).

    Two starts (keep the one with the smaller residual): min-ℓ2 τ with γ_lazy (exact as α → ∞),
    and the ℓ1 interpolator's τ with γ matched to its threshold (exact as α → 0). Damped Newton
    with backtracking; points left unconverged go to :func:`_solve_nested`.
    """
    s2p = sigma**2 / delta
    eq = _Equations(pot, prior_of(prior).components(rho), s2p, delta, n_per)
    lt, lg = _best_start(eq, _starts(pot, delta, rho, sigma, prior, s2p))
    damped_newton(lt, lg, eq.newton_residual, tol, max_iter, finite_det=True)
    _nested_fallback(eq, lt, lg, rho, sigma, prior, tol, max_iter)
    final = eq.residual(lt, lg, derivs=False)
    res = final.max_abs()
    res = np.where(np.isfinite(res), res, np.inf)
    return {"tau": np.exp(lt), "gamma": np.exp(lg), "mse": final.M, "converged": res < 100 * tol, "residual": res}


# ---------------------------------------------------------------------------------------------
# Public solver
# ---------------------------------------------------------------------------------------------


def _check_depth(depth):
    depth = np.asarray(depth, dtype=float)
    if np.any(~np.isfinite(depth)) or np.any(depth < 2):
        raise ValueError(f"solve_static_depth: need depth ≥ 2, got {depth!r}")
    return depth


def _fill_from_solve_static(out, i, p, prior, opts: SolveOptions):
    """Trivial, least-squares, square and LASSO (L = 2) points: :func:`static.solve_static` at
    α_uv = 2α and weight decay λ/2 (independent of L and α where λ = 0)."""
    if not i.size:
        return
    r = solve_static(2.0 * p.alpha[i], p.delta[i], p.rho[i], p.sigma[i], 0.5 * p.weight_decay[i], prior=prior,
                     threshold=opts.threshold, chunk=opts.chunk)
    for k in out:
        out[k][i] = r[k]


def _fill_nonconvex(out, i):
    """λ > 0 with L > 2: no static theory (NaN, converged = False, residual = NaN)."""
    out["e_train"][i] = np.nan
    out["regime"][i] = REGIME_NONCONVEX
    out["residual"][i] = np.nan


def _fill_interpolator(out, i, p, depth, prior, comps, opts: SolveOptions):
    """λ = 0, δ < 1: the minimum-Q_L interpolator at the points ``i`` (one depth)."""
    pot = _potential(p.alpha[i], depth)
    r = _solve_interpolator(pot, p.delta[i], p.rho[i], p.sigma[i], prior, n_per=opts.n_per, tol=opts.tol,
                            max_iter=opts.max_iter)
    x_thr = pot.prox_inverse(np.full(i.size, opts.threshold), r["gamma"])
    store_interpolator(out, i, r, abs_tail(x_thr, r["tau"], take_components(comps, i)))


@quiet
def solve_static_depth(
    alpha,
    delta,
    rho,
    sigma=0.0,
    weight_decay=0.0,
    depth=2,
    prior=DEFAULT_PRIOR,
    *,
    threshold: float = 1e-2,
    n_per: int = 8,
    tol: float = 1e-11,
    max_iter: int = 30,
    chunk: int = 2048,
):
    """Long-time (d → ∞, gradient-flow) predictions for the depth-L ``pm`` network, broadcasting
    array arguments (``depth`` broadcasts too).

    Parameters: α (> 0, init scale u₀ = v₀ = α), δ = n/d (> 0), ρ ∈ [0, 1], σ ≥ 0, λ = weight
    decay ≥ 0, depth L ≥ 2 (the network needs an integer; any real L ≥ 2 is accepted for the
    potential Q_L, e.g. to study L → 2), prior (dict, see ``priors``). ``threshold``, ``n_per``,
    ``tol``, ``max_iter``, ``chunk``: as in :func:`static.solve_static`.

    Returns the dict of :func:`static.solve_static` (arrays of the broadcast shape):
    ``e_test`` = ‖β_∞ − β*‖²/(2d), ``e_train`` = ‖y − Xβ_∞‖²/(2n), ``tau``, ``gamma`` (prox
    parameter of Q_L, interpolator only), ``theta`` (LASSO, L = 2 only, threshold of the LASSO at
    penalty λ/2), ``frac_active``, ``regime``, ``converged``, ``residual``.

    Regimes: see the module docstring. λ > 0 with L > 2 gives NaN everywhere, converged = False,
    residual = NaN, regime = REGIME_NONCONVEX (documented limitation, not a solver failure).
    Raises ValueError for α ≤ 0, δ ≤ 0, ρ ∉ [0, 1], σ < 0, λ < 0 or L < 2.

    Formula sources: theory.md §3 (state evolution, least squares, LASSO) and §6 (depth-L flow);
    derivation in docs/static.md, "Depth-L networks".
    """
    p = flat_points("solve_static_depth", alpha, delta, rho, sigma, weight_decay, depth)
    _check_depth(p.depth)
    opts = SolveOptions(threshold=threshold, n_per=n_per, tol=tol, max_iter=max_iter, chunk=chunk)
    out = empty_result(p.n)
    trivial = (second_moment(prior, p.rho) == 0) & (p.sigma == 0)
    m_int = (p.weight_decay == 0) & (p.delta < 1) & ~trivial
    m_nc = (p.weight_decay > 0) & (p.depth > 2) & ~trivial
    m_rest = ~m_int & ~m_nc  # trivial, least squares, square, LASSO (L = 2): from solve_static
    _fill_from_solve_static(out, np.flatnonzero(m_rest), p, prior, opts)
    _fill_nonconvex(out, np.flatnonzero(m_nc))
    comps = prior_of(prior).components(p.rho)
    for Lv in np.unique(p.depth[m_int]):
        for i in chunks_of(m_int & (p.depth == Lv), chunk):
            _fill_interpolator(out, i, p, Lv, prior, comps, opts)
    return reshaped(out, p.shape)


def solve_static_network(alpha, delta, rho, sigma=0.0, weight_decay=0.0, prior=DEFAULT_PRIOR, *, network="uv", depth=2, **kw):
    """Dispatch on the network: ``uv`` (depth 2) → :func:`static.solve_static`, unchanged;
    ``pm`` (depth L ≥ 2) → :func:`solve_static_depth`. Keyword arguments pass through."""
    if network == "uv":
        if depth != 2:
            raise ValueError(f"depth: the 'uv' network has depth 2, got {depth!r}")
        return solve_static(alpha, delta, rho, sigma, weight_decay, prior=prior, **kw)
    if network == "pm":
        return solve_static_depth(alpha, delta, rho, sigma, weight_decay, depth, prior=prior, **kw)
    raise ValueError(f"network: unknown value {network!r}; expected 'uv' or 'pm'")
