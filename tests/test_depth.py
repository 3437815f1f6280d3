"""Depth-L diagonal networks, the ``pm`` family of theory.md §6: β = u^L − v^L, u₀ = v₀ = α.

References are independent of the library's (u, v) multiplicative update: the additive update
written out from theory.md §6 in plain NumPy, the ``uv`` network (L = 2 is ``uv`` rotated), the
closed-form gradient-flow solution β = α^L h_L(L(L−2)α^{L−2} S), finite differences for the
DMFT tangent, and d = 1000 simulations for the DMFT.
"""

from __future__ import annotations

import numpy as np
import pytest

from dln_kernels.backend import get_namespace, to_device
from dln_kernels.model.dln_state import PMState, alpha_min, network_state
from dln_kernels.model.problem import draw_instance
from dln_kernels.model.schedule import output_steps
from dln_kernels.sim.simulate import gd_stack, simulate_grid

GB = {"kind": "gauss_bernoulli"}
X3 = np.array([[-1.2, 1.2, -0.5], [-0.3, 1.8, 0.2]])
Y3 = np.array([-3.2, 0.3])
L1_END3 = np.array([17 / 5, 11 / 15, 0.0])  # minimum-ℓ₁ interpolator of (X3, Y3)


def run(**kw):
    args = dict(backend="numpy", model="dln", d=100, delta=0.6, rho=[0.3], sigma=[0.1], alpha=[0.5], weight_decay=[0.0],
                seeds=[0], dt=0.02, n_steps=300, record_steps=[0, 100, 300], save_beta=True)
    args.update(kw)
    return simulate_grid(**args)


def h(L, s):
    """β/α^L along the gradient flow under a constant gradient (theory.md §6), s ∈ (−1, 1)."""
    e = -L / (L - 2)
    return (1 - s) ** e - (1 + s) ** e


# ------------------------------------------------------------------------------------------
# (a) L = 2 is uv rotated: β_pm(α, dt, λ) = β_uv(2α, 2dt, λ/2) step for step
# ------------------------------------------------------------------------------------------
def test_pm_depth2_equals_uv_rotated(backend):
    alphas = np.array([1e-60, 1e-3, 0.5])
    pm = run(backend=backend, alpha=alphas, weight_decay=[0.0, 0.02], dt=0.02, network="pm", depth=2)
    uv = run(backend=backend, alpha=2 * alphas, weight_decay=[0.0, 0.01], dt=0.04)
    for name in ("e_train", "e_test", "l1_norm", "conservation_drift", "beta_final"):
        # the same floating-point operations on a state scaled by exactly 2: equal to rounding (measured: bitwise)
        np.testing.assert_allclose(pm[name], uv[name], rtol=1e-13, atol=0, err_msg=name)
    assert np.max(pm["conservation_drift"][..., 1, 0, -1]) > 1e-4  # α = 1e-3, λ = 0: a real drift, not 0 = 0
    assert np.max(np.abs(pm["beta_final"][..., 2, :, :])) > 0.1  # α = 0.5: coordinates have moved


