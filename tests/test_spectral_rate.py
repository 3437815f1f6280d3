"""The late-time rate of E_train from the spectral edge (kernels/dln_kernels/dmft/spectral_rate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dln_kernels.measure.analysis import late_decay_rate
from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.static.marchenko_pastur import linear_gd_errors, mp_edges
from dln_kernels.dmft.spectral_rate import finite_rate, rate_from_edges, spectrum_edges


@pytest.mark.parametrize("delta", [0.3, 0.5, 2.0, 4.0])
def test_identity_weights_give_marchenko_pastur_edges(delta):
    # W = I: the nonzero spectrum of XXᵀ/δ is that of XᵀX/δ, edges (1 ∓ 1/√δ)²
    s_min, s_max = spectrum_edges(np.ones((1, 500)), [delta])
    lo, hi = mp_edges(delta)
    assert abs(s_min[0] - lo) < 1e-10 * hi and abs(s_max[0] - hi) < 1e-10 * hi


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_lower_edge_matches_finite_d_eigenvalues(delta):
    """A two-scale weight law (like a sparse DLN at its end: α² off the support, O(1) on it).

    Measured relative offset of the finite-d smallest eigenvalue (4 instances): ~5 % at
    d = 500 and ~1.5 % at d = 2000 (edge corrections shrink like d^(−2/3)); 5 % at d = 2000
    leaves room for the Tracy–Widom fluctuation of a single instance set, and the shrinking
    with d is asserted separately.
    """
    rng = np.random.default_rng(0)
    offsets = {}
    for d in (500, 2000):
        rel = []
        for _ in range(4):
            n = int(delta * d)
            X = rng.standard_normal((n, d)) / np.sqrt(d)
            w = np.where(rng.random(d) < 0.3, 0.05 + 2 * np.abs(rng.standard_normal(d)), 0.05)
            theory = spectrum_edges(w[None], [delta])[0][0]
            rel.append(finite_rate(X, w, delta, 0.1)[1] / theory - 1)
        offsets[d] = np.mean(np.abs(rel))
    assert offsets[2000] < 0.05, offsets
    assert offsets[2000] < offsets[500], offsets


@pytest.mark.parametrize("delta,dt,sigma", [(0.5, 0.2, 0.3), (0.5, 0.2, 0.0), (0.3, 0.1, 0.0)])
def test_exact_linear_tail_decays_at_the_edge_rate(delta, dt, sigma):
    """The exact d → ∞ linear-GD E_train (Marchenko–Pastur quadrature) decays like
    t^(−3/2)·exp(−rate·t) with the edge rate: the p = 1.5 fit recovers it to 1 % (measured
    0.1–0.6 %), while a plain exponential fit is biased high by ~1.5/t (measured +7–14 %)."""
    lo, hi = mp_edges(delta)
    rate = rate_from_edges(lo, hi, dt)
    steps = np.arange(int(20 / dt), int(40 / dt) + 1, 5)
    et, _ = linear_gd_errors(delta=delta, dt=dt, steps=steps, m2=1.0, sigma=sigma)
    t = steps * dt
    fit = late_decay_rate(t, et, tail_fraction=1.0, edge_power=1.5)
    plain = late_decay_rate(t, et, tail_fraction=1.0)
    assert abs(fit.rate / rate - 1) < 0.01, (fit, rate)
    assert plain.rate / rate - 1 > 0.03, (plain, rate)


def test_dmft_linear_spectral_rate_is_exact():
    """For the linear model every path has w = 1, so the DMFT's spectral rate is the MP one."""
    pts = [dict(delta=0.5, rho=0.3, sigma=0.1, dt=0.2), dict(delta=2.0, rho=1.0, sigma=0.0, dt=0.25),
           dict(delta=0.5, rho=0.3, sigma=0.1, weight_decay=0.1, dt=0.2)]
    out = solve_dmft(pts, n_steps=20, n_paths=512, n_batches=4, model="linear", progress=False)
    for i in range(2):
        lo, hi = mp_edges(pts[i]["delta"])
        assert out["decay_rate_spectral"][i] == pytest.approx(rate_from_edges(lo, hi, pts[i]["dt"]), rel=1e-10)
    assert np.isnan(out["decay_rate_spectral"][2])  # λ > 0: not defined


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="positive"):
        spectrum_edges(np.array([[1.0, 0.0]]), [0.5])


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_simulated_tail_decays_at_the_finite_edge_rate(alpha):
    """One d = 400 DLN run to E_train ~ 1e-24: its tail rate equals −2 ln(1 − dt λ_min)/dt of
    X diag(u² + v²) Xᵀ/δ at the final state (the linearisation is exact to first order in g).
    At finite d the smallest eigenvalue is isolated, so the tail is a pure exponential; the
    measured gap is 0.8 % (α = 1) and 0.5 % (α = 2), from w still settling inside the window
    and the next eigenvalues; 3 % would flag a wrong metric (e.g. w = 2|β| or α² is off by
    factors) or a missing factor 2."""
    from dln_kernels.model.problem import draw_instance

    d, delta, dt = 400, 0.5, 0.05
    inst = draw_instance(d, 3)
    X = inst.design(delta)
    n = X.shape[0]
    y = X @ inst.teacher({"kind": "gauss_bernoulli"}, 0.2)
    u, v = np.full(d, alpha), np.zeros(d)
    ts, es = [], []
    for k in range(6001):
        r = y - X @ (u * v)
        if k % 20 == 0:
            ts.append(k * dt)
            es.append(r @ r / (2 * n))
            if es[-1] < 1e-24:
                break
        g = X.T @ r / (n / d)
        u, v = u + dt * v * g, v + dt * u * g
    ts, es = np.array(ts), np.array(es)
    assert es[-1] < 1e-22
    fit = late_decay_rate(ts, es, valid=es < 1e-8, tail_fraction=1.0)
    assert fit.r_squared > 0.999
    assert fit.rate == pytest.approx(finite_rate(X, u * u + v * v, n / d, dt)[0], rel=0.03)


