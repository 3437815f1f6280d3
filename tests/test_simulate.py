"""The batched simulator: invariants, exact limits, batching and determinism."""

import numpy as np
import pytest

from dln_kernels.model.problem import draw_instance
from dln_kernels.model.schedule import output_steps
from dln_kernels.sim.simulate import DivergenceError, simulate_grid

GB = {"kind": "gauss_bernoulli"}


def run(**kw):
    args = dict(backend="numpy", model="dln", d=150, delta=0.6, rho=[0.3], sigma=[0.0], alpha=[0.5], weight_decay=[0.0],
                seeds=[0], dt=0.05, n_steps=200, record_steps=[0, 50, 100, 200])
    args.update(kw)
    return simulate_grid(**args)


def reference_gd(X, y, beta_star, alpha, lam, dt, n_steps, model):
    """One run, plain NumPy matrix–vector products: the algorithm as written in theory.md §1."""
    n, d = X.shape
    delta = n / d
    u, v = np.full(d, alpha), np.zeros(d)
    beta = u * v if model == "dln" else np.zeros(d)
    for _ in range(n_steps):
        g = X.T @ (y - X @ beta) / delta
        if model == "dln":
            u, v = u + dt * (v * g - lam * u), v + dt * (u * g - lam * v)
            beta = u * v
        else:
            beta = beta + dt * (g - lam * beta)
    r = y - X @ beta
    return r @ r / (2 * n), (beta - beta_star) @ (beta - beta_star) / (2 * d)


@pytest.mark.parametrize("model", ["dln", "linear"])
def test_matches_reference_single_run(model, backend):
    d, delta, rho, sigma, alpha, lam, dt, T = 120, 0.7, 0.3, 0.2, 0.8, 0.01, 0.05, 150
    res = run(backend=backend, model=model, d=d, delta=delta, rho=[rho], sigma=[sigma], alpha=[alpha], weight_decay=[lam],
              dt=dt, n_steps=T, record_steps=[0, T])
    inst = draw_instance(d, 0, 0)
    X, xi, bs = inst.design(delta), inst.noise(delta), inst.teacher(GB, rho)
    e_train, e_test = reference_gd(X, X @ bs + sigma * xi, bs, alpha, lam, dt, T, model)
    np.testing.assert_allclose(res["e_train"].ravel()[-1], e_train, rtol=1e-10)
    np.testing.assert_allclose(res["e_test"].ravel()[-1], e_test, rtol=1e-10)


