"""DLN states in coordinates that are exact at any initialisation scale α (depth 2 here, depth L below).

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

Depth-L networks: :class:`PMState` (network ``pm``, β = u^L − v^L, theory.md §6) stores (u, v)
itself, whose update is multiplicative too. :func:`network_state` returns the kernels of either
network behind one interface (init, beta, step, tangent_beta, tangent_step, metric,
conservation_drift, alpha_min); :class:`UVState` is the functions above, unchanged.
"""

from __future__ import annotations

import math

import numpy as np


def alpha_min(dtype, network: str = "uv", depth: int = 2) -> float:
    """Smallest α the state of ``network`` (depth ``depth``) keeps exact in ``dtype`` (NumPy
    dtype or name).

    ``uv`` (and ``pm`` at L = 2): 10·√tiny: the shrinking coordinate ≈ α²/(2√|β|) must stay a
    normal number (denormals lose precision and are slow) for |β| up to 25. ``pm`` at L ≥ 3:
    (100·tiny)^{1/(2L−2)}, see :meth:`PMState.alpha_min`.
    """
    if network != "uv" or depth != 2:
        return network_state(network, depth).alpha_min(dtype)
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


# ==============================================================================================
# Networks: the depth-2 ``uv`` state above and the depth-L ``pm`` family (theory.md §6)
# ==============================================================================================
NETWORKS = ("uv", "pm")


def validate_network(network, depth) -> tuple[str, int]:
    """Checked (network, depth): ``network`` in :data:`NETWORKS`; ``uv`` has depth 2, ``pm`` any
    integer depth ≥ 2 (an integral float such as 3.0 is accepted, bools are not). Raises
    ValueError naming the argument."""
    if not isinstance(network, str) or network not in NETWORKS:
        raise ValueError(f"network: unknown value {network!r}; expected one of {NETWORKS}")
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, (int, np.integer, float, np.floating)):
        raise ValueError(f"depth: need an integer, got {depth!r}")
    if not float(depth).is_integer():
        raise ValueError(f"depth: need an integer, got {depth!r}")
    depth = int(depth)
    if network == "uv" and depth != 2:
        raise ValueError(f"depth: the 'uv' network has depth 2, got {depth}; use network='pm' for depth L ≥ 2")
    if depth < 2:
        raise ValueError(f"depth: the 'pm' network needs depth ≥ 2, got {depth}")
    return network, depth


def network_state(network: str = "uv", depth: int = 2):
    """The state kernels of one network: :class:`UVState` or :class:`PMState` (validated)."""
    network, depth = validate_network(network, depth)
    return UVState() if network == "uv" else PMState(depth)


class UVState:
    """``uv`` (β = u v, u₀ = α, v₀ = 0) in the exact coordinates (p, q) = (a, b) = (u + v, u − v):
    the module-level functions above, unchanged (bit for bit the depth-2 code path)."""

    network = "uv"
    depth = 2

    def alpha_min(self, dtype) -> float:
        return alpha_min(dtype)

    def init(self, xp, alpha, shape, dtype):
        return init_state(xp, alpha, shape, dtype)

    def beta(self, p, q):
        return beta_of(p, q)

    def step(self, p, q, g, dt, dt_lambda):
        return step(p, q, g, dt, dt_lambda)

    def tangent_beta(self, p, q, dp, dq):
        """δβ = v δu + u δv = (a δa − b δb)/2."""
        return (p * dp - q * dq) * 0.5

    def tangent_step(self, p, q, dp, dq, g, dg, dt, dt_lambda):
        return tangent_step(p, q, dp, dq, g, dg, dt, dt_lambda)

    def metric(self, p, q):
        return metric_of(p, q)

    def conservation_drift(self, p, q, alpha):
        return conservation_drift(p, q, alpha)


def _ipow(x, k: int):
    """x**k for an integer k ≥ 1 by binary powering (array-API only, dtype kept; x**1 is x)."""
    result = None
    base = x
    while True:
        if k & 1:
            result = base if result is None else result * base
        k >>= 1
        if not k:
            return result
        base = base * base


