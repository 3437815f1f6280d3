"""Exact d → ∞ answer for constant-step GD of the linear model, by Marchenko–Pastur quadrature.

Independent of the DMFT: it diagonalises the finite-d iteration and averages over the limiting
spectrum of H = XᵀX/δ (X ∈ R^{n×d}, entries N(0, 1/d), n = δd). H is a sample covariance with
aspect ratio γ = d/n = 1/δ; its spectral law is

    μ(ds) = (1 − δ)⁺ δ₀(ds) + √((b − s)(s − a)) / (2πγ s) 1_{[a, b]}(s) ds,   a, b = (1 ∓ √γ)².

Per eigendirection (eigenvalue s) of the iteration β_{k+1} = β_k + dt (g_k − λβ_k), β₀ = 0,
g = Xᵀ(y − Xβ)/δ, y = Xβ* + σξ, with Δ = β − β*, q = 1 − dt(s + λ), the components of β* and
b = Xᵀξ/δ in that direction have E[β̃*²] = m₂ = E[B²], E[b̃²] = s/δ, E[β̃* b̃] = 0, and

    Δ̃_k = −β̃* [q^k + (1 − q^k) λ/(s + λ)] + σ b̃ (1 − q^k)/(s + λ),

((1 − q^k)/(s + λ) read as k·dt when s + λ = 0). Hence, per direction,

    E[Δ̃_k²]      = m₂ [q^k + (1 − q^k) λ/(s + λ)]² + σ² (s/δ) [(1 − q^k)/(s + λ)]²,
    E[b̃ Δ̃_k]    = σ (s/δ) (1 − q^k)/(s + λ),

and, with ‖r‖²/n = σ² + (1/d) Σ (s Δ̃² − 2σ b̃ Δ̃) (using ‖ξ‖² = n, XᵀX = δH, Xᵀξ = δb),

    E_test(k)  = ½ ∫ μ(ds) E[Δ̃_k²],
    E_train(k) = ½ [σ² + ∫ μ(ds) (s E[Δ̃_k²] − 2σ E[b̃ Δ̃_k])].

The continuous part is integrated by Gauss–Chebyshev quadrature of the second kind in
s = (a + b)/2 + (b − a)/2 · x, which absorbs the square-root edges exactly.
"""

from __future__ import annotations

import math

import numpy as np


def mp_edges(delta: float) -> tuple[float, float]:
    g = 1.0 / delta
    return (1.0 - math.sqrt(g)) ** 2, (1.0 + math.sqrt(g)) ** 2


def mp_quadrature(delta: float, n_nodes: int = 4000):
    """Nodes s and weights w with Σ w f(s) ≈ ∫ μ(ds) f(s) (atom at 0 included when δ < 1)."""
    g = 1.0 / delta
    a, b = mp_edges(delta)
    j = np.arange(1, n_nodes + 1)
    theta = j * math.pi / (n_nodes + 1)
    x = np.cos(theta)
    s = 0.5 * (a + b) + 0.5 * (b - a) * x
    # ∫ f(s) √((b−s)(s−a))/(2πγ s) ds = ∫ f(s) ((b−a)/2)² √(1−x²)/(2πγ s) dx
    w = (math.pi / (n_nodes + 1)) * np.sin(theta) ** 2  # Gauss–Chebyshev(2): ∫ h(x)√(1−x²) dx
    w = w * (0.5 * (b - a)) ** 2 / (2.0 * math.pi * g * s)
    if delta < 1.0:
        s = np.concatenate([[0.0], s])
        w = np.concatenate([[1.0 - delta], w])
    return s, w


def linear_gd_errors(
    *, delta: float, dt: float | None = None, steps, m2: float, sigma: float = 0.0, weight_decay: float = 0.0,
    n_nodes: int | None = None, dt_schedule=None,
) -> tuple[np.ndarray, np.ndarray]:
    """(E_train(k), E_test(k)) at the given steps k for the d → ∞ linear model.

    m2 = E[β*²] (e.g. ``priors.second_moment(prior, rho)``). ``n_nodes`` defaults to a count
    that resolves q^{2k} over the spectrum for the largest k requested. Constant step ``dt``,
    or a step schedule ``dt_schedule`` (dt_j, j < max(steps)): then, per eigenvalue s, the
    accumulated gain f_{k+1} = (1 − dt_k (s + λ)) f_k + dt_k, f_0 = 0 (for constant dt
    f_k = (1 − q^k)/(s + λ), q = 1 − dt (s + λ)), and Δ = −(1 − s f_k) β̃* + f_k · noise.
    """
    steps = np.asarray(steps, dtype=np.int64)
    lam = float(weight_decay)
    a, b = mp_edges(delta)
    if (dt is None) == (dt_schedule is None):
        raise ValueError("linear_gd_errors: give exactly one of dt and dt_schedule")
    t_max = steps.max() * dt if dt_schedule is None else float(np.sum(np.asarray(dt_schedule)[: steps.max()]))
    if n_nodes is None:
        n_nodes = int(min(200000, max(4000, 40 * t_max * (b - a))))
    s, w = mp_quadrature(delta, n_nodes)
    sl = s + lam
    if dt_schedule is None:
        q = 1.0 - dt * sl
        k = steps[:, None].astype(float)
        qk = np.power(q[None, :], k)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(sl[None, :] > 0, (1.0 - qk) / sl[None, :], k * dt)  # (1 − q^k)/(s + λ)
        shrink = qk + lam * frac  # coefficient of −β̃*
    else:
        sched = np.asarray(dt_schedule, dtype=float)
        frac = np.zeros((steps.size, s.size))
        f = np.zeros_like(s)
        for j in range(steps.max() + 1):
            frac[steps == j] = f
            if j < steps.max():
                f = (1.0 - sched[j] * sl) * f + sched[j]
        shrink = 1.0 - s[None, :] * frac
    e_d2 = m2 * shrink**2 + sigma**2 * (s / delta)[None, :] * frac**2
    e_bd = sigma * (s / delta)[None, :] * frac
    e_test = 0.5 * (e_d2 @ w)
    e_train = 0.5 * (sigma**2 + (s[None, :] * e_d2 - 2.0 * sigma * e_bd) @ w)
    return e_train, e_test
