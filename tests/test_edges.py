"""Exact at the edges: tiny α, float32 arithmetic, and the DMFT at α = 1e-30.

The simulator and the DMFT store the DLN as (a, b) = (u + v, u − v) (``dln_kernels.model.dln_state``).
The references here are independent: the same discrete GD iterated in *log* coordinates
(log|a|, log|b|), and published closed-form answers of the α → 0 limit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dln_kernels.backend import get_namespace, to_device
from dln_kernels.model.dln_state import alpha_min
from dln_kernels.sim.simulate import gd_stack, simulate_grid

# The small input: n = 2, d = 3; the α → 0 limit is the minimum-ℓ₁ interpolator.
X3 = np.array([[-1.2, 1.2, -0.5], [-0.3, 1.8, 0.2]])
Y3 = np.array([-3.2, 0.3])
L1_END3 = np.array([17 / 5, 11 / 15, 0.0])


def run_gd(X, y, alphas, dt, n_steps, record_steps=None, dtype=np.float64, backend="numpy", **kw):
    """One data group, one run per α, λ = 0, through the library's batched kernel."""
    xp = get_namespace(backend)
    n, d = X.shape
    b = len(alphas)
    to = lambda a: to_device(xp, a, dtype)  # noqa: E731
    rec = [0, n_steps] if record_steps is None else record_steps
    return gd_stack(xp, to(X[None]), to(np.zeros((1, d, b))), to(np.repeat(y[None, :, None], b, axis=2)),
                    to(np.reshape(alphas, (1, 1, b))), to(np.zeros((1, 1, b))), np.full(n_steps, dt), rec,
                    delta=n / d, save_beta=True, **kw)


def log_coordinate_gd(X, y, alphas, dt, n_steps):
    """Reference: the same discrete GD in (log|a|, log|b|); β = e^{la+lb} sinh(la − lb)/2.

    a_{k+1} = a_k (1 + dt g_k), b_{k+1} = b_k (1 − dt g_k) (theory.md §1, λ = 0), each stored as
    its logarithm, so no magnitude can underflow or cancel. Columns are the runs (one per α).
    """
    n, d = X.shape
    la = np.full((d, len(alphas)), np.log(alphas))
    lb = la.copy()
    for _ in range(n_steps):
        beta = np.exp(la + lb) * np.sinh(la - lb) / 2
        g = X.T @ (y[:, None] - X @ beta) / (n / d)
        la += np.log1p(dt * g)
        lb += np.log1p(-dt * g)
    return (np.exp(la + lb) * np.sinh(la - lb) / 2).T


def test_tiny_alpha_reaches_the_l1_interpolator(backend):
    """The issue's input: (u, v) storage locked coordinate 3's sign for α ≤ e⁻²⁵ and ended at
    (1.256, 0, 3.385). (a, b) must follow the log-coordinate iteration to rounding, for α from
    e⁻¹⁵ to 1e-100, over ≈ 3·ln(1/α) time units (the longest: 690 for 1e-100)."""
    dt = 0.005
    alphas = np.array([math.exp(-15), math.exp(-50), math.exp(-200), 1e-100])
    if backend == "array_api_strict":  # the same code path; its Python overhead: the shortest case
        alphas = alphas[:2]
    n_steps = int(3 * -np.log(alphas.min()) / dt)
    beta = run_gd(X3, Y3, alphas, dt, n_steps, backend=backend)["beta_final"][0]
    ref = log_coordinate_gd(X3, Y3, alphas, dt, n_steps)
    # same discrete algorithm: agreement at the rounding level of ~1.4e5 multiplicative steps
    np.testing.assert_allclose(beta, ref, rtol=1e-9, atol=1e-12)
    # α = e⁻¹⁵ ends at its own (finite-α) interpolator, as the issue measured
    np.testing.assert_allclose(beta[0], [3.38409, 0.72789, 0.02512], atol=1e-5)
    # the finite-α interpolator approaches the ℓ₁ one like α^0.27: 1.4e-6 at e⁻⁵⁰, ≤ 1e-24 below
    assert np.max(np.abs(beta[1] - L1_END3)) < 2e-6
    if len(alphas) > 2:
        np.testing.assert_allclose(beta[2:], np.stack([L1_END3] * 2), atol=1e-12)