class PMState:
    """Depth-L ``pm`` network (theory.md §6): β = u^L − v^L, u₀ = v₀ = α, stored as (u, v) itself.

    GD step (the same discrete algorithm as u ← u + dt (L u^{L−1} g − λ u), v ← v + dt (−L v^{L−1} g
    − λ v), regrouped as a multiplicative update):

        u_{k+1} = u_k (1 − dt λ + dt L u_k^{L−2} g_k),   v_{k+1} = v_k (1 − dt λ − dt L v_k^{L−2} g_k).

    Exactness: every step multiplies u and v by a factor near 1, so each keeps relative accuracy
    ≈ ε per step however small it gets (v shrinks multiplicatively; nothing is a difference of
    nearly equal numbers). β = (u − v)·Σ_{j<L} u^{L−1−j} v^j (the factorised form: one
    subtraction, of two stored numbers, and a sum of positive terms), with absolute error
    ≈ L ε (u^L + v^L) — the rounding of the state, nothing lost to cancellation. The one finite-
    precision effect: the per-step relative change dt L u^{L−2} |g| of a coordinate is itself
    rounded to ≈ ε, so the accumulated growth Σ ln(factor) has relative error ≲ n_steps·ε (as in
    the ``uv`` state); for L ≥ 3 a coordinate with dt L α^{L−2} |g| < ε/2 does not move at all in
    floating point, while in exact arithmetic it escapes only after ≈ 1/(L(L−2) α^{L−2} |g|) time
    units, i.e. after ≳ 1/ε steps (its β stays ≈ α^L meanwhile, so the absolute error is tiny).

    L = 2 is ``uv`` rotated: with (a, b)_uv = (2u, 2v), β_pm(α, dt, λ) = β_uv(2α, 2dt, λ/2) step
    for step, and this code does the same floating-point operations as :class:`UVState` on the
    halved state (bit-identical results; the scalings by 2 are exact).

    Tangent (for the DMFT response): δβ = L u^{L−1} δu − L v^{L−1} δv and
    δu_{k+1} = δu_k (1 − dt λ + dt L (L−1) u^{L−2} g) + dt L u^{L−1} δg,
    δv_{k+1} = δv_k (1 − dt λ − dt L (L−1) v^{L−2} g) − dt L v^{L−1} δg.
    """

    network = "pm"

    def __init__(self, depth: int):
        self.depth = int(depth)

    # -- range ------------------------------------------------------------------------------
    def alpha_min(self, dtype) -> float:
        """(100·tiny)^{1/(2L−2)}: the Gauss–Newton metric L²(u^{2L−2} + v^{2L−2}) of a coordinate
        that stays near 0 (≈ 2L²α^{2L−2}; for L ≥ 3, v ≥ 2^{−1/(L−2)}α by the conserved
        u^{2−L} + v^{2−L}) stays a normal number with a margin of 100, and with it everything
        larger that the paths compute (β ≈ α^L, the tangent terms ≈ α^{L−1}). For L = 2 this is
        the ``uv`` rule 10·√tiny (where the smallest magnitude is v ≈ α²/√|β| instead).
        float64: L = 2 1.5e-153, L = 3 3.9e-77, L = 4 1.1e-51; float32: 1.1e-18, 1.0e-9, 1.0e-6."""
        if self.depth == 2:
            return alpha_min(dtype)
        tiny = float(np.finfo(np.dtype(dtype)).tiny)
        return (100.0 * tiny) ** (1.0 / (2 * self.depth - 2))

    # -- state --------------------------------------------------------------------------------
    def init(self, xp, alpha, shape, dtype):
        """(u, v) = (α, α) broadcast to ``shape``; ``alpha`` is an array."""
        u = xp.zeros(shape, dtype=dtype) + alpha
        return u, xp.zeros(shape, dtype=dtype) + alpha

    def beta(self, u, v):
        """β = u^L − v^L = (u − v)·S_L with S_L = Σ_{j<L} u^{L−1−j} v^j (S_2 = u + v,
        S_{m+1} = u S_m + v^m)."""
        s = u + v
        vm = v
        for _ in range(self.depth - 2):
            vm = vm * v
            s = u * s + vm
        return (u - v) * s

    def step(self, u, v, g, dt, dt_lambda):
        """One GD step, multiplicative in u and v. ``dt``: Python float (or array) of the run's
        dtype; ``dt_lambda`` = dt·λ."""
        L = self.depth
        dg = (dt * L) * g
        keep = 1.0 - dt_lambda
        if L == 2:
            return u * (keep + dg), v * (keep - dg)
        return u * (keep + dg * _ipow(u, L - 2)), v * (keep - dg * _ipow(v, L - 2))

    # -- tangent --------------------------------------------------------------------------------
    def tangent_beta(self, u, v, du, dv):
        """δβ = L (u^{L−1} δu − v^{L−1} δv)."""
        L = self.depth
        return (_ipow(u, L - 1) * du - _ipow(v, L - 1) * dv) * L

    def tangent_step(self, u, v, du, dv, g, dg, dt, dt_lambda):
        """Linearised step of (δu, δv) along δg at the path (u, v) (before its own step)."""
        L = self.depth
        keep = 1.0 - dt_lambda
        dtl = dt * L
        if L == 2:
            fu = keep + dtl * g
            fv = keep - dtl * g
            return du * fu + u * (dtl * dg), dv * fv - v * (dtl * dg)
        c = (dt * (L * (L - 1))) * g
        fu = keep + c * _ipow(u, L - 2)
        fv = keep - c * _ipow(v, L - 2)
        return du * fu + _ipow(u, L - 1) * (dtl * dg), dv * fv - _ipow(v, L - 1) * (dtl * dg)

    # -- observables ------------------------------------------------------------------------------
    def metric(self, u, v):
        """Gauss–Newton metric (∂β/∂u)² + (∂β/∂v)² = L² (u^{2L−2} + v^{2L−2}): β_{k+1} − β_k =
        dt·metric·g + O(dt²) (λ = 0), the weight of the spectral decay rate."""
        L = self.depth
        return (_ipow(u, 2 * L - 2) + _ipow(v, 2 * L - 2)) * float(L * L)

    def conservation_drift(self, u, v, alpha):
        """|I(u, v)/I₀ − 1| per coordinate for the gradient-flow invariant I (λ = 0):
        L = 2: I = u v, I₀ = α²: |(u/α)(v/α) − 1|;
        L ≥ 3: I = u^{2−L} + v^{2−L}, I₀ = 2α^{2−L}: |((α/u)^{L−2} + (α/v)^{L−2})/2 − 1|.
        Ratios to α first: no power of α that could underflow. Under GD (λ = 0) it grows like
        dt·∫g² (first order in dt)."""
        L = self.depth
        if L == 2:
            return abs((u / alpha) * (v / alpha) - 1.0)
        return abs((_ipow(alpha / u, L - 2) + _ipow(alpha / v, L - 2)) * 0.5 - 1.0)