def _dmft_vs_finite_rates(d, alphas, n_steps, n_paths, seeds, delta=0.5, dt=0.05):
    """DMFT spectral rate, and per seed for the simulation's final (u, v): the d → ∞ edge rate of
    its empirical law of w (same formula as the DMFT's, isolates the law of w) and the finite-d
    rate from the exact smallest eigenvalue."""
    from dln_kernels.model.problem import draw_instance
    from dln_kernels.dmft.spectral_rate import edge_rate

    pts = [dict(alpha=a, delta=delta, rho=0.2, sigma=0.0, weight_decay=0.0, dt=dt) for a in alphas]
    out = solve_dmft(pts, n_steps=n_steps, record_steps=[0, n_steps], n_paths=n_paths, seed=1, progress=False)
    law = np.zeros((len(seeds), len(alphas)))
    finite = np.zeros_like(law)
    for i, s in enumerate(seeds):
        inst = draw_instance(d, s)
        X = inst.design(delta)
        n = X.shape[0]
        y = X @ inst.teacher({"kind": "gauss_bernoulli"}, 0.2)
        for j, a in enumerate(alphas):
            u, v = np.full(d, a), np.zeros(d)
            for _ in range(n_steps):
                g = X.T @ (y - X @ (u * v)) / (n / d)
                u, v = u + dt * v * g, v + dt * u * g
            w = u * u + v * v
            law[i, j] = edge_rate(w[None], [n / d], dt)[0][0]
            finite[i, j] = finite_rate(X, w, n / d, dt)[0]
    return out["decay_rate_spectral"], law, finite


def test_dmft_spectral_rate_matches_simulation():
    """The DMFT's floor-free rate against d = 1000 simulations (3 seeds) at the same final step.

    Compared with the same edge formula applied to each simulation's own law of w = u² + v²
    (so only the DMFT's description of that law is tested), within 3 seed standard errors + 1 %
    (O(1/√d) fluctuations of the law; measured: DMFT 1.4110 vs 1.4112 ± 0.0001). The exact finite-d rate lies above
    by the finite-size shift of the smallest eigenvalue (≈ d^(−2/3), measured +3.6 % here),
    so it is only required to be higher, by less than 8 %. With t = 30 the DMFT's windowed
    fit on its unflagged part (`decay_rate`) gives 1.82 for this point (and 0.67 against an
    edge rate of 0.38 at α = 1): it sees the faster pre-asymptotic decay, which is why the
    spectral rate exists.
    """
    rate, law, finite = _dmft_vs_finite_rates(1000, [2.0], n_steps=400, n_paths=3216, seeds=range(3))
    m, se = law.mean(0), law.std(0, ddof=1) / np.sqrt(law.shape[0])
    assert np.all(np.abs(rate - m) < 3 * se + 0.01 * m), (rate, m, se)
    shift = finite.mean(0) / m - 1
    assert np.all((shift > 0) & (shift < 0.08)), shift


@pytest.mark.slow
def test_dmft_spectral_rate_matches_simulation_panel():
    """α ∈ {0.5, 1, 2} at d = 2000 (4 seeds), t = 50, as the fast test."""
    rate, law, finite = _dmft_vs_finite_rates(2000, [0.5, 1.0, 2.0], n_steps=1000, n_paths=8016, seeds=range(4))
    m, se = law.mean(0), law.std(0, ddof=1) / np.sqrt(law.shape[0])
    for a, r, mi, si, fi in zip([0.5, 1.0, 2.0], rate, m, se, finite.mean(0)):
        print(f"alpha={a}: DMFT spectral rate {r:.4f}; d=2000 simulations: edge of their w law "
              f"{mi:.4f} ± {si:.4f}, exact smallest eigenvalue {fi:.4f}")
    assert np.all(np.abs(rate - m) < 3 * se + 0.01 * m), (rate, m, se)