def test_saddle_to_saddle_fixture_order_and_end_point():
    """Public fixture X = [[1, 1/2, 7/10, 0], [1/2, 1, 1/10, 7/10]], y = (1, 0): as α → 0
    coordinates enter in the order 1, 3, 4, coordinate 1 leaves again, and GD ends at the
    minimum-ℓ₁ interpolator (0, 0, 10/7, −10/49). Checked at α = e⁻¹⁰⁰."""
    X = np.array([[1, 0.5, 0.7, 0], [0.5, 1, 0.1, 0.7]])
    y = np.array([1.0, 0.0])
    dt, n_steps, every = 0.01, 200_000, 10
    res = run_gd(X, y, [math.exp(-100)], dt, n_steps, record_steps=np.arange(0, n_steps + 1, every),
                 record_beta=True)
    beta = res["beta"][0, 0]  # (R, d)
    active = np.abs(beta) > 1e-3
    events = []  # (time, coordinate, entered?) in time order
    for r, c in zip(*np.nonzero(np.diff(active.astype(np.int8), axis=0))):
        events.append((round((r + 1) * every * dt, 6), int(c) + 1, bool(active[r + 1, c])))
    assert [(c, e) for _, c, e in events] == [(1, True), (3, True), (1, False), (4, True)], events
    # plateaus ≈ ln(1/α)/rate: the first coordinate leaves the saddle at t ≈ 100/|g₀₁| = 100/2
    assert 45 < events[0][0] < 55, events
    np.testing.assert_allclose(beta[-1], [0, 0, 10 / 7, -10 / 49], atol=1e-6)


def test_float32_tiny_alpha_range():
    """float32 keeps the state exact down to α = alpha_min(float32) ≈ 1.1e-18 (½ ln(1/ε) ≈ 8 was
    the sign-lock threshold of (u, v) storage in float32). At α = e⁻³⁴ ≈ 1.7e-15 the float32 run
    ends where the float64 one does, to float32 accuracy of ~2e4 steps."""
    assert 1e-19 < alpha_min(np.float32) < 2e-18 and alpha_min(np.float64) < 1e-150
    dt, alpha = 0.005, math.exp(-34)
    n_steps = int(3 * 34 / dt)
    b32 = run_gd(X3, Y3, [alpha], dt, n_steps, dtype=np.float32)["beta_final"][0, 0]
    b64 = run_gd(X3, Y3, [alpha], dt, n_steps)["beta_final"][0, 0]
    assert b32.dtype == np.float32
    np.testing.assert_allclose(b32, b64, atol=1e-4)
    np.testing.assert_allclose(b64, L1_END3, atol=2e-4)  # α^0.27 ≈ 1e-4 from the ℓ₁ point


def test_conservation_drift_exact_at_tiny_alpha():
    """u² − v² = ab, so the drift |ab/α² − 1| keeps its accuracy at any α. The issue's case:
    0.362 from (u, v) at α = 1e-10 where the exact value is 0.304. Exact reference: the log-
    coordinate iteration, where (u² − v²)/α² = exp(la + lb − 2 ln α)."""
    dt, n_steps = 0.005, 4000
    for alpha in (1e-3, 1e-10, 1e-60):
        res = run_gd(X3, Y3, [alpha], dt, n_steps)
        n, d = X3.shape
        la = np.full(d, np.log(alpha))
        lb = la.copy()
        for _ in range(n_steps):
            beta = np.exp(la + lb) * np.sinh(la - lb) / 2
            g = X3.T @ (Y3 - X3 @ beta) / (n / d)
            la += np.log1p(dt * g)
            lb += np.log1p(-dt * g)
        exact = np.mean(np.abs(np.expm1(la + lb - 2 * np.log(alpha))))
        assert exact > 0.1  # a real drift, not rounding: dt·∫g² is O(1) here
        np.testing.assert_allclose(res["conservation_drift"][0, 0, -1], exact, rtol=1e-9)