class DivergenceError(FloatingPointError):
    """A run produced non-finite values (step too large for its parameters)."""


def effective_scale_runs(scale, alpha, dtype=np.float64) -> dict:
    """Per-run effective initialisation of network ``uv`` from its final state.

    ``scale`` (..., d): c_i = u_i² − v_i² at the last step (``gd_stack(save_scale=True)``'s
    ``scale_final``); ``alpha`` (...): the runs' initial scale. Each step multiplies c_i by
    (1 − dt λ)² − dt² g_i², so at λ = 0 c_i = α²·Π_k (1 − dt² g_{k,i}²) (Even et al. 2023).
    Returns ``alpha_eff`` (...) = √(exp(mean_i ln c_i)) and ``gain_mean`` (...) = mean_i −ln(c_i/α²)
    (= 2 ln(α/α_eff)), in ``dtype``, computed in float64 on the host; NaN for a run with some
    c_i ≤ 0 (a step past the 1 − dt² g² > 0 regime). One run's values equal
    ``phenomena_measure.effective_scale_summary`` of its coordinates.
    """
    c = np.asarray(scale, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    ok = np.all(c > 0, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ln = np.where(ok, np.mean(np.log(np.where(c > 0, c, 1.0)), axis=-1), np.nan)
    gain = 2.0 * np.log(a) - mean_ln
    return {"alpha_eff": np.exp(0.5 * mean_ln).astype(dtype), "gain_mean": gain.astype(dtype)}