# ------------------------------------------------------------------------------------------
# (b) L = 3, 4 against the additive update of theory.md §6 in plain NumPy
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L", [3, 4])
def test_pm_matches_reference_loop(L, backend):
    d, delta, sigma, dt, T = 100, 0.6, 0.1, 0.005, 400
    alphas, lams = [0.2, 0.7], [0.0, 0.02]
    res = run(backend=backend, d=d, delta=delta, sigma=[sigma], alpha=alphas, weight_decay=lams, dt=dt, n_steps=T,
              record_steps=[0, T], network="pm", depth=L)
    inst = draw_instance(d, 0, 0)
    X, bs = inst.design(delta), inst.teacher(GB, 0.3)
    y = X @ bs + sigma * inst.noise(delta)
    n = X.shape[0]
    for j, alpha in enumerate(alphas):
        for m, lam in enumerate(lams):
            u, v = np.full(d, alpha), np.full(d, alpha)
            for _ in range(T):
                g = X.T @ (y - X @ (u**L - v**L)) / delta
                u, v = u + dt * (L * u ** (L - 1) * g - lam * u), v + dt * (-L * v ** (L - 1) * g - lam * v)
            beta = u**L - v**L
            r = y - X @ beta
            got = {name: res[name][0, 0, 0, j, m, -1] for name in ("e_train", "e_test", "l1_norm", "conservation_drift")}
            np.testing.assert_allclose(res["beta_final"][0, 0, 0, j, m], beta, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(got["e_train"], r @ r / (2 * n), rtol=1e-10)
            np.testing.assert_allclose(got["e_test"], (beta - bs) @ (beta - bs) / (2 * d), rtol=1e-10)
            np.testing.assert_allclose(got["l1_norm"], np.mean(np.abs(beta)), rtol=1e-10)
            drift = np.mean(np.abs((u ** (2.0 - L) + v ** (2.0 - L)) / (2 * alpha ** (2.0 - L)) - 1))
            np.testing.assert_allclose(got["conservation_drift"], drift, rtol=1e-8)
            assert np.max(np.abs(beta)) > 0.5  # the run left the saddle


# ------------------------------------------------------------------------------------------
# (c) the gradient-flow invariant u^{2−L} + v^{2−L} drifts at first order in dt
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L, dts, t_end", [(3, (0.02, 0.01, 0.005), 4.0), (4, (0.008, 0.004, 0.002), 2.0)])
def test_pm_invariant_drift_first_order_in_dt(L, dts, t_end, backend):
    # per step the invariant changes by (L−1)(L−2)/2·dt²L²g²(u^{L−2} + v^{L−2})·… (the first order cancels
    # between u and v): over a fixed time the drift is O(dt), so halving dt halves it.
    drifts = []
    for dt in dts:
        n = int(round(t_end / dt))
        res = run(backend=backend, d=150, sigma=[0.0], alpha=[0.5], dt=dt, n_steps=n, record_steps=[0, n],
                  network="pm", depth=L, save_beta=False)
        assert res["conservation_drift"].ravel()[0] == 0.0
        drifts.append(res["conservation_drift"].ravel()[-1])
    assert drifts[0] > 1e-4  # measurable, not rounding (measured 4.2e-3 for L = 3, 3.2e-3 for L = 4)
    np.testing.assert_allclose(np.array(drifts[:-1]) / np.array(drifts[1:]), 2.0, rtol=0.1)


# ------------------------------------------------------------------------------------------
# (d) one coordinate under a constant gradient follows the closed-form flow
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L", [3, 4])
@pytest.mark.parametrize("alpha", [0.5, 1e-3])
def test_pm_single_coordinate_flow_solution(L, alpha):
    """β(t) = α^L h_L(L(L−2)α^{L−2} g t) for g constant (λ = 0), up to the blow-up at s → 1;
    the GD error is first order in the step ds = L(L−2)α^{L−2}|g|dt."""
    xp = get_namespace("numpy")
    net = network_state("pm", L)
    g = np.array([1.0, -0.7])
    c = L * (L - 2) * alpha ** (L - 2)
    s_targets = np.array([0.3, 0.6, 0.85])
    errs = []
    for ds in (2e-4, 1e-4):
        dt = ds / c
        k_targets = np.round(s_targets / ds).astype(int)
        u, v = net.init(xp, alpha, (2,), xp.float64)
        beta = []
        for k in range(k_targets[-1] + 1):
            if k in k_targets:
                beta.append(net.beta(u, v))
            u, v = net.step(u, v, g, dt, 0.0)
        ref = alpha**L * h(L, c * g[None, :] * (k_targets * dt)[:, None])
        errs.append(np.asarray(beta) / ref - 1)
    assert np.max(np.abs(errs[1])) < 0.01  # measured 5.7e-3 at s = 0.85 (L = 3)
    np.testing.assert_allclose(errs[0] / errs[1], 2.0, rtol=0.05)  # first order in dt


# ------------------------------------------------------------------------------------------
# (e) small α, L = 3: power-law escape times, and the interpolator
# ------------------------------------------------------------------------------------------
def run_gd(X, y, alphas, dt, n_steps, record_steps, L, dtype=np.float64, backend="numpy", **kw):
    """One data group, one run per α, λ = 0, network pm of depth L, through the batched kernel."""
    xp = get_namespace(backend)
    n, d = X.shape
    b = len(alphas)
    to = lambda a: to_device(xp, a, dtype)  # noqa: E731
    return gd_stack(xp, to(X[None]), to(np.zeros((1, d, b))), to(np.repeat(y[None, :, None], b, axis=2)),
                    to(np.reshape(alphas, (1, 1, b))), to(np.zeros((1, 1, b))), np.full(n_steps, dt), record_steps,
                    delta=n / d, save_beta=True, network="pm", depth=L, **kw)


def test_pm_depth3_escape_time_power_law_and_interpolator():
    """X3, y3 (n = 2, d = 3), L = 3. Coordinate 1 (g₀ = 5.625) leaves the saddle at
    t ≈ 1/(L(L−2)α^{L−2}|g₀|) = 1/(3α g₀) (theory.md §6): a power law α^{−(L−2)}, not ln(1/α);
    coordinate 2 follows from the second saddle, with the same scaling. GD ends at an
    interpolator close to the minimum-ℓ₁ one (the L = 3 bias tends to ℓ₁ as α → 0).
    (At α = 1e-30 the escape would take ~1e29 time units: see the next test.)"""
    dt, T, every = 0.01, 50_000, 5
    alphas = np.array([2e-3, 1e-3])
    rec = np.arange(0, T + 1, every)
    res = run_gd(X3, Y3, alphas, dt, T, rec, 3, record_beta=True)
    beta = res["beta"][0]  # (b, R, d)
    t = rec * dt

    def escape(j, i):  # first recorded time with |β_i| ≥ 1e-2
        return t[np.argmax(np.abs(beta[j, :, i]) >= 1e-2)]

    g0 = (X3.T @ Y3 / (2 / 3))[0]
    for j, a in enumerate(alphas):
        np.testing.assert_allclose(escape(j, 0), 1 / (3 * a * g0), rtol=0.02)  # measured 29.45 vs 29.63
    np.testing.assert_allclose(escape(1, 0) / escape(0, 0), 2.0, rtol=0.1)  # measured 2.005
    np.testing.assert_allclose(escape(1, 1) / escape(0, 1), 2.0, rtol=0.1)  # measured 2.003
    assert np.all(res["e_train"][0, :, -1] < 1e-20)  # an interpolator (measured ~1e-30)
    np.testing.assert_allclose(res["beta_final"][0], np.stack([L1_END3] * 2), atol=1e-5)  # measured 2.4e-6


def test_pm_depth3_tiny_alpha_is_in_range_and_stays_at_the_saddle():
    """α = 1e-30 is far above alpha_min(float64, pm, 3) ≈ 3.9e-77: the run is accepted and stays
    finite. Its escape time 1/(3α g₀) ≈ 6e28 is out of reach, and the per-step relative change
    dt·3·α·g ≈ 1e-31 is below ε, so (u, v) keep their initial value: β stays 0, whereas the exact
    discrete iteration gives |β| ≈ 2L²α^{2L−2}|S| ≲ 1e-116 here (documented in PMState)."""
    assert alpha_min(np.float64, "pm", 3) < 1e-76 and alpha_min(np.float32, "pm", 3) < 2e-9
    res = run_gd(X3, Y3, np.array([1e-30]), 0.01, 2000, [0, 2000], 3)
    assert np.all(np.abs(res["beta_final"]) < 1e-100)
    np.testing.assert_allclose(res["e_train"][0, 0], np.sum(Y3**2) / 4, rtol=1e-12)
    assert res["conservation_drift"][0, 0, -1] < 1e-15


# ------------------------------------------------------------------------------------------
# (f) DMFT: L = 2 is uv rotated; (g) tangent and DMFT at L = 3
# ------------------------------------------------------------------------------------------
def test_dmft_pm_depth2_equals_uv_rotated(backend):
    from dln_kernels.dmft.solver import solve_dmft

    kw = dict(n_steps=60, n_paths=960, n_batches=4, seed=3, progress=False, backend=backend)
    for lam in (0.0, 0.02):
        pm = solve_dmft({"alpha": [1e-3, 0.3], "delta": 0.5, "rho": 0.3, "sigma": 0.1, "weight_decay": lam, "dt": 0.05},
                        network="pm", depth=2, **kw)
        uv = solve_dmft({"alpha": [2e-3, 0.6], "delta": 0.5, "rho": 0.3, "sigma": 0.1, "weight_decay": lam / 2,
                         "dt": 0.1}, **kw)
        for name in ("e_train", "e_test", "e_train_se", "e_test_se"):
            np.testing.assert_allclose(pm[name], uv[name], rtol=1e-12, atol=0, err_msg=name)  # measured: bitwise
        if lam == 0.0:  # the metric is the Gauss–Newton one: dt·w is the same, time runs twice as fast
            np.testing.assert_allclose(pm["decay_rate_spectral"], 2 * uv["decay_rate_spectral"], rtol=1e-9)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_pm_tangent_matches_finite_differences(L):
    """The linearised step (and δβ) of PMState against central differences of the step (and of β)
    along a random direction (δu, δv, δg), λ > 0."""
    net = PMState(L)
    rng = np.random.default_rng(L)
    u, v = 0.2 + rng.random(50), 0.2 + rng.random(50)
    g, du, dv, dg = (rng.standard_normal(50) for _ in range(4))
    dt, dtl = 0.03, 0.03 * 0.1
    eps = 1e-6
    plus = net.step(u + eps * du, v + eps * dv, g + eps * dg, dt, dtl)
    minus = net.step(u - eps * du, v - eps * dv, g - eps * dg, dt, dtl)
    tu, tv = net.tangent_step(u, v, du, dv, g, dg, dt, dtl)
    np.testing.assert_allclose(tu, (plus[0] - minus[0]) / (2 * eps), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tv, (plus[1] - minus[1]) / (2 * eps), rtol=1e-7, atol=1e-9)
    fd_beta = (net.beta(u + eps * du, v + eps * dv) - net.beta(u - eps * du, v - eps * dv)) / (2 * eps)
    np.testing.assert_allclose(net.tangent_beta(u, v, du, dv), fd_beta, rtol=1e-7, atol=1e-9)
    # the metric is the Gauss–Newton one: β(step) − β = dt·w·g + O(dt²) at λ = 0
    for h_dt in (1e-4, 5e-5):
        un, vn = net.step(u, v, g, h_dt, 0.0)
        np.testing.assert_allclose((net.beta(un, vn) - net.beta(u, v)) / h_dt, net.metric(u, v) * g,
                                   rtol=0, atol=1e-2 * h_dt / 1e-4 * np.max(np.abs(net.metric(u, v) * g)))


def test_dmft_pm_depth3_matches_simulation():
    """DMFT of the depth-3 network against d = 1000 simulations (4 seeds), α = 0.5, δ = 2, ρ = 0.3,
    σ = 0, dt = 0.02 (curvature estimate H·L²((b + α^L)^{2−2/L} + α^{2L−2}) ≈ 32: stable below
    dt ≈ 0.06), 200 steps through escape and descent: within 4.5
    combined standard errors (as tests/test_dmft.py) wherever not below the noise floor."""
    from dln_kernels.dmft.solver import solve_dmft

    delta, rho, alpha, dt, T = 2.0, 0.3, 0.5, 0.02, 200
    rec = output_steps(T, 20)
    sim = simulate_grid(model="dln", d=1000, delta=delta, rho=[rho], sigma=[0.0], alpha=[alpha], weight_decay=[0.0],
                        seeds=list(range(4)), dt=dt, n_steps=T, record_steps=rec, network="pm", depth=3)
    th = solve_dmft({"alpha": alpha, "delta": delta, "rho": rho, "dt": dt}, n_steps=T, record_steps=rec,
                    n_paths=8 * (T + 1), seed=5, progress=False, network="pm", depth=3)
    for key in ("e_train", "e_test"):
        s = sim[key][:, 0, 0, 0, 0, :]
        m, se = s.mean(0), s.std(0, ddof=1) / 2
        ok = ~th[key + "_below_floor"][0]
        z = np.abs(m - th[key][0]) / np.hypot(se, th[key + "_se"][0])
        assert ok.sum() >= 15, key
        assert np.all(z[ok] < 4.5), (key, z, m, th[key][0])  # measured max z 1.2 (E_train), 2.3 (E_test)
    e = th["e_test"][0]
    assert e[-1] < 0.02 * e[0]  # it learned: E_test 0.148 → 7.6e-4
    assert 0.15 < th["decay_rate_spectral"][0] < 0.35  # measured 0.231; finite d = 1000 edge rate 0.235


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that the check then reports
def test_dmft_divergence_near_a_deep_escape_names_its_causes():
    """Near the saddle escape of a depth-4 network, 401 paths per replica diverge (docs/dmft.md,
    "Depth-L networks"): the solver stops with the points and both causes named, never NaNs;
    the same 3208 paths in 2 replicas stay finite to t = 8 (measured E_test 0.0934)."""
    from dln_kernels.dmft.solver import solve_dmft
    from dln_kernels.model.dln_state import DivergenceError

    kw = dict(n_steps=400, dt=0.02, n_paths=3208, prior={"kind": "discrete", "values": [-1.0, 1.0], "probs": [0.5, 0.5]},
              network="pm", depth=4, progress=False)
    point = {"alpha": 0.1, "delta": 0.6, "rho": 0.2}
    with pytest.raises(DivergenceError, match=r"alpha=\[0.1\].*401 paths per replica.*stability bound.*raise n_paths"):
        solve_dmft(point, n_batches=8, **kw)
    r = solve_dmft(point, n_batches=2, **kw)
    assert np.all(np.isfinite(r["e_test"])) and 0.08 < r["e_test"][0, -1] < 0.1


DEPTH_PANEL = {3: [0.1, 0.5], 4: [0.2, 0.5]}  # α per depth: small (escape ∝ α^{2−L}) and moderate


@pytest.mark.slow
@pytest.mark.parametrize("delta", [0.5, 2.0])
@pytest.mark.parametrize("depth", [3, 4])
def test_dmft_pm_matches_simulation_panel(depth, delta):
    """The depth-L panel (docs/dmft.md, "Depth-L networks"), with the depth-2 panel's error
    accounting (tests/test_dmft.py): d = 2000, 8 seeds, N = 40000 paths in 8 replicas, 40
    log-spaced times through search, escape and descent, α per ``DEPTH_PANEL``, σ ∈ {0, 0.1},
    λ ∈ {0, 0.02}, ρ = 0.3, teacher ±1 (a Gaussian prior's tail needs a smaller step at L = 4,
    see config.yaml's depth sweep), dt = 0.01 below the stability edge of the largest |β|.
    Every recorded time above the DMFT floor within 4.5 combined standard errors.
    Backend: ``DLN_PANEL_BACKEND`` (numpy; cupy on a GPU: ≈ 1 min per case on one H200, ≈ 20 min
    per case on one CPU core)."""
    import os

    from test_dmft import _compare_with_sim

    rows = _compare_with_sim(delta, 0.3, [0.0, 0.1], DEPTH_PANEL[depth], [0.0, 0.02], dt=0.01, n_steps=800, d=2000,
                             seeds=range(8), n_paths=40000, n_rec=40, backend=os.environ.get("DLN_PANEL_BACKEND", "numpy"),
                             prior={"kind": "discrete", "values": [-1.0, 1.0], "probs": [0.5, 0.5]},
                             network="pm", depth=depth)
    for r in rows:
        p = r["point"]
        print(f"PANEL L={depth} delta={delta:g} alpha={p['alpha']:g} sigma={p['sigma']:g} "
              f"lambda={p['weight_decay']:g} {r['key']}: worst {r['worst']:.4f} median {r['median']:.4f} "
              f"worst_z {r['worst_z']:.2f} n_times {r['n_ok']}")
    bad = [r for r in rows if not r["passed"]]
    assert not bad, bad


# ------------------------------------------------------------------------------------------
# (h) dtype discipline, argument validation, range checks
# ------------------------------------------------------------------------------------------
def test_pm_float32_is_float32_arithmetic(backend):
    rng = np.random.default_rng(0)
    n, d, dt, T = 60, 100, 0.01, 200
    X = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32).astype(np.float64)
    y = (X @ np.where(rng.random(d) < 0.3, rng.standard_normal(d), 0.0)).astype(np.float32).astype(np.float64)
    alphas = np.array([0.05, 0.3, 0.8], dtype=np.float32).astype(np.float64)
    rec = [0, T // 2, T]
    r32 = run_gd(X, y, alphas, dt, T, rec, 3, dtype=np.float32, backend=backend)
    r64 = run_gd(X, y, alphas, dt, T, rec, 3, backend=backend)
    for name in ("e_train", "e_test", "l1_norm", "conservation_drift", "beta_final"):
        assert r32[name].dtype == np.float32, name
        assert r64[name].dtype == np.float64, name
    rel = np.max(np.abs(r32["beta_final"] - r64["beta_final"])) / np.max(np.abs(r64["beta_final"]))
    assert 1e-8 < rel < 1e-4, rel


def test_dmft_pm_float32(backend):
    from dln_kernels.dmft.solver import solve_dmft

    # As tests/test_edges.py for uv: float32-sized differences against float64 on the same inputs and
    # pivot tolerance (measured 3.3e-4), far inside the Monte-Carlo error with the default tolerances.
    # (At lazier points, e.g. α = 0.3, the paths barely move, M is ill-conditioned and the result
    # depends on the pivot tolerance itself at the 2 % level, 0.6 standard errors: a solver property.)
    kw = dict(n_steps=60, dt=0.015, n_paths=960, progress=False, seed=3, backend=backend, network="pm", depth=3)
    pts = {"alpha": [0.7, 1.0], "delta": [0.5], "rho": [0.3], "sigma": [0.1]}
    r32 = solve_dmft(pts, dtype="float32", **kw)
    r64 = solve_dmft(pts, dtype="float64", pivot_tol=1e-5, **kw)
    for name in ("e_train", "e_test", "e_train_se", "e_test_floor", "decay_rate_spectral"):
        assert r32[name].dtype == np.float32, name
        assert r64[name].dtype == np.float64, name
    rel = np.max(np.abs(r32["e_test"] - r64["e_test"]) / r64["e_test"])
    assert 1e-8 < rel < 2e-3, rel
    r64 = solve_dmft(pts, dtype="float64", **{k: v for k, v in kw.items()})
    assert np.all(np.abs(r32["e_test"] - r64["e_test"]) < 0.25 * r64["e_test_se"])


def test_network_arguments_are_validated():
    from dln_kernels.dmft.solver import solve_dmft

    kw = dict(model="dln", d=20, delta=0.5, rho=[0.3], sigma=[0.0], alpha=[0.5], weight_decay=[0.0], seeds=[0],
              dt=0.05, n_steps=4, record_steps=[0, 4])
    with pytest.raises(ValueError, match="network: unknown value 'deep'"):
        simulate_grid(network="deep", **kw)
    with pytest.raises(ValueError, match="depth: the 'uv' network has depth 2"):
        simulate_grid(network="uv", depth=3, **kw)
    with pytest.raises(ValueError, match="depth: the 'pm' network needs depth ≥ 2"):
        simulate_grid(network="pm", depth=1, **kw)
    for bad in (2.5, True, "3"):
        with pytest.raises(ValueError, match="depth: need an integer"):
            simulate_grid(network="pm", depth=bad, **kw)
    a = simulate_grid(network="pm", depth=3.0, **kw)  # an integral float is accepted
    b = simulate_grid(network="pm", depth=np.int64(3), **kw)
    assert np.array_equal(a["e_test"], b["e_test"])
    with pytest.raises(ValueError, match="depth: the 'uv' network has depth 2"):
        solve_dmft({"delta": 0.5, "dt": 0.05}, n_steps=4, n_paths=80, progress=False, depth=4)
    with pytest.raises(ValueError, match="network: unknown value"):
        solve_dmft({"delta": 0.5, "dt": 0.05}, n_steps=4, n_paths=80, progress=False, network="PM")
    # range: (100·tiny)^{1/(2L−2)} for pm, L ≥ 3; the uv rule at L = 2
    assert alpha_min(np.float64, "pm", 2) == alpha_min(np.float64)
    np.testing.assert_allclose(alpha_min(np.float32, "pm", 4), (100 * float(np.finfo(np.float32).tiny)) ** (1 / 6), rtol=1e-12)
    with pytest.raises(ValueError, match=r"alpha: 1e-12 is below alpha_min\(float32\) = 1e-09 for network 'pm' of depth 3"):
        simulate_grid(**{**kw, "alpha": [1e-12]}, network="pm", depth=3, dtype="float32")
    simulate_grid(**{**kw, "alpha": [1e-12]}, network="pm", depth=2, dtype="float32")
    with pytest.raises(ValueError, match=r"alpha 1e-80 is below alpha_min\(float64\) = 3.9e-77 for network 'pm'"):
        solve_dmft({"alpha": 1e-80, "delta": 0.5, "dt": 0.05}, n_steps=4, n_paths=80, progress=False, network="pm",
                   depth=3)


def test_conventions_give_the_same_dynamics():
    """dln_kernels.model.conventions.convert: each literature convention, iterated as written, equals
    the project's uv network at the converted (α, dt, λ), step for step (to rounding)."""
    from dln_kernels.model.conventions import convert

    rng = np.random.default_rng(3)
    n, d, T = 30, 60, 300
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    y = X @ np.where(rng.random(d) < 0.3, rng.standard_normal(d), 0.0)
    alpha, dt, lam = 0.2, 0.02, 0.03

    def gd(u, v, dbeta, beta_of, dt, lam):
        for _ in range(T):
            g = X.T @ (y - X @ beta_of(u, v)) / (n / d)
            du, dv = dbeta(u, v)
            u, v = u + dt * (du * g - lam * u), v + dt * (dv * g - lam * v)
        return beta_of(u, v)

    def uv(c):
        return gd(np.full(d, c["alpha"]), np.zeros(d), lambda u, v: (v, u), lambda u, v: u * v, c["dt"], c["weight_decay"])

    written = {
        "pm": gd(np.full(d, alpha), np.full(d, alpha), lambda u, v: (2 * u, -2 * v), lambda u, v: u * u - v * v, dt, lam),
        "paper": gd(np.full(d, alpha), np.full(d, alpha), lambda u, v: (u, -v), lambda u, v: 0.5 * (u * u - v * v), dt, lam),
        "even": gd(np.full(d, np.sqrt(2) * alpha), np.zeros(d), lambda u, v: (v, u), lambda u, v: u * v, dt, lam),
    }
    for name, beta in written.items():
        np.testing.assert_allclose(uv(convert(alpha, dt, lam, source=name)), beta, rtol=1e-9, atol=1e-13)
    back = convert(**convert(alpha, dt, lam, source="paper", target="pm"), source="pm", target="paper")
    assert back == pytest.approx({"alpha": alpha, "dt": dt, "weight_decay": lam})
    with pytest.raises(ValueError, match="convention: unknown value 'woodworth'"):
        convert(alpha, source="woodworth")
