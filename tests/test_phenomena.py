"""Phenomena against their leading-order theory: search phase ∝ ln(1/α), lazy time ∝ α⁻²,
incremental steps, grokking times; plus the prediction helpers on known answers.

Tolerances (docs/phenomena.md, "Tests"):
- search slope: the prediction is first order in the drop of E_train; at a 20 % drop
  (fraction 0.8) the neglected interaction between escaped coordinates is ≲ 2 % (it is 4–13 % at
  a 50 % drop on the full sweep, and second order in the drop), plus 4 Monte-Carlo standard
  errors of the fitted slope (from the 8 independent DMFT replicas).
- lazy slope: runs of one seed share the data, so the slope carries no sample noise; the
  discretisation (dt·α² ≤ 0.005, exact Marchenko–Pastur: slope shift 0.003) and the rich
  correction O(E[β²]/α⁴) ≲ 0.003 at α = 4 together stay below 0.01.
"""

import math

import numpy as np
import pytest

from dln_kernels.analysis import crossing_time
from dln_kernels.dmft import solve_dmft
from dln_kernels.phenomena import (
    escape_rate,
    frozen_train_fraction,
    grokking_times,
    incremental_step_prediction,
    incremental_steps,
    lazy_time_prediction,
    line_fit,
    search_slope,
    tail_second_moment,
)
from dln_kernels.schedule import output_steps
from dln_kernels.simulate import simulate_grid

GB = {"kind": "gauss_bernoulli"}


# ----------------------------------------------------------------------------------------------
# prediction helpers on known answers
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", [GB, {"kind": "discrete", "values": [-2, 1, 3], "probs": [0.3, 0.5, 0.2]}])
def test_tail_second_moment_matches_monte_carlo(prior):
    from dln_kernels.phenomena import g0_std
    from dln_kernels.priors import sample_teacher

    rng = np.random.default_rng(1)
    delta, rho, sigma, c = 0.7, 0.3, 0.2, 0.9
    n = 2_000_000
    g = sample_teacher(prior, rho, n, rng) + g0_std(delta, rho, sigma, prior) * rng.standard_normal(n)
    mc = np.mean(g**2 * (np.abs(g) >= c))
    se = np.std(g**2 * (np.abs(g) >= c)) / math.sqrt(n)
    assert tail_second_moment(c, delta, rho, sigma, prior) == pytest.approx(mc, abs=4 * se)
    # c = 0: the full second moment E[β*²] + (σ² + E[β*²])/δ
    m2 = float(np.mean(sample_teacher(prior, rho, n, rng) ** 2))
    assert tail_second_moment(0.0, delta, rho, sigma, prior) == pytest.approx(m2 + (sigma**2 + m2) / delta, rel=5e-3)


def test_frozen_fraction_limits_and_slope_inverse():
    # τ → 0: nothing escaped; the slope solves the fraction equation; dt → 0 is the flow limit
    assert frozen_train_fraction(1e-3, 2.0, 0.2) == pytest.approx(1.0, abs=1e-12)
    s = search_slope(0.7, 2.0, 0.2)
    assert frozen_train_fraction(s, 2.0, 0.2) == pytest.approx(0.7, abs=1e-9)
    assert search_slope(0.7, 2.0, 0.2, dt=1e-6) == pytest.approx(s, rel=1e-5)
    # a discrete step grows slower than the flow (ln(1 + dt g) < dt g): longer search
    assert search_slope(0.7, 2.0, 0.2, dt=0.1) > s
    assert escape_rate(2.0, 0.1) == pytest.approx(math.log(1.2) / 0.1)


def test_search_slope_of_a_single_level_teacher_without_noise():
    # δ → ∞: g₀ = β* = ±1 on the support, so every signal coordinate escapes at t = ln(1/α):
    # any fraction between 1 − (share of the support) and 1 gives the slope 1/rate(1).
    prior = {"kind": "discrete", "values": [-1.0, 1.0], "probs": [0.5, 0.5]}
    assert search_slope(0.5, 1e8, 0.2, prior=prior) == pytest.approx(1.0, rel=1e-3)
    assert search_slope(0.5, 1e8, 0.2, prior=prior, dt=0.05) == pytest.approx(0.05 / math.log(1.05), rel=1e-3)