def test_same_numbers_as_uv_storage_where_that_was_right():
    """For α ≥ 1e-6 the (u, v) iteration of theory.md §1 is accurate; the library must agree with
    it to rounding (1e-10 relative after 300 steps on a d = 150 problem, all observables)."""
    from dln_kernels.model.problem import draw_instance

    d, delta, dt, T = 150, 0.6, 0.02, 300
    inst = draw_instance(d, 0, 0)
    X, bs = inst.design(delta), inst.teacher({"kind": "gauss_bernoulli"}, 0.3)
    y = X @ bs + 0.1 * inst.noise(delta)
    alphas = [1e-6, 1e-2, 1.0, 3.0]
    res = simulate_grid(model="dln", d=d, delta=delta, rho=[0.3], sigma=[0.1], alpha=alphas, weight_decay=[0.0, 0.02],
                        seeds=[0], dt=dt, n_steps=T, record_steps=[0, T], save_beta=True)
    for j, alpha in enumerate(alphas):
        for m, lam in enumerate((0.0, 0.02)):
            u, v = np.full(d, alpha), np.zeros(d)
            for _ in range(T):
                g = X.T @ (y - X @ (u * v)) / delta
                u, v = u + dt * (v * g - lam * u), v + dt * (u * g - lam * v)
            np.testing.assert_allclose(res["beta_final"][0, 0, 0, j, m], u * v, rtol=1e-10, atol=1e-14)
            if alpha >= 1e-2:  # below, u² − v² from (u, v) loses ε·u²/α² (the item 3)
                drift = np.mean(np.abs(u * u - v * v - alpha**2)) / alpha**2
                np.testing.assert_allclose(res["conservation_drift"][0, 0, 0, j, m, -1], drift, rtol=1e-8)


