"""Late-time convergence rate of E_train from a spectral edge, without the DMFT's cancellation.

Near the end of training (λ = 0) the DLN update is linear in the residual: with w the network's
Gauss–Newton metric (∂β/∂u)² + (∂β/∂v)² — uv: w = u² + v² (the mirror-flow metric
√(4β² + c²) of docs/theory.md); pm of depth L: w = L²(u^{2L−2} + v^{2L−2}) — exact at first
order in the gradient for any dt,

    β_{k+1} − β_k = dt · w ⊙ g_k + O(dt² g²),   g_k = Xᵀ r_k / δ,
    r_{k+1} = (I − dt · S) r_k   (on the column space of X),   S = X diag(w) Xᵀ / δ.

So the residual contracts per step by q = max(|1 − dt s_min|, |1 − dt s_max|) over the nonzero
spectrum of S, and E_train = ‖r‖²/(2n) decays at the continuous-time rate −2 ln q / dt (up to a
power-law prefactor: the spectral density vanishes like a square root at a soft edge, so
E_train ∝ t^{−3/2} e^{−rate·t}). For δ > 1 with σ > 0 it is the rate at which E_train
approaches its non-zero limit.

With X_ij ~ N(0, 1/d), S = Z diag(w) Zᵀ / n for a standard Gaussian n×d matrix Z: its nonzero
spectrum is that of a sample covariance with population spectrum H = law(w) and aspect ratio
γ = d/n = 1/δ. As d → ∞ its edges are the critical values of the inverse Stieltjes transform
(Silverstein–Choi)

    x(m) = −1/m + γ E_H[w / (1 + w m)],   x'(m) = 0  ⇔  γ E_H[(w m / (1 + w m))²] = 1,

on the branches m > 0 (lower edge, δ < 1), m < −1/w_min (lower edge, δ > 1) and
−1/w_max < m < 0 (upper edge). The DMFT's paths give H: their final (u, v) are samples of the
single-coordinate process, and nothing here subtracts two nearly equal numbers, so the rate is
free of the Monte-Carlo floor that limits a direct fit of E_train. For W = I this reduces to the
Marchenko–Pastur edges (1 ± 1/√δ)².
"""

from __future__ import annotations

import numpy as np

_ITERATIONS = 200  # bisection steps on a log scale: far below float64 resolution


def _solve(lo, hi, fn):
    """Vectorised bisection for the sign change of fn on [lo, hi] (fn(lo) < 0 < fn(hi))."""
    for _ in range(_ITERATIONS):
        mid = 0.5 * (lo + hi)
        neg = (fn(mid) < 0).reshape(mid.shape)
        lo = np.where(neg, mid, lo)
        hi = np.where(neg, hi, mid)
    return 0.5 * (lo + hi)


def spectrum_edges(w, delta):
    """Edges (s_min, s_max) of the nonzero spectrum of X diag(w) Xᵀ / δ as d → ∞.

    w: (P, N) samples of the weight law (one row per parameter point), all > 0;
    delta: (P,) sample ratios. δ = 1 gives s_min = 0 (hard edge at zero).
    """
    w = np.asarray(w, dtype=float)
    delta = np.broadcast_to(np.asarray(delta, dtype=float), w.shape[:1])
    if np.any(~(w > 0)):
        raise ValueError("spectrum_edges: weights must be positive and finite")
    gamma = (1.0 / delta)[:, None]
    w_min, w_max = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)

    def crit(m):  # γ E[(wm/(1+wm))²] − 1, increasing towards each branch's singular end
        z = w * m
        return gamma[:, 0] * np.mean((z / (1.0 + z)) ** 2, axis=1) - 1.0

    def value(m):
        return -1.0 / m[:, 0] + gamma[:, 0] * np.mean(w / (1.0 + w * m), axis=1)

    # upper edge: m = −q / w_max with q = 1 − e^{−y}, y ∈ (1e-12, 60) (log scale in 1 − q)
    def up(y):
        return crit(-(1.0 - np.exp(-y)) / w_max)

    y = _solve(np.full_like(w_max, 1e-12), np.full_like(w_max, 60.0), up)
    s_max = value(-(1.0 - np.exp(-y)) / w_max)

    s_min = np.zeros(w.shape[0])
    below = delta < 1.0
    above = delta > 1.0
    if below.any():  # m = e^x > 0; crit rises from −1 (m → 0) to γ − 1 > 0 (m → ∞)
        wb, gb = w[below], gamma[below]
        scale = np.median(wb, axis=1, keepdims=True)

        def low(x):
            z = wb * np.exp(x) / scale
            return gb[:, 0] * np.mean((z / (1.0 + z)) ** 2, axis=1) - 1.0

        x = _solve(np.full((wb.shape[0], 1), -60.0), np.full((wb.shape[0], 1), 60.0), low)
        m = np.exp(x) / scale
        s_min[below] = -1.0 / m[:, 0] + gb[:, 0] * np.mean(wb / (1.0 + wb * m), axis=1)
    if above.any():  # m = −(1 + e^x)/w_min; crit falls from +∞ (x → −∞) to γ − 1 < 0 (x → ∞)
        wa, ga, wmin = w[above], gamma[above], w_min[above]

        def low_neg(x):
            z = -wa * (1.0 + np.exp(x)) / wmin
            return -(ga[:, 0] * np.mean((z / (1.0 + z)) ** 2, axis=1) - 1.0)

        x = _solve(np.full((wa.shape[0], 1), -60.0), np.full((wa.shape[0], 1), 60.0), low_neg)
        m = -(1.0 + np.exp(x)) / wmin
        s_min[above] = -1.0 / m[:, 0] + ga[:, 0] * np.mean(wa / (1.0 + wa * m), axis=1)
    return s_min, s_max


def rate_from_edges(s_min, s_max, dt):
    """Continuous-time decay rate of E_train, −2 ln max(|1 − dt s_min|, |1 − dt s_max|) / dt."""
    dt = np.asarray(dt, dtype=float)
    q = np.maximum(np.abs(1.0 - dt * s_min), np.abs(1.0 - dt * s_max))
    with np.errstate(divide="ignore"):
        return -2.0 * np.log(q) / dt


def edge_rate(w, delta, dt):
    """Late-time decay rate of E_train for weights w (P, N): (rate, s_min, s_max), each (P,)."""
    s_min, s_max = spectrum_edges(w, delta)
    return rate_from_edges(s_min, s_max, dt), s_min, s_max


def finite_rate(X, w, delta, dt):
    """The same rate for one finite instance: exact eigenvalues of X diag(w) Xᵀ / δ (or of its
    d×d companion), zero eigenvalues of the rank-deficient side dropped."""
    n, d = X.shape
    if n <= d:
        ev = np.linalg.eigvalsh((X * w) @ X.T / delta)
    else:
        sw = np.sqrt(w)
        ev = np.linalg.eigvalsh((X * sw).T @ (X * sw) / delta)
    return rate_from_edges(ev.min(), ev.max(), dt), ev.min(), ev.max()