def test_frozen_growth_formula_is_the_dln_update():
    # one coordinate with a constant gradient g: u ± v grow by (1 ± dt g) per step, so
    # β_k = (α²/4)((1 + dt g)^{2k} − (1 − dt g)^{2k})
    alpha, g, dt, k = 1e-3, 0.7, 0.05, 200
    u, v = alpha, 0.0
    for _ in range(k):
        u, v = u + dt * v * g, v + dt * u * g
    exact = alpha**2 / 4 * ((1 + dt * g) ** (2 * k) - (1 - dt * g) ** (2 * k))
    assert u * v == pytest.approx(exact, rel=1e-12)
    # which reaches ℓ/3 at the predicted step time for a level ℓ = g
    t_pred = incremental_step_prediction([g], alpha, dt)[0]
    ks = np.arange(1, 2000)
    beta = alpha**2 / 4 * ((1 + dt * g) ** (2 * ks) - (1 - dt * g) ** (2 * ks))
    assert crossing_time(ks * dt, 1.0 / beta, 3.0 / g) == pytest.approx(t_pred, rel=1e-3)


def test_line_fit_and_grokking_times_on_synthetic_curves():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    fit = line_fit(x, 2 * x + 1)
    assert fit["slope"] == pytest.approx(2) and fit["intercept"] == pytest.approx(1) and fit["slope_se"] < 1e-12
    t = np.linspace(0, 100, 20001)  # fine enough that linear interpolation errs < 1e-6
    e_train = 0.05 * np.exp(-t / 0.1)  # lazy fit
    e_test = 0.02 + 0.01 * np.exp(-t / 0.1) - 0.015 / (1 + np.exp(-(t - 40.0) / 2.0))  # late drop
    g = grokking_times(t, e_train, e_test)
    assert g["t_train"] == pytest.approx(0.1 * math.log(2), rel=1e-3)
    assert g["t_lazy"] == pytest.approx(0.1 * math.log(10), rel=1e-3)
    plateau = 0.02 + 0.01 * 0.1 - 0.015 / (1 + math.exp(20.0))  # E_test at t_lazy
    assert g["plateau"] == pytest.approx(plateau, rel=1e-3)
    s = (0.02 - plateau / 2) / 0.015  # the sigmoid value at which E_test = plateau/2
    assert g["t_test"] == pytest.approx(40 + 2 * math.log(s / (1 - s)), abs=0.02)


def test_incremental_steps_of_a_staircase():
    t = np.geomspace(1e-2, 1e3, 3000)
    levels, times = [1.0, 0.25, 0.05, 1e-3], [2.0, 20.0, 200.0]
    le = np.full(t.shape, 0.0)
    for i, tc in enumerate(times):
        le += np.log10(levels[i + 1] / levels[i]) / (1 + np.exp(-(np.log10(t) - np.log10(tc)) / 0.03))
    out = incremental_steps(t, 10**le)
    # E halves from plateau i where the i-th sigmoid (width 0.03 in log10 t) has reached
    # s = log(1/2)/log(ratio): t = tc·10^{0.03·logit(s)} (the other sigmoids are flat there)
    s = np.log(0.5) / np.log(np.array(levels[1:]) / np.array(levels[:-1]))
    expected = np.array(times) * 10 ** (0.03 * np.log(s / (1 - s)))
    assert out["heights"].size == 4
    np.testing.assert_allclose(out["step_times"][:3], expected, rtol=2e-3)


# ----------------------------------------------------------------------------------------------
# search phase: DMFT slope of t_search vs ln(1/α) against the leading-order prediction
# ----------------------------------------------------------------------------------------------
def _search_slopes(delta, alphas, fractions, dt, n_steps, n_paths, seed=1):
    out = solve_dmft({"alpha": alphas, "delta": delta, "rho": 0.2}, dt=dt, n_steps=n_steps, n_paths=n_paths,
                     n_batches=8, progress=False, seed=seed)
    t, L = out["time"][0], np.log(1 / np.asarray(alphas))
    res = {}
    for f in fractions:
        ts = [crossing_time(t, e, f * e[0]) for e in out["e_train"]]
        reps = [line_fit(L, [crossing_time(t, e, f * e[0]) for e in out["e_train_batches"][:, b]])["slope"]
                for b in range(out["e_train_batches"].shape[1])]
        res[f] = (line_fit(L, ts)["slope"], np.std(reps, ddof=1) / math.sqrt(len(reps)))
    return res