def test_conservation_drift_shrinks_linearly_with_dt(backend):
    # Per step, c = u² − v² changes by the factor (1 − dt² g²): over a fixed time t = k·dt the drift
    # is ≈ dt·∫g², i.e. first order in dt. Halving dt must halve it (ratio 2 up to O(dt) terms).
    t_end = 8.0
    drifts = []
    for dt in (0.04, 0.02, 0.01):
        n = int(round(t_end / dt))
        res = run(backend=backend, alpha=[0.5], dt=dt, n_steps=n, record_steps=[0, n])
        drifts.append(res["conservation_drift"].ravel()[-1])
    assert drifts[0] > 1e-4  # measurable, not rounding
    ratios = np.array(drifts[:-1]) / np.array(drifts[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)


def test_lazy_limit_is_linear_regression_with_time_rescaled(backend):
    # For large α, β = uv moves with rate √(c² + 4β²)·g = α²(1 + 2β²/α⁴ + …)·g, and the discrete
    # step adds dt²·uv·g² = O(dt_lin·β g/α⁴): the DLN with step dt_lin/α² equals the linear model
    # with step dt_lin up to relative corrections O(β²/α⁴). We check both the size (prefactor O(1),
    # bound 10 with β² = O(1)) and the α⁻⁴ scaling (ratio 16 when α doubles).
    dt_lin, T = 0.05, 400
    common = dict(delta=0.5, rho=[0.3], sigma=[0.1], n_steps=T, record_steps=np.arange(0, T + 1, 20))
    lin = run(backend=backend, model="linear", dt=dt_lin, **common)
    dev = {}
    for a in (10.0, 20.0):
        dln = run(backend=backend, model="dln", alpha=[a], dt=dt_lin / a**2, **common)
        dev[a] = max(np.max(np.abs(dln[k] - lin[k]) / lin[k]) for k in ("e_train", "e_test"))
        assert dev[a] * a**4 < 10.0
    assert 12.0 < dev[10.0] / dev[20.0] < 20.0


@pytest.mark.parametrize("model", ["dln", "linear"])
def test_batched_equals_one_at_a_time(model, backend):
    alphas, lams, sigmas = [0.05, 0.5, 2.0], [0.0, 0.02], [0.0, 0.3]
    kw = dict(model=model, rho=[0.2, 0.5], dt=0.02, seeds=[0, 1])
    batch = run(backend=backend, alpha=alphas, weight_decay=lams, sigma=sigmas, **kw)
    for i, s in enumerate(sigmas):
        for j, a in enumerate(alphas):
            for k, lam in enumerate(lams):
                one = run(backend=backend, alpha=[a], weight_decay=[lam], sigma=[s], **kw)
                for name in ("e_train", "e_test", "l1_norm"):
                    np.testing.assert_allclose(batch[name][:, :, i, j, k], one[name][:, :, 0, 0, 0], rtol=1e-9, atol=1e-14)


def test_deterministic(backend):
    a = run(backend=backend, alpha=[0.1, 1.0], seeds=[0, 1, 2])
    b = run(backend=backend, alpha=[0.1, 1.0], seeds=[0, 1, 2])
    for name in ("e_train", "e_test", "l1_norm", "conservation_drift"):
        assert np.array_equal(a[name], b[name])
    c = run(backend=backend, alpha=[0.1, 1.0], seeds=[0, 1, 2], base_seed=1)
    assert not np.array_equal(a["e_test"], c["e_test"])


def test_common_random_numbers_across_delta_and_rho():
    inst = draw_instance(100, 3, 7)
    big = inst.design(2.0).copy()
    assert np.array_equal(draw_instance(100, 3, 7).design(0.5), big[:50])
    t1, t2 = inst.teacher(GB, 0.2), inst.teacher(GB, 0.6)
    on1 = t1 != 0
    assert np.array_equal(t1[on1], t2[on1])  # support grows with ρ, values kept


def test_discrete_prior_frequencies():
    prior = {"kind": "discrete", "values": [-2.0, 1.0, 4.0], "probs": [0.25, 0.5, 0.25]}
    t = draw_instance(200_000, 0).teacher(prior, 0.5)
    assert set(np.unique(t)) == {-2.0, 0.0, 1.0, 4.0}
    freq = np.array([np.mean(t == v) for v in (-2.0, 1.0, 4.0, 0.0)])
    # binomial standard error ≤ sqrt(0.25/2e5) ≈ 1.1e-3; allow 5 se
    np.testing.assert_allclose(freq, [0.125, 0.25, 0.125, 0.5], atol=5.6e-3)


def test_divergence_is_reported_with_parameters(backend):
    with pytest.raises(DivergenceError, match="alpha=4"):
        run(backend=backend, alpha=[0.1, 4.0], dt=0.5, n_steps=400, record_steps=output_steps(400, 20))


def test_float32_close_to_float64(backend):
    # float32 arithmetic end to end (tests/test_edges.py checks it is not float64 in disguise):
    # over 200 steps the observables stay within 1e-4 of the float64 run
    a = run(backend=backend, alpha=[0.3, 1.0], dtype="float64", save_beta=True)
    b = run(backend=backend, alpha=[0.3, 1.0], dtype="float32", save_beta=True)
    for name in ("e_train", "e_test", "l1_norm", "conservation_drift", "beta_final"):
        assert a[name].dtype == np.float64 and b[name].dtype == np.float32, name
    np.testing.assert_allclose(b["e_test"], a["e_test"], rtol=1e-4)


def test_shared_and_per_run_data_have_same_statistics_shape(backend):
    shared = run(backend=backend, alpha=[0.3, 1.0], seeds=[0, 1])
    per_run = run(backend=backend, alpha=[0.3, 1.0], seeds=[0, 1], share_data=False)
    assert shared["e_test"].shape == per_run["e_test"].shape
    assert not np.array_equal(shared["e_test"], per_run["e_test"])


def test_output_steps_include_both_ends():
    ks = output_steps(5000, 60, "log")
    assert ks[0] == 0 and ks[-1] == 5000 and np.all(np.diff(ks) > 0)
    assert len(output_steps(10, 5, "linear")) == 5