# ------------------------------------------------------------------------------------------
# dtype discipline
# ------------------------------------------------------------------------------------------
def test_float32_is_float32_arithmetic_in_the_simulator(backend):
    """A float32 run must do float32 arithmetic: against a float64 run on the *same* (float32-
    rounded) inputs it differs by float32 rounding (≫ 1e-12), not by zero; before the fix NumPy
    promotion made every step float64 and the difference was input rounding only."""
    rng = np.random.default_rng(0)
    n, d, dt, T = 60, 100, 0.05, 200
    X = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32).astype(np.float64)
    y = (X @ np.where(rng.random(d) < 0.3, rng.standard_normal(d), 0.0)).astype(np.float32).astype(np.float64)
    alphas = np.array([1e-3, 0.3, 1.0], dtype=np.float32).astype(np.float64)
    r32 = run_gd(X, y, alphas, dt, T, record_steps=[0, T // 2, T], dtype=np.float32, backend=backend)
    r64 = run_gd(X, y, alphas, dt, T, record_steps=[0, T // 2, T], backend=backend)
    for name in ("e_train", "e_test", "l1_norm", "conservation_drift", "beta_final"):
        assert r32[name].dtype == np.float32, name
        assert r64[name].dtype == np.float64, name
    rel = np.max(np.abs(r32["beta_final"] - r64["beta_final"])) / np.max(np.abs(r64["beta_final"]))
    assert 1e-8 < rel < 1e-4, rel  # float32 arithmetic (ε₃₂ = 6e-8 per operation), stable


def test_float32_is_float32_arithmetic_in_the_dmft(backend):
    """The DMFT sweep in float32 against float64 on the same random inputs and the same
    Gram–Schmidt pivot tolerance: float32-sized differences (amplified by the ~60-step causal
    sweep to ~1e-3), not zero. With each dtype's default pivot tolerance (1e-5 vs 1e-12) the
    difference (0.5 %) stays far inside the Monte-Carlo error (≥ 4 %)."""
    from dln_kernels.dmft.solver import solve_dmft

    kw = dict(n_steps=60, dt=0.05, n_paths=960, progress=False, seed=3, backend=backend)
    pts = {"alpha": [1e-3, 1.0], "delta": [0.5], "rho": [0.3], "sigma": [0.1]}
    r32 = solve_dmft(pts, dtype="float32", **kw)
    r64 = solve_dmft(pts, dtype="float64", pivot_tol=1e-5, **kw)
    for name in ("e_train", "e_test", "e_train_se", "e_test_floor", "decay_rate_spectral"):
        assert r32[name].dtype == np.float32, name
        assert r64[name].dtype == np.float64, name
    rel = np.max(np.abs(r32["e_test"] - r64["e_test"]) / r64["e_test"])
    # measured over seeds 3–6: 3e-4 … 1.2e-3 (this solver), 2e-4 … 4e-3 (the matrix–vector solver
    # before it, whose single-seed 4e-4 had set a bound of 1e-3 that two of those seeds exceed)
    assert 1e-8 < rel < 5e-3, rel
    r64 = solve_dmft(pts, dtype="float64", **kw)
    assert np.all(np.abs(r32["e_test"] - r64["e_test"]) < 0.25 * r64["e_test_se"])


# ------------------------------------------------------------------------------------------
# DMFT at tiny α
# ------------------------------------------------------------------------------------------
def test_dmft_tiny_alpha_against_simulation_quick():
    """α = 1e-30, teacher values ±4 (search phase ≈ ln(1e30)/4 ≈ 17 time units) at δ = 4: the
    DMFT and d = 1000 simulations through the search and into the descent, within 4.5 combined
    standard errors (as tests/test_dmft.py)."""
    from dln_kernels.dmft.solver import solve_dmft
    from dln_kernels.model.schedule import output_steps

    prior = {"kind": "discrete", "values": [-4.0, 4.0], "probs": [0.5, 0.5]}
    delta, rho, dt, T, alpha = 4.0, 0.3, 0.05, 500, 1e-30
    rec = output_steps(T, 20)
    sim = simulate_grid(model="dln", d=1000, delta=delta, rho=[rho], sigma=[0.0], alpha=[alpha], weight_decay=[0.0],
                        seeds=list(range(4)), dt=dt, n_steps=T, record_steps=rec, prior=prior)
    th = solve_dmft({"alpha": alpha, "delta": delta, "rho": rho, "dt": dt}, n_steps=T, record_steps=rec,
                    n_paths=8 * (T + 1), prior=prior, seed=5, progress=False)
    for key in ("e_train", "e_test"):
        s = sim[key][:, 0, 0, 0, 0, :]
        m, se = s.mean(0), s.std(0, ddof=1) / 2
        ok = ~th[key + "_below_floor"][0]
        z = np.abs(m - th[key][0]) / np.hypot(se, th[key + "_se"][0])
        assert ok.sum() >= 15, key
        assert np.all(z[ok] < 4.5), (key, z, m, th[key][0])
    # the search phase is there: E_test still ≥ 90 % of its start at t = 10, far below at the end
    e = th["e_test"][0]
    t = th["time"][0]
    # (end value / start, measured over seeds 5–7: 0.19–0.20 here, 0.18–0.22 with the solver
    # before; the former bound 0.2 sat at the mean, so "far below" is now 0.3)
    assert e[np.searchsorted(t, 10.0)] > 0.9 * e[0] and e[-1] < 0.3 * e[0]


def test_kernels_refuse_alpha_below_the_dtype_range():
    """Called directly (not through a config), the kernels refuse α < alpha_min(dtype) before
    compute instead of returning a silently wrong state."""
    from dln_kernels.dmft.solver import solve_dmft

    kw = dict(model="dln", d=20, delta=0.5, rho=[0.3], sigma=[0.0], weight_decay=[0.0], seeds=[0], dt=0.05,
              n_steps=4, record_steps=[0, 4])
    with pytest.raises(ValueError, match=r"alpha: 1e-30 is below alpha_min\(float32\) = 1.1e-18"):
        simulate_grid(alpha=[1e-30, 1.0], dtype="float32", **kw)
    simulate_grid(alpha=[1e-30, 1.0], dtype="float64", **kw)
    with pytest.raises(ValueError, match=r"alpha 1e-160 is below alpha_min\(float64\)"):
        solve_dmft({"alpha": 1e-160, "delta": 0.5, "dt": 0.05}, n_steps=4, n_paths=80, progress=False)