def test_search_phase_slope_matches_leading_order_dmft():
    delta, dt = 2.0, 0.1
    res = _search_slopes(delta, [1e-9, 1e-6, 1e-3], [0.9, 0.8], dt=dt, n_steps=250, n_paths=8000)
    for f, (slope, se) in res.items():
        pred = search_slope(f, delta, 0.2, dt=dt)
        assert se < 0.05 * pred  # the Monte-Carlo error is small enough for the check to bite
        assert abs(slope - pred) <= 4 * se + 0.02 * pred, (f, slope, se, pred)


@pytest.mark.slow
@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_search_phase_slope_matches_leading_order_dmft_long(delta):
    dt = 0.05
    res = _search_slopes(delta, [1e-10, 1e-8, 1e-6, 1e-4], [0.9, 0.8], dt=dt, n_steps=800, n_paths=16000, seed=2)
    for f, (slope, se) in res.items():
        pred = search_slope(f, delta, 0.2, dt=dt)
        assert abs(slope - pred) <= 4 * se + 0.02 * pred, (f, slope, se, pred)


# ----------------------------------------------------------------------------------------------
# lazy phase: t_lazy ∝ α⁻², and the DLN equals the linear model with step dt·α²
# ----------------------------------------------------------------------------------------------
def test_lazy_time_slope_is_minus_two_and_matches_linear_model():
    alphas, dt, n_steps, delta = [4.0, 8.0, 16.0], 2e-5, 1250, 2.0
    steps = np.arange(n_steps + 1)
    kw = dict(d=300, delta=delta, rho=[0.2], sigma=[0.0], weight_decay=[0.0], seeds=[0, 1], record_steps=steps)
    dln = simulate_grid(model="dln", alpha=alphas, dt=dt, n_steps=n_steps, **kw)
    t = dln["time"]
    pred = lazy_time_prediction(alphas, delta, 0.2, dt)
    assert line_fit(np.log(alphas), np.log(pred))["slope"] == pytest.approx(-2, abs=0.005)
    for s in range(2):
        t_lazy = [crossing_time(t, e, 0.5 * e[0]) for e in dln["e_train"][s, 0, 0, :, 0]]
        assert line_fit(np.log(alphas), np.log(t_lazy))["slope"] == pytest.approx(-2, abs=0.01)
        # the same data trained as a linear model with step dt·α²: the same half time (in steps)
        for a, tl in zip(alphas, t_lazy):
            lin = simulate_grid(model="linear", alpha=[1.0], dt=dt * a * a, n_steps=n_steps, **kw)
            e = lin["e_train"][s, 0, 0, 0, 0]
            t_lin = crossing_time(steps * dt, e, 0.5 * e[0])
            assert tl == pytest.approx(t_lin, rel=0.01)


@pytest.mark.slow
def test_lazy_time_dmft_follows_rescaled_linear_regression():
    alphas, dt, n_steps = [2.0, 4.0, 8.0], 1.5e-4, 1000
    for delta in (0.5, 2.0):
        out = solve_dmft({"alpha": alphas, "delta": delta, "rho": 0.2}, dt=dt, n_steps=n_steps, n_paths=8008,
                         n_batches=8, progress=False)
        t = out["time"][0]
        t_lazy = [crossing_time(t, e, 0.5 * e[0]) for e in out["e_train"]]
        np.testing.assert_allclose(t_lazy, lazy_time_prediction(alphas, delta, 0.2, dt), rtol=0.03)
        assert line_fit(np.log(alphas), np.log(t_lazy))["slope"] == pytest.approx(-2, abs=0.03)


# ----------------------------------------------------------------------------------------------
# incremental learning: steps at ln(1/α)/|level|
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_incremental_step_times_dmft():
    prior = {"kind": "discrete", "values": [-4, -2, -1, 1, 2, 4], "probs": [1 / 6] * 6}
    alpha, dt = 1e-10, 0.05
    # recorded as in the `incremental` sweep (200 log-spaced times): the plateau detector reads
    # slopes on log–log axes and is tuned for that sampling
    out = solve_dmft({"alpha": alpha, "delta": 8.0, "rho": 0.05}, dt=dt, n_steps=800, n_paths=8008,
                     n_batches=8, prior=prior, record_steps=output_steps(800, 200, "log"), progress=False)
    st = incremental_steps(out["time"][0], out["e_train"][0], n_steps=3)
    assert st["step_times"].size == 3
    np.testing.assert_allclose(st["step_times"], incremental_step_prediction([4, 2, 1], alpha, dt), rtol=0.1)
