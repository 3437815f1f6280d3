"""The depth-2 DLN state in coordinates that are exact at any initialisation scale α.

Gradient descent on β = u ⊙ v (theory reference §1) is stored as

    a = u + v,   b = u − v,   β = u v = (a − b)(a + b)/4,   u² − v² = a b,   u² + v² = (a² + b²)/2,

because the update is *multiplicative* in these coordinates (theory reference §1, "useful exact
facts"; exactly the same discrete algorithm, not an approximation):

    a_{k+1} = a_k (1 − dt_k λ + dt_k g_k),   b_{k+1} = b_k (1 − dt_k λ − dt_k g_k).

Why not (u, v): from u₀ = α, v₀ = 0 the smaller of u ± v shrinks like α·exp(−|Σ dt g|) while the
larger grows. Stored as u and v it is the difference of two nearly equal numbers and is kept only
to rounding × |u|: once |Σ dt g| ≳ ½ ln(1/ε) (≈ 18 in float64, ≈ 8 in float32) it becomes exactly
0 and the coordinate can never change sign again, so small-α runs end at the wrong interpolator.
In (a, b) every step multiplies by a factor near 1, so each coordinate keeps relative accuracy
≈ ε per step however small it gets.

Range: the smallest magnitude met is ≈ α²/(2√|β|) (the shrinking one of a, b once a coordinate is
learned), so the state is exact while α² stays well above the dtype's smallest normal number:
α ≥ :func:`alpha_min` (1.5e-153 in float64, 1.1e-18 in float32). β itself has absolute error
≈ ε (u² + v²) — the rounding of the state, nothing lost to cancellation.

The linearised (tangent) update used by the DMFT for the response G is in the same coordinates:
δa_{k+1} = δa_k f⁺ + a_k dt δg_k, δb_{k+1} = δb_k f⁻ − b_k dt δg_k with f^± = 1 − dt λ ± dt g,
and δβ = (a δa − b δb)/2.

All functions take and return arrays of one array-API namespace ``xp`` and keep their dtype.
"""

from __future__ import annotations

import math

import numpy as np


def alpha_min(dtype) -> float:
    """Smallest α the (a, b) state keeps exact in ``dtype`` (NumPy dtype or name).

    10·√tiny: the shrinking coordinate ≈ α²/(2√|β|) must stay a normal number (denormals lose
    precision and are slow) for |β| up to 25.
    """
    return 10.0 * math.sqrt(float(np.finfo(np.dtype(dtype)).tiny))


def init_state(xp, alpha, shape, dtype):
    """(a, b) at u₀ = α, v₀ = 0: a = b = α, broadcast to ``shape``; ``alpha`` is an array."""
    a = xp.zeros(shape, dtype=dtype) + alpha
    return a, xp.zeros(shape, dtype=dtype) + alpha


def beta_of(a, b):
    """β = u v = (a − b)(a + b)/4 (no squares: they could underflow where a, b ≈ α)."""
    return (a - b) * (a + b) * 0.25


def metric_of(a, b):
    """u² + v² = (a² + b²)/2, the DLN's coordinate-wise Gauss–Newton metric."""
    return (a * a + b * b) * 0.5


def conservation_drift(a, b, alpha):
    """|u² − v² − α²| / α² = |(a/α)(b/α) − 1| per coordinate (exact terms: no cancellation of
    u² against v², and no α² that could underflow)."""
    return abs((a / alpha) * (b / alpha) - 1.0)


def step(a, b, g, dt: float, dt_lambda):
    """One GD step: (a (1 − dtλ + dt g), b (1 − dtλ − dt g)). ``dt`` a Python float of the
    run's dtype; ``dt_lambda`` = dt·λ (array or float)."""
    dg = dt * g
    return a * ((1.0 - dt_lambda) + dg), b * ((1.0 - dt_lambda) - dg)


def tangent_step(a, b, da, db, g, dg, dt: float, dt_lambda):
    """Linearised step of (δa, δb) along the perturbation δg of the gradient (at fixed path)."""
    fa = (1.0 - dt_lambda) + dt * g
    fb = (1.0 - dt_lambda) - dt * g
    return da * fa + a * (dt * dg), db * fb - b * (dt * dg)
