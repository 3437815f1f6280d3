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

from dln_kernels.measure.analysis import crossing_time
from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.measure.predictions import (
    depth_search_time,
    escape_clock,
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
from dln_kernels.measure import phenomena as pm
from dln_kernels.model.schedule import output_steps
from dln_kernels.sim.simulate import simulate_grid

GB = {"kind": "gauss_bernoulli"}


# ----------------------------------------------------------------------------------------------
# prediction helpers on known answers
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", [GB, {"kind": "discrete", "values": [-2, 1, 3], "probs": [0.3, 0.5, 0.2]}])
def test_tail_second_moment_matches_monte_carlo(prior):
    from dln_kernels.measure.predictions import g0_std
    from dln_kernels.model.priors import sample_teacher

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


# ----------------------------------------------------------------------------------------------
# measurements on aggregated Datasets (dln_kernels.measure.phenomena), on synthetic curves
# ----------------------------------------------------------------------------------------------
LN2 = math.log(2)


def _dataset(steps, dt, fields, alpha, delta=(1.0,), rho=(0.2,), sigma=(0.0,), weight_decay=(0.0,), seeds=None,
             depth=None):
    """A Dataset laid out like simulations.nc (with ``seeds``) or dmft.nc (without): dims (alpha,
    delta, rho, sigma, weight_decay[, depth][, seed], time), time = step·dt. ``fields``: name →
    f(p, t), p the grid point (dict), returning a curve over t or a scalar."""
    import xarray as xr

    steps = np.asarray(steps)
    t = steps * dt
    axes = {"alpha": alpha, "delta": delta, "rho": rho, "sigma": sigma, "weight_decay": weight_decay}
    if depth is not None:
        axes["depth"] = depth
    if seeds is not None:
        axes["seed"] = seeds
    names, shape = list(axes), [len(v) for v in axes.values()]
    data = {}
    for name, f in fields.items():
        vals = [np.asarray(f({n: axes[n][i] for n, i in zip(names, idx)}, t)) for idx in np.ndindex(*shape)]
        dims = names + (["time"] if vals[0].ndim else [])
        data[name] = (dims, np.array(vals).reshape(*shape, *vals[0].shape))
    coords = {n: np.asarray(v) for n, v in axes.items()}
    coords.update(time=t, step=("time", steps))
    return xr.Dataset(data, coords=coords)


def test_measure_dataset_helpers():
    # every parameter leaves its own digit in the curve: the selection can be read back
    def code(p, t):
        return p["alpha"] + 10 * p["rho"] + 100 * p["sigma"] + 1000 * p["weight_decay"] + 1e4 * p.get("seed", 0) + t

    steps = np.arange(5)
    sims = _dataset(steps, 0.1, {"e_train": code}, alpha=[1.0, 2.0], rho=[0.2, 0.3], sigma=[0.0, 0.1],
                    weight_decay=[0.0, 0.5], seeds=[0, 1])
    t = steps * 0.1
    # ρ, σ, λ at their first value unless selected
    np.testing.assert_allclose(pm.select_curve(sims, alpha=2.0, delta=1.0, seed=1)["e_train"].values, 2 + 2 + 1e4 + t)
    sel = pm.select_curve(sims, alpha=2.0, delta=1.0, seed=0, weight_decay=0.5, rho=0.3)
    np.testing.assert_allclose(sel["e_train"].values, 2 + 3 + 500 + t)
    np.testing.assert_allclose(pm.seed_curves(sims, "e_train", alpha=1.0, delta=1.0), [1 + 2 + t, 1 + 2 + 1e4 + t])
    assert pm.sweep_dt(sims) == pytest.approx(0.1, rel=1e-15)
    # masked DMFT curve: NaN where flagged below the floor; untouched without a mask variable
    dmft = _dataset(steps, 0.1, {"e_train": code, "e_train_below_floor": lambda p, t: t > 0.25}, alpha=[1.0, 2.0])
    y = pm.masked_curve(dmft, "e_train", alpha=1.0, delta=1.0)
    np.testing.assert_allclose(y[:3], 1 + 2 + t[:3])
    assert np.isnan(y[3:]).all()
    unmasked = pm.masked_curve(dmft.drop_vars("e_train_below_floor"), "e_train", alpha=1.0, delta=1.0)
    np.testing.assert_allclose(unmasked, 3 + t)
    # geometric seed mean, floored at 1e-300 (an exact 0 does not give -inf)
    np.testing.assert_allclose(pm.seed_geometric_mean(np.array([[1e-2, 0.0], [1e-4, 1e-2]])), [1e-3, 1e-151], rtol=1e-12)
    np.testing.assert_array_equal(pm.teacher_levels({"values": [-4, -2, -1, 1, 2, 4]}), [4.0, 2.0, 1.0])


def test_seed_crossing_slopes_of_known_exponentials():
    t = np.linspace(0, 50, 5001)
    x = np.array([1.0, 2.0, 3.0])
    # E = exp(-t/(c x)): t_1/2 = c x ln 2 exactly (crossings interpolate linearly in log E)
    curves = np.array([[np.exp(-t / (c * xi)) for xi in x] for c in (1.0, 1.5)])
    times, slope, se = pm.seed_crossing_slopes(t, curves, x, 0.5)
    np.testing.assert_allclose(times, [x * LN2, 1.5 * x * LN2], rtol=1e-9)
    assert slope == pytest.approx(1.25 * LN2, rel=1e-9)
    assert se == pytest.approx(0.25 * LN2, rel=1e-9)  # sd/√2 of two slopes ln2·(1, 1.5)
    # power law t_f ∝ x^-2 on log–log axes (transform np.log against ln x), other fraction
    a = np.array([2.0, 4.0, 8.0])
    curves = np.array([[np.exp(-t * ai**2 / c) for ai in a] for c in (3.0, 5.0)])
    times, slope, se = pm.seed_crossing_slopes(t, curves, np.log(a), 0.2, np.log)
    np.testing.assert_allclose(times[1], 5.0 * math.log(5) / a**2, rtol=1e-9)
    assert slope == pytest.approx(-2, abs=1e-9) and se == pytest.approx(0, abs=1e-9)
    # one seed: no standard error
    assert np.isnan(pm.seed_crossing_slopes(t, curves[:1], np.log(a), 0.2, np.log)[2])


def _search_sweep():
    """E_train = exp(-t/(k_δ c_seed L)), L = ln(1/α), for α ≤ 1e-3 (t_f = k c ln(1/f)·L exactly);
    α = 0.1 is off that law (and outside the fitted range)."""
    k = {0.5: 1.0, 2.0: 2.0}
    def tau(p):
        L = math.log(1 / p["alpha"])
        return k[p["delta"]] * (L if p["alpha"] <= 1e-3 else L + 5)

    c = {0: 1.0, 1: 1.2}
    kw = dict(alpha=[1e-6, 1e-4, 1e-3, 0.1], delta=[0.5, 2.0])
    steps, dt = np.arange(4001), 0.01
    sims = _dataset(steps, dt, {"e_train": lambda p, t: 0.3 * np.exp(-t / (c[p["seed"]] * tau(p)))}, seeds=[0, 1], **kw)
    dmft = _dataset(steps, dt, {"e_train": lambda p, t: 0.3 * np.exp(-t / tau(p)),
                                "e_train_se": lambda p, t: 0.003 * np.exp(-t / tau(p))}, **kw)
    return sims, dmft, k


def test_train_crossings_and_search_phase_measure():
    sims, dmft, k = _search_sweep()
    alphas, L = sims["alpha"].values, np.log(1 / sims["alpha"].values)
    t = sims["time"].values
    e, e_se, t_dmft, t_dmft_se, e_sim = pm.train_crossings(sims, dmft, alphas, 2.0, t, 0.5)
    L_eff = np.where(alphas <= 1e-3, L, L + 5)
    np.testing.assert_allclose(t_dmft, 2 * L_eff * LN2, rtol=1e-9)
    # s.e.: half the distance between the crossings of E(1 ∓ 1 %)
    np.testing.assert_allclose(t_dmft_se, L_eff * math.log(1.01 / 0.99), rtol=1e-9)
    assert e.shape == e_se.shape == (4, t.size) and e_sim.shape == (2, 4, t.size)

    m = pm.search_phase_measure(sims, dmft, GB)
    np.testing.assert_array_equal(m["fit"], [True, True, True, False])
    assert m["dt"] == pytest.approx(0.01) and m["rho"] == 0.2 and m["sigma"] == 0.0
    tab = m["table"]
    assert list(tab.columns) == ["delta", "fraction", "slope_dmft", "slope_dmft_se", "slope_sim", "slope_sim_se",
                                 "slope_leading_order", "rel_dev_dmft"]
    assert len(tab) == 2 * len(pm.SLOPE_FRACTIONS)
    for r in tab.itertuples():
        s = k[r.delta] * math.log(1 / r.fraction)  # exact slope of the fitted α (the off-law α = 0.1 is left out)
        assert r.slope_dmft == pytest.approx(s, rel=1e-6)
        assert r.slope_sim == pytest.approx(1.1 * s, rel=1e-6)  # seeds 1 and 1.2
        assert r.slope_sim_se == pytest.approx(0.1 * s, rel=1e-6)
        assert r.slope_leading_order == pytest.approx(search_slope(r.fraction, r.delta, 0.2, 0.0, GB, 0.01), rel=1e-12)
        assert r.rel_dev_dmft == pytest.approx(r.slope_dmft / r.slope_leading_order - 1, rel=1e-12)
    d = m["per_delta"][1]
    assert d["delta"] == 2.0 and d["fit_dmft"]["slope"] == pytest.approx(2 * LN2, rel=1e-6)
    np.testing.assert_allclose(d["t_sim"], [2 * L_eff * LN2, 2.4 * L_eff * LN2], rtol=1e-9)
    assert d["slope_leading_order"] == pytest.approx(search_slope(0.5, 2.0, 0.2, 0.0, GB, 0.01), rel=1e-12)
    # the theory on a grid of fractions, at the sweep's ρ, σ, dt
    np.testing.assert_allclose(pm.search_slope_theory(sims, GB, 2.0, np.array([0.5, 0.8])),
                               [search_slope(f, 2.0, 0.2, 0.0, GB, 0.01) for f in (0.5, 0.8)], rtol=1e-12)


def test_lazy_time_measure_of_a_known_power_law():
    # E = exp(-t α²/τ): t_1/2 = τ ln2/α² (slope -2); seeds τ·(1, 1.2). dt·α² ≤ 4e-3
    dt, steps = 6.25e-5, np.arange(321)  # t_max = 0.02
    kw = dict(alpha=[4.0, 8.0], delta=[2.0])
    sims = _dataset(steps, dt, {"e_train": lambda p, t: np.exp(-t * p["alpha"] ** 2 / (0.2 * (1 + 0.2 * p["seed"])))},
                    seeds=[0, 1], **kw)
    dmft = _dataset(steps, dt, {"e_train": lambda p, t: np.exp(-t * p["alpha"] ** 2 / 0.2),
                                "e_train_se": lambda p, t: 0.01 * np.exp(-t * p["alpha"] ** 2 / 0.2)}, **kw)
    m = pm.lazy_time_measure(sims, dmft, GB)
    tab, a = m["table"], np.array([4.0, 8.0])
    pts, fit = tab[tab.alpha.notna()], tab[tab.alpha.isna()].iloc[0]
    np.testing.assert_allclose(pts.t_lazy_dmft, 0.2 * LN2 / a**2, rtol=1e-9)
    np.testing.assert_allclose(pts.t_lazy_dmft_se, 0.1 * math.log(1.01 / 0.99) / a**2, rtol=1e-9)
    np.testing.assert_allclose(pts.t_lazy_sim_mean, 1.1 * 0.2 * LN2 / a**2, rtol=1e-9)
    np.testing.assert_allclose(pts.t_lazy_sim_sd, 0.2 * 0.2 * LN2 / a**2 / math.sqrt(2), rtol=1e-9)
    assert fit.slope_dmft == pytest.approx(-2, abs=1e-9) and fit.slope_sim == pytest.approx(-2, abs=1e-9)
    assert fit.slope_sim_se == pytest.approx(0, abs=1e-9)
    # lazy limit at δ = 2, ρ = 0.2 (E[β*²] = 0.2): t_lin/α² with t_lin = 0.252 (docs/phenomena.md, b)
    np.testing.assert_allclose(pts.t_lazy_linear_pred, 0.252 / a**2, rtol=0.01)
    assert fit.slope_pred == pytest.approx(-2, abs=0.01)
    np.testing.assert_array_equal(pm.lazy_time_theory(sims, GB, 2.0, a), pts.t_lazy_linear_pred.values)


def test_incremental_measure_of_a_staircase():
    from scipy.special import expit

    # levels 4, 1, 0.25; E_train drops by a decade at t_j = c·L/rate(ℓ_j) (sigmoids of width w in
    # log10 t); the step time (E = ½ plateau) is t_j·10^{w·logit(log10 2)}
    prior = {"kind": "discrete", "values": [-4, -1, -0.25, 0.25, 1, 4], "probs": [1 / 6] * 6}
    dt, w, levels = 1e-3, 0.03, np.array([4.0, 1.0, 0.25])
    rate = np.log1p(dt * levels) / dt
    steps = np.concatenate([[0], np.unique(np.rint(np.geomspace(10, 1e6, 3000)))]).astype(int)

    def staircase(p, t, c=1.0):
        tc = c * math.log(1 / p["alpha"]) / rate
        lt = np.log10(np.maximum(t, 1e-300))
        return 10 ** -sum(expit((lt - math.log10(x)) / w) for x in tc)

    c = {0: 1.0, 1: 1.1}
    kw = dict(alpha=[1e-4, 1e-7], delta=[8.0], rho=[0.05])
    sims = _dataset(steps, dt, {"e_train": lambda p, t: staircase(p, t, c[p["seed"]])}, seeds=[0, 1], **kw)
    dmft = _dataset(steps, dt, {"e_train": staircase, "e_train_below_floor": lambda p, t: t > 500}, **kw)
    m = pm.incremental_measure(sims, dmft, prior)
    s = math.log10(2)
    K = 10 ** (w * math.log(s / (1 - s)))
    np.testing.assert_array_equal(m["levels"], levels)
    assert m["e_train0"] == 1.0 and m["delta"] == 8.0 and m["dt"] == pytest.approx(dt)
    tab = m["table"]
    assert list(tab.alpha.unique()) == [1e-7, 1e-4]  # ascending α
    for a in (1e-7, 1e-4):
        L = math.log(1 / a)
        rows = tab[(tab.alpha == a) & tab.level.notna()]
        np.testing.assert_array_equal(rows.level, levels)
        np.testing.assert_allclose(rows.t_step_dmft, K * L / rate, rtol=2e-3)
        np.testing.assert_allclose(rows.t_step_sim_mean, 1.05 * K * L / rate, rtol=2e-3)
        np.testing.assert_allclose(rows.t_step_sim_sd, 0.1 / math.sqrt(2) * K * L / rate, rtol=0.03)
        theory = (L + 0.5 * np.log(4 / 3 * levels)) / rate
        np.testing.assert_allclose(rows.t_step_theory, theory, rtol=1e-12)
        np.testing.assert_allclose(rows.rel_dev_dmft, rows.t_step_dmft / theory - 1, rtol=1e-12)
        slope = tab[(tab.alpha == a) & tab.level.isna()].iloc[0]
        assert slope.slope_vs_inverse_rate == pytest.approx(K * L, rel=2e-3)
        assert slope.ln_inv_alpha == pytest.approx(L, rel=1e-15)
    assert np.isnan(m["per_alpha"][0]["e_dmft"][dmft["time"].values > 500]).all()  # masked below the floor


def _grok_curves(t, t0, w=0.5):
    """Lazy fit (E_train = 0.05 e^{-t/0.1}) and a late test drop centred at t0 (plateau ≈ 0.021):
    E_test = plateau/2 where the sigmoid is s = (0.02 − plateau/2)/0.015, t_test = t0 + w·logit(s)."""
    e_train = 0.05 * np.exp(-t / 0.1)
    e_test = 0.02 + 0.01 * np.exp(-t / 0.1) - 0.015 / (1 + np.exp(-(t - t0) / w))
    return e_train, e_test


def test_grokking_table_fit_and_summary():
    A, B, C0, w = 1.0, 0.4, 2.0, 0.5
    def t0(p):
        return A * math.log(p["alpha"]) / p["weight_decay"] + B / p["weight_decay"] + C0 + 0.3 * p.get("seed", 0)

    steps, dt = np.arange(6001), 0.005
    kw = dict(alpha=[1.5, 2.2, 3.3], delta=[0.5], rho=[0.1], weight_decay=[0.1, 0.2])
    fields = {v: (lambda i: lambda p, t: _grok_curves(t, t0(p), w)[i])(i) for i, v in enumerate(("e_train", "e_test"))}
    sims = _dataset(steps, dt, fields, seeds=[0, 1], **kw)
    dmft = _dataset(steps, dt, fields, **kw)
    tab = pm.grokking_table(sims, dmft)
    assert len(tab) == 6 and list(tab.columns[:2]) == ["alpha", "weight_decay"]
    lag = w * math.log(0.6333 / (1 - 0.6333))  # plateau 0.021: s = (0.02 − 0.0105)/0.015
    for r in tab.itertuples():
        p = {"alpha": r.alpha, "weight_decay": r.weight_decay}
        assert r.t_test_dmft == pytest.approx(t0(p) + lag, abs=2e-3)
        assert r.t_train_dmft == pytest.approx(0.1 * LN2, rel=1e-3)
        assert r.delay_dmft == pytest.approx(r.t_test_dmft - r.t_train_dmft, rel=1e-12)
        assert r.plateau_dmft == pytest.approx(0.021, rel=1e-3)
        assert r.t_test_sim_mean == pytest.approx(t0(p) + lag + 0.15, abs=2e-3)  # seeds shifted by 0, 0.3
        assert r.t_test_sim_sd == pytest.approx(0.3 / math.sqrt(2), abs=2e-3)
        assert r.hypothesis_ln_alpha_over_lambda == pytest.approx(math.log(r.alpha) / r.weight_decay, rel=1e-15)
    summary = pm.grokking_fit_summary(tab)
    assert list(summary.source) == ["dmft", "simulation"]
    dm, si = summary.iloc[0], summary.iloc[1]
    assert dm.A == pytest.approx(A, abs=1e-3) and dm.B == pytest.approx(B, abs=1e-3)
    assert dm.C == pytest.approx(C0 + lag, abs=2e-3) and si.C == pytest.approx(C0 + lag + 0.15, abs=2e-3)
    assert dm.n == 6 and dm.rms_resid < 1e-3


def test_grokking_fit_recovers_exact_coefficients():
    import pandas as pd

    a, lam = np.meshgrid([1.5, 2.2, 3.3], [0.07, 0.1, 0.2])
    tab = pd.DataFrame({"alpha": a.ravel(), "weight_decay": lam.ravel()})
    tab["t_test_dmft"] = 0.93 * np.log(tab.alpha) / tab.weight_decay + 0.37 / tab.weight_decay + 2.1
    tab.loc[4, "t_test_dmft"] = np.nan  # a level never reached: left out of the fit
    fit = pm.grokking_fit(tab)
    assert fit["A"] == pytest.approx(0.93, rel=1e-9) and fit["B"] == pytest.approx(0.37, rel=1e-9)
    assert fit["C"] == pytest.approx(2.1, rel=1e-9)
    assert fit["n"] == 8 and fit["rms_resid"] < 1e-10 and fit["A_se"] < 1e-8
    np.testing.assert_allclose(pm.grokking_model(fit, tab.alpha, tab.weight_decay)[tab.t_test_dmft.notna()],
                               tab.t_test_dmft.dropna(), rtol=1e-10)
    # with scatter: residuals give the standard errors (dof = n − 3)
    tab["t_test_dmft"] = tab.t_test_dmft.fillna(10.0) + 0.1 * np.resize([1.0, -1.0], 9)
    fit = pm.grokking_fit(tab)
    assert fit["n"] == 9 and fit["rms_resid"] > 0.05 and fit["A_se"] > 0


def test_dmft_window_masks():
    t = np.arange(20.0)
    bf = t >= 12  # first flagged at index 12: the last half of t[0..11] = [5.5, 11]
    np.testing.assert_array_equal(np.flatnonzero(pm.dmft_window(t, bf)), np.arange(6, 12))
    np.testing.assert_array_equal(np.flatnonzero(pm.dmft_window(t, np.zeros(20, bool))), np.arange(10, 20))
    assert not pm.dmft_window(t, t >= 3).any()  # fewer than min_points before the floor
    np.testing.assert_array_equal(np.flatnonzero(pm.dmft_window(t, bf, late_fraction=0.01)), np.arange(8, 12))


def test_tradeoff_measure_of_known_rates():
    r = {0.1: 0.5, 1.0: 2.0}  # E_train = e^{-r t}, seeds r·(1, 1.1), floored at 1e-30 (round-off)
    steps, dt = np.arange(601), 0.05  # t_max = 30
    kw = dict(alpha=[0.1, 1.0], delta=[0.5])
    sims = _dataset(steps, dt, {
        "e_train": lambda p, t: np.maximum(np.exp(-r[p["alpha"]] * (1 + 0.1 * p["seed"]) * t), 1e-30),
        "e_test": lambda p, t: np.full(t.size, 0.01 * p["alpha"] * (1 + 0.1 * p["seed"]))}, seeds=[0, 1], **kw)
    dmft = _dataset(steps, dt, {
        "e_train": lambda p, t: np.exp(-r[p["alpha"]] * t), "e_train_below_floor": lambda p, t: t >= 10,
        "e_test": lambda p, t: np.full(t.size, 0.01 * p["alpha"]),
        "decay_rate": lambda p, t: 0.99 * r[p["alpha"]], "decay_rate_se": lambda p, t: 0.01,
        "decay_rate_spectral": lambda p, t: 0.98 * r[p["alpha"]]}, **kw)
    m = pm.tradeoff_measure(sims, dmft)
    tab = m["table"]
    assert m["delta"] == 0.5 and list(tab.alpha) == [0.1, 1.0]
    for row in tab.itertuples():
        ra, e = r[row.alpha], 0.01 * row.alpha
        assert row.final_e_test_dmft == pytest.approx(e, rel=1e-12)
        assert row.final_e_test_sim_mean == pytest.approx(1.05 * e, rel=1e-12)
        assert row.final_e_test_sim_sd == pytest.approx(0.1 * e / math.sqrt(2), rel=1e-9)
        assert row.final_e_test_sim_se == pytest.approx(0.05 * e, rel=1e-9)
        # the round-off floor (E < 1e-24 at α = 1) is left out: exact rates
        assert row.late_rate_sim_mean == pytest.approx(1.05 * ra, rel=1e-9)
        assert row.late_rate_sim_sd == pytest.approx(0.1 * ra / math.sqrt(2), rel=1e-6)
        assert row.sim_fit_r2_min == pytest.approx(1, abs=1e-12)
        assert row.window_rate_sim_mean == pytest.approx(1.05 * ra, rel=1e-9)
        assert (row.window_rate_dmft, row.window_rate_dmft_se, row.rate_dmft_spectral) == pytest.approx(
            (0.99 * ra, 0.01, 0.98 * ra), rel=1e-12)
        assert row.dmft_window == "5-9.95"  # last half of [0, 9.95], before the floor at t = 10
    # last 30 % of the valid span: [21, 30] at α = 0.1; at α = 1 (seed 0) E > 1e-24 up to t = 27.6
    assert tab.late_window_sim[0] == "21-30"
    lo, hi = map(float, tab.late_window_sim[1].split("-"))
    assert hi == pytest.approx(27.6) and lo == pytest.approx(0.7 * 27.6, abs=0.1)  # first recorded t ≥ 19.32, as text
    t = sims["time"].values
    np.testing.assert_array_equal(m["per_alpha"][1]["window"], pm.dmft_window(t, t >= 10))
    # without the spectral rate in the Dataset: NaN
    assert pm.tradeoff_measure(sims, dmft.drop_vars("decay_rate_spectral"))["table"].rate_dmft_spectral.isna().all()


# ----------------------------------------------------------------------------------------------
# f. depth-L networks: saddle escape
# ----------------------------------------------------------------------------------------------
def test_escape_clock_is_the_gradient_flow_blowup():
    assert escape_clock(0.1, 2) == pytest.approx(0.5 * math.log(10), rel=1e-15)
    np.testing.assert_allclose(escape_clock(np.array([0.1, 0.2]), 3), [1 / 0.3, 1 / 0.6], rtol=1e-15)
    assert escape_clock(0.1, 4) == pytest.approx(1 / (8 * 0.01), rel=1e-14)
    # the pm update u <- u(1 + dt L u^{L-2} g) at g = 1 from u = α (theory.md §6): the time to
    # reach u = 1e3 converges (first order in dt) to the flow's α^{2-L}/(L(L-2)) minus the tail
    for L, a in ((3, 0.1), (4, 0.2)):
        want = escape_clock(a, L) * (1 - (1e3 / a) ** (2 - L))
        errs = []
        for dt in (1e-4, 5e-5):
            u = np.array([a])
            k = 0
            while u[0] < 1e3:
                u = u * (1 + dt * L * u ** (L - 2))
                k += 1
            errs.append(k * dt / want - 1)
        assert abs(errs[1]) < 2e-3 and abs(errs[1]) < 0.6 * abs(errs[0])
    # L = 2: u = α e^{2t} reaches 1 at ln(1/α)/2
    with pytest.raises(ValueError, match="depth"):
        escape_clock(0.1, 1)
    with pytest.raises(ValueError, match="alpha"):
        escape_clock(0.0, 3)


def test_depth_search_time_is_tau_times_the_clock():
    prior = {"kind": "discrete", "values": [-1.0, 1.0], "probs": [0.5, 0.5]}
    a = np.array([0.05, 0.1])
    # L = 2: the pm network at dt is uv at 2dt (theory.md §6), so τ is taken at 2dt
    np.testing.assert_allclose(depth_search_time(a, 2, 0.6, 0.2, 0.0, prior, dt=0.01),
                               search_slope(0.5, 0.6, 0.2, 0.0, prior, 0.02) * 0.5 * np.log(1 / a), rtol=1e-14)
    np.testing.assert_allclose(depth_search_time(a, 4, 0.6, 0.2, 0.0, prior, dt=0.01, fraction=0.7),
                               search_slope(0.7, 0.6, 0.2, 0.0, prior, 0.0) / (8 * a**2), rtol=1e-14)


def test_depth_escape_measure_of_known_power_laws():
    """E_train = E0·2^(−t/t_h) with t_h = c·Λ_L(α): t_{1/2} = t_h exactly (log-linear
    interpolation), the DMFT log-log slope is −(L − 2) for L ≥ 3 and the ln(1/α) slope c/2 at
    L = 2; a curve that never halves is NaN; 'converged' follows E_train(t_max)/E_train(0)."""
    prior = {"kind": "discrete", "values": [-1.0, 1.0], "probs": [0.5, 0.5]}
    alphas, depths, c = [0.05, 0.1, 0.2, 0.5], [2, 3], 0.6
    steps, dt = np.arange(2001), 0.01  # t_max = 20
    t_h = lambda p: c * escape_clock(p["alpha"], int(p["depth"]))  # noqa: E731
    curve = lambda p, t, k=1.0: 0.1 * 2.0 ** (-t / (k * t_h(p)))  # noqa: E731
    kw = dict(alpha=alphas, delta=[0.6], depth=depths)
    sims = _dataset(steps, dt, {"e_train": lambda p, t: curve(p, t, 1 + 0.1 * p["seed"]),
                                "e_test": lambda p, t: np.full(t.size, 0.01 * (1 + p["seed"]))}, seeds=[0, 1], **kw)
    dmft = _dataset(steps, dt, {"e_train": curve, "e_train_se": lambda p, t: np.zeros(t.size),
                                "e_test": lambda p, t: np.full(t.size, 0.02), "e_test_se": lambda p, t: np.full(t.size, 1e-3)},
                    **kw)
    m = pm.depth_escape_measure(sims, dmft, prior, n_static=3)
    tab, fits = m["table"], m["fits"].set_index("depth")
    for row in tab.itertuples():
        p = {"alpha": row.alpha, "depth": row.depth}
        want = t_h(p)
        if want < 20 / 1.1:  # both seeds halve before t_max
            assert row.t_half_dmft == pytest.approx(want, rel=1e-9)
            assert row.t_half_sim_mean == pytest.approx(1.05 * want, rel=1e-9)
            assert row.t_half_sim_se == pytest.approx(0.05 * want, rel=1e-9)
            assert row.n_sim_crossed == 2
        if want > 20:
            assert np.isnan(row.t_half_dmft) and np.isnan(row.t_half_sim_mean) and row.n_sim_crossed == 0
        assert row.converged == (2.0 ** (-20 / want) <= pm.CONVERGED_FRACTION)
        assert (row.final_e_test_dmft, row.final_e_test_dmft_se) == pytest.approx((0.02, 1e-3))
        assert (row.final_e_test_sim_mean, row.final_e_test_sim_se) == pytest.approx((0.015, 0.005))
        assert row.t_half_leading_order == pytest.approx(
            depth_search_time(row.alpha, row.depth, 0.6, 0.2, 0.0, prior, dt), rel=1e-12)
        assert 0 < row.e_test_static < 0.2  # the static theory's E_test (min-ℓ2 at δ = 0.6, ρ = 0.2: 0.08)
    assert fits.loc[3, "slope"] == pytest.approx(-1.0, rel=1e-9) and fits.loc[3, "slope_leading_order"] == -1.0
    assert fits.loc[2, "slope"] == pytest.approx(c / 2, rel=1e-9)
    assert fits.loc[2, "n_alpha_fitted"] == 3  # α ≤ 0.2
    grid, e_static = m["static_curves"][3]
    assert grid.size == 3 and np.all(np.diff(e_static) > 0)  # depth 3: E_test grows with α here
def test_relative_deviation_and_median():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    theory = np.array([1.0, 1.0, 2.0, np.nan, 4.0])
    sim = np.array([5.0, 1.1, 1.0, 7.0, 4.0])
    dev = pm.relative_deviation(sim, theory)
    assert np.allclose(dev[[1, 2, 4]], [0.1, 0.5, 0.0]) and np.isnan(dev[3])
    assert pm.median_relative_deviation(t, sim, theory) == pytest.approx(0.1)  # t = 0 and NaN left out
    assert math.isnan(pm.median_relative_deviation(t, sim, np.full(5, np.nan)))


def test_universality_measure_of_known_deviations():
    """Designs whose seed-mean curves are the DMFT's times (1 + c) for a known c per design and
    point (seeds at (1 + c)(1 ± 0.1), mean exact): the medians, maxima and final deviations are
    c; the d column comes from the ``designs`` attribute."""
    import json

    import xarray as xr

    steps, dt = np.arange(0, 50, 5), 0.1
    curve = lambda p, t: 0.1 * np.exp(-p["alpha"] * t / p["delta"])  # noqa: E731
    dmft = _dataset(steps, dt, {"e_train": curve, "e_test": lambda p, t: 2 * curve(p, t)},
                    alpha=[0.1, 0.5], delta=[0.5, 2.0])
    offsets = {"gauss": 0.0, "patches": 0.3}
    parts = []
    for name, c in offsets.items():
        shift = lambda p, t, c=c: (1 + c + 0.01 * p["alpha"]) * (1 + (0.1 if p["seed"] == 0 else -0.1))  # noqa: E731
        parts.append(_dataset(steps, dt, {"e_train": lambda p, t, s=shift: s(p, t) * curve(p, t),
                                          "e_test": lambda p, t, s=shift: 2 * s(p, t) * curve(p, t)},
                              alpha=[0.1, 0.5], delta=[0.5, 2.0], seeds=[0, 1]))
    sims = xr.concat(parts, dim=xr.DataArray(list(offsets), dims="design", name="design"))
    sims.attrs["designs"] = json.dumps([{"design": {"name": "gauss"}, "d": 500}, {"design": {"name": "patches"}, "d": 432}])
    m = pm.universality_measure(sims, dmft)
    tab = m["table"]
    assert len(tab) == 2 * 2 * 2 * 2
    for r in tab.itertuples():
        c = offsets[r.design] + 0.01 * r.alpha
        assert r.median_rel_dev == pytest.approx(c) and r.max_rel_dev == pytest.approx(c)
        assert r.final_rel_dev == pytest.approx(c)
        assert r.d == {"gauss": 500, "patches": 432}[r.design]
        assert r.final_sim_se == pytest.approx(0.1 * (1 + c) * r.final_dmft)  # sd·√2 / √2 seeds


def test_train_crossings_results_are_named():
    sims, dmft, _ = _search_sweep()
    tc = pm.train_crossings(sims, dmft, sims["alpha"].values, 2.0, sims["time"].values, 0.5)
    e, e_se, t_dmft, t_dmft_se, e_sim = tc  # still unpacks in the documented order
    assert tc.e_dmft is e and tc.e_dmft_se is e_se and tc.t_dmft is t_dmft and tc.t_dmft_se is t_dmft_se
    assert tc.e_sim is e_sim and e_sim.shape == (2, 4, sims["time"].size)
