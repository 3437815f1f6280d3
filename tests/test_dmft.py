"""Validation of the DMFT solver (kernels/dln_kernels/dmft/solver.py).

Tolerances are statistical: a deviation is compared with the combined Monte-Carlo standard error
(DMFT replica spread, simulation seed spread). There is no separate finite-d allowance: a d-scan
(d = 1000, 2000, 4000 against N = 40000 DMFT paths, docs/dmft.md) found no resolvable finite-size
trend at the 1–2 % level, so any systematic deviation beyond the error bars is a failure.
None of the tolerances was tuned to make a test pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from dln_kernels.dmft.solver import memory_bytes, solve_dmft
from dln_kernels.static.marchenko_pastur import linear_gd_errors, mp_quadrature
from dln_kernels.model.priors import second_moment
from dln_kernels.model.schedule import output_steps

GB = {"kind": "gauss_bernoulli"}


# ------------------------------------------------------------------------------------------
# (a) linear model: DMFT == exact Marchenko–Pastur answer
# ------------------------------------------------------------------------------------------
def test_mp_quadrature_moments():
    # ∫ s^j dμ for H = XᵀX/δ: mass 1, mean 1, second moment 1 + 1/δ (atom at 0 included).
    for delta in (0.3, 0.5, 2.0, 5.0):
        s, w = mp_quadrature(delta, 2000)
        assert abs(w.sum() - 1) < 1e-12
        assert abs(w @ s - 1) < 1e-12
        assert abs(w @ s**2 - (1 + 1 / delta)) < 1e-12


def test_mp_matches_finite_d_linear_gd():
    """The closed form against explicit d = 1000 runs (8 instances)."""
    rng = np.random.default_rng(1)
    d, delta, dt, lam, sigma = 1000, 0.5, 0.2, 0.05, 0.3
    n = int(delta * d)
    steps = np.array([0, 1, 3, 10, 30, 100])
    tr_all, te_all = [], []
    for _ in range(8):
        X = rng.standard_normal((n, d)) / np.sqrt(d)
        bs = rng.standard_normal(d)
        y = X @ bs + sigma * rng.standard_normal(n)
        b = np.zeros(d)
        tr, te = [], []
        for k in range(steps.max() + 1):
            r = y - X @ b
            if k in steps:
                tr.append(r @ r / (2 * n))
                te.append((b - bs) @ (b - bs) / (2 * d))
            b = b + dt * (X.T @ r / delta - lam * b)
        tr_all.append(tr)
        te_all.append(te)
    et, ee = linear_gd_errors(delta=delta, dt=dt, steps=steps, m2=1.0, sigma=sigma, weight_decay=lam)
    # 4 standard errors of the instance mean + 2/d relative for the O(1/d) finite-size corrections
    for vals, exact in ((np.array(tr_all), et), (np.array(te_all), ee)):
        se = vals.std(0, ddof=1) / np.sqrt(len(vals))
        assert np.all(np.abs(vals.mean(0) - exact) < 4 * se + 2.0 / d * exact), (vals.mean(0), se, exact)


LINEAR_POINTS = [
    dict(delta=0.5, rho=1.0, sigma=0.0, weight_decay=0.0, dt=0.2),
    dict(delta=0.5, rho=0.3, sigma=0.2, weight_decay=0.1, dt=0.2),
    dict(delta=2.0, rho=1.0, sigma=0.3, weight_decay=0.05, dt=0.2),
    dict(delta=3.0, rho=0.5, sigma=0.0, weight_decay=0.0, dt=0.25),
]


def test_linear_dmft_equals_marchenko_pastur(backend):
    n_steps = 200
    rec = output_steps(n_steps, 30)
    out = solve_dmft(LINEAR_POINTS, backend=backend, n_steps=n_steps, record_steps=rec, n_paths=8000, n_batches=8,
                     model="linear", seed=3, progress=False)
    for i, p in enumerate(LINEAR_POINTS):
        et, ee = linear_gd_errors(delta=p["delta"], dt=p["dt"], steps=rec, m2=second_moment(GB, p["rho"]),
                                  sigma=p["sigma"], weight_decay=p["weight_decay"])
        ok = ~out["e_train_below_floor"][i]
        assert ok.sum() >= rec.size // 2
        # 4.5 standard errors (R ≈ 30 correlated comparisons per curve) + round-off
        tol_tr = 4.5 * out["e_train_se"][i] + 1e-12
        tol_te = 4.5 * out["e_test_se"][i] + 1e-12
        assert np.all(np.abs(out["e_train"][i] - et)[ok] < tol_tr[ok]), (p, out["e_train"][i], et)
        assert np.all(np.abs(out["e_test"][i] - ee) < tol_te), (p, out["e_test"][i], ee)
        # the standard errors are small enough for this to be a sharp check
        h = rec.size // 2
        assert np.median(out["e_test_se"][i][:h] / ee[:h]) < 0.02


# ------------------------------------------------------------------------------------------
# (b) DLN: DMFT vs finite-d simulation
# ------------------------------------------------------------------------------------------
def _compare_with_sim(delta, rho, sigmas, alphas, wds, dt, n_steps, d, seeds, n_paths, n_rec=25, backend="numpy",
                      **family):
    """DMFT vs simulation seed means on every recorded time above the DMFT's noise floor.
    ``family``: prior, network, depth (passed to both), e.g. the depth panel of test_depth.py."""
    from dln_kernels.sim.simulate import simulate_grid

    rec = output_steps(n_steps, n_rec)
    sim = simulate_grid(model="dln", d=d, delta=delta, rho=[rho], sigma=sigmas, alpha=alphas, backend=backend,
                        weight_decay=wds, seeds=list(seeds), dt=dt, n_steps=n_steps, record_steps=rec, **family)
    pts = [dict(delta=delta, rho=rho, sigma=s, alpha=a, weight_decay=l, dt=dt)
           for s in sigmas for a in alphas for l in wds]
    out = solve_dmft(pts, n_steps=n_steps, record_steps=rec, n_paths=n_paths, n_batches=8, seed=11, progress=False,
                     backend=backend, memory_budget_bytes=40e9 if backend == "cupy" else 4e9, **family)
    rows = []
    i = 0
    for si in range(len(sigmas)):
        for ai in range(len(alphas)):
            for li in range(len(wds)):
                for key in ("e_train", "e_test"):
                    s = sim[key][:, 0, si, ai, li, :]
                    m = s.mean(0)
                    se_sim = s.std(0, ddof=1) / np.sqrt(s.shape[0])
                    th, se_th = out[key][i], out[key + "_se"][i]
                    ok = ~out[key + "_below_floor"][i]
                    dev = np.abs(m - th)
                    # 4.5 combined standard errors (R ≈ 20–40 correlated comparisons per curve)
                    tol = 4.5 * np.hypot(se_sim, se_th)
                    rel = (dev / th)[ok]
                    rows.append(dict(point=pts[i], key=key, n_ok=int(ok.sum()), worst=rel.max(),
                                     median=np.median(rel), passed=bool(np.all((dev < tol)[ok])),
                                     worst_z=float(np.max((dev / np.hypot(se_sim, se_th))[ok]))))
                i += 1
    return rows


def test_dln_dmft_matches_simulation_small():
    rows = []
    for delta in (0.5, 2.0):
        rows += _compare_with_sim(delta, 0.3, [0.0, 0.1], [0.1, 1.0], [0.0, 0.05], dt=0.05, n_steps=200,
                                  d=1000, seeds=range(4), n_paths=4000, n_rec=20)
    bad = [r for r in rows if not r["passed"]]
    assert not bad, bad
    assert np.median([r["median"] for r in rows]) < 0.03


@pytest.mark.slow
@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_dln_dmft_matches_simulation_panel(delta):
    """Full panel, whole trajectory on log-spaced times, d = 2000, 5 seeds, N = 20000 paths."""
    rows = _compare_with_sim(delta, 0.3, [0.0, 0.1], [0.1, 1.0, 3.0], [0.0, 0.05], dt=0.02, n_steps=800,
                             d=2000, seeds=range(5), n_paths=20000, n_rec=40)
    for r in rows:
        print(f"{r['point']} {r['key']}: worst {r['worst']:.3f} median {r['median']:.3f} "
              f"worst z {r['worst_z']:.2f} ({r['n_ok']} times)")
    bad = [r for r in rows if not r["passed"]]
    assert not bad, bad


# ------------------------------------------------------------------------------------------
# (c) numerics: MC scaling, dt → 0, memory budget, batching
# ------------------------------------------------------------------------------------------
def test_mc_error_scales_as_inverse_sqrt_n():
    pts = [dict(delta=2.0, rho=0.3, sigma=0.1, alpha=1.0, dt=0.05)]
    rec = np.arange(10, 61, 10)
    se = []
    for n in (2000, 8000):
        out = solve_dmft(pts, n_steps=60, record_steps=rec, n_paths=n, n_batches=16, seed=5,
                         variance_reduction=False, progress=False)
        se.append(np.concatenate([out["e_test_se"][0], out["e_train_se"][0]]))
    ratio = np.exp(np.mean(np.log(se[0] / se[1])))
    # expected 2; a 16-replica se has ~18% relative error, the geometric mean over 12 values less
    assert 1.5 < ratio < 2.7, ratio


def test_gradient_flow_limit_first_order_in_dt():
    """GD → gradient flow: the gap to a small-dt solve shrinks linearly in dt.

    E_train at early times (where the O(dt) correction is largest relative to the MC error),
    pooled over t = 0.2 … 0.6; independent solves, so the gaps carry MC noise of ~1/3 of the
    gap at dt = 0.05 (measured), hence the generous ratio window. Expected ratio
    err(0.1)/err(0.05) = (0.1 − 0.00625)/(0.05 − 0.00625) = 2.14 (1 for no convergence, 4.6
    for a second-order error).
    """
    pt = dict(delta=0.5, rho=0.3, sigma=0.0, alpha=1.0)
    t_rec = np.array([0.2, 0.3, 0.4, 0.5, 0.6])
    vals = {}
    for dt in (0.1, 0.05, 0.00625):
        out = solve_dmft({**pt, "dt": dt}, n_steps=int(round(0.6 / dt)),
                         record_steps=np.round(t_rec / dt).astype(int), n_paths=40000, n_batches=8,
                         seed=2, progress=False)
        vals[dt] = (out["e_train"][0].sum(), np.sqrt(np.sum(out["e_train_se"][0] ** 2)))
    ref, ref_se = vals[0.00625]
    err = {dt: vals[dt][0] - ref for dt in (0.1, 0.05)}
    se = {dt: np.hypot(vals[dt][1], ref_se) for dt in (0.1, 0.05)}
    assert abs(err[0.1]) > 6 * se[0.1], (err, se)
    ratio = err[0.1] / err[0.05]
    assert 1.4 < ratio < 3.6, (ratio, err, se)


def test_memory_budget_refusal(backend):
    need = memory_bytes(1, 20000, 800, 8)
    assert need > 5e8
    with pytest.raises(MemoryError, match="memory_budget_bytes"):
        solve_dmft([dict(delta=0.5, dt=0.05)], backend=backend, n_steps=800, n_paths=20000, memory_budget_bytes=need / 2)


def test_batched_equals_one_at_a_time(backend):
    pts = [dict(delta=0.5, rho=0.3, sigma=0.0, alpha=0.3, weight_decay=0.0, dt=0.05),
           dict(delta=2.0, rho=0.5, sigma=0.1, alpha=1.5, weight_decay=0.05, dt=0.03)]
    kw = dict(n_steps=60, n_paths=1024, n_batches=4, seed=9, progress=False)
    both = solve_dmft(pts, backend=backend, **kw)
    for i, p in enumerate(pts):
        one = solve_dmft([p], backend=backend, **kw)
        for key in ("e_train", "e_test", "e_train_se"):
            np.testing.assert_allclose(both[key][i], one[key][0], rtol=1e-9, atol=1e-15)
    # chunked by the memory budget (one point per chunk) gives the same
    chunked = solve_dmft(pts, backend=backend, **kw, memory_budget_bytes=1.5 * memory_bytes(1, 1024, 60, 4))
    np.testing.assert_allclose(chunked["e_test"], both["e_test"], rtol=1e-9)


def test_variance_reduction_and_floor():
    """Orthogonal noise/probes + stratified teachers lower the MC error and the E_train floor."""
    p = [dict(delta=0.5, rho=0.3, sigma=0.0, alpha=1.0, dt=0.05)]
    rec = np.array([5, 60, 300])
    r = {vr: solve_dmft(p, n_steps=300, record_steps=rec, n_paths=8000, n_batches=8, seed=4,
                        variance_reduction=vr, progress=False) for vr in (True, False)}
    # measured: se ratio 3.8 (E_test) at k = 5, late floor 13x lower (docs/dmft.md)
    assert r[True]["e_test_se"][0, 0] < r[False]["e_test_se"][0, 0] / 2
    assert r[True]["e_train"][0, 2] < r[False]["e_train"][0, 2] / 3  # the late-time floor
    # the floor mask is consistent: masked values are within floor_factor of the floor
    out = r[True]
    assert out["e_train_below_floor"].dtype == bool
    assert not out["e_train_below_floor"][0, 0]


def _linear_response(G, delta, dt, lam):
    """X[k, l] = ∂x_k/∂ε_l of the linear model's tangent recursion x_{k+1} = (1 − dtλ) x_k +
    dt (ε_k − (K x)_k), K = (I + G/δ)⁻¹: what G must equal (G[k, l] = ⟨x_k ε_l⟩, theory.md §2)."""
    T = G.shape[0]
    K = np.linalg.inv(np.eye(T) + G / delta)
    X = np.zeros((T, T))
    for k in range(T - 1):
        X[k + 1] = (1 - dt * lam) * X[k] + dt * (np.eye(T)[k] - K[k] @ X)
    return X


@pytest.mark.parametrize("n_paths", [400, 8000])
def test_linear_response_is_exact_across_probe_blocks(n_paths):
    """The linear model's tangent is linear in the probes with path-independent coefficients, so
    G read off per probe block (each tangent driven by one block's orthonormal probes only) is
    exact to rounding however many blocks there are: 50 paths per replica over T = 101 (three
    blocks) as well as one block. (Read off the whole tangent, as before, the probes of other
    blocks enter with their O(1/√n) overlaps: max error 0.074 of max |G| = 0.25 at 50 paths.)"""
    out = solve_dmft([dict(delta=0.5, rho=1.0, sigma=0.1, weight_decay=0.05, dt=0.2)], n_steps=100, n_paths=n_paths,
                     n_batches=8, model="linear", seed=3, progress=False, return_matrices=True)
    G = out["G"][0]
    np.testing.assert_allclose(G, _linear_response(G, 0.5, 0.2, 0.05), rtol=0, atol=1e-13)


def test_linear_dmft_equals_marchenko_pastur_with_probe_blocks():
    """N/B = 50 paths per replica, T = 201 (five probe blocks): the exact answer within 4.5 se
    at every time above the floor (measured max |z| 0.79, 3.49, 1.04, 2.44), E_test at every
    time (max |z| 3.33). (Before the per-block tangents, the late E_train of the noiseless points
    was 10⁵–10⁸ times the exact value and E_test missed by 4.6 se.)"""
    n_steps, rec = 200, output_steps(200, 30)
    out = solve_dmft(LINEAR_POINTS, n_steps=n_steps, record_steps=rec, n_paths=400, n_batches=8, model="linear",
                     seed=3, progress=False)
    for i, p in enumerate(LINEAR_POINTS):
        et, ee = linear_gd_errors(delta=p["delta"], dt=p["dt"], steps=rec, m2=second_moment(GB, p["rho"]),
                                  sigma=p["sigma"], weight_decay=p["weight_decay"])
        ok = ~out["e_train_below_floor"][i]
        assert ok.sum() >= 5
        assert np.all(np.abs(out["e_train"][i] - et)[ok] < 4.5 * out["e_train_se"][i][ok] + 1e-12), (p, out["e_train"][i], et)
        assert np.all(np.abs(out["e_test"][i] - ee) < 4.5 * out["e_test_se"][i] + 1e-12), (p, out["e_test"][i], ee)


def test_probe_blocks_change_nothing_within_the_first_block(monkeypatch):
    """While only the first probe block has started, the per-block tangents are the whole
    tangent: the first N/B + 1 states are bit for bit those of the same solve with one whole
    tangent (``frame_blocks`` patched to one block: the former estimator), the later ones not."""
    from dln_kernels.dmft import solver as dm

    p = [dict(delta=0.5, rho=0.3, sigma=0.1, alpha=1.0, dt=0.05)]
    kw = dict(n_steps=120, n_paths=400, n_batches=8, seed=3, progress=False)  # N/B = 50: three blocks
    blocks = solve_dmft(p, **kw)
    monkeypatch.setattr(dm, "frame_blocks", lambda n, T, orthogonal=True: ((0, T),))
    whole = solve_dmft(p, **kw)
    for key in ("e_train_batches", "e_test_batches"):
        np.testing.assert_array_equal(blocks[key][:, :, :51], whole[key][:, :, :51])
        assert not np.array_equal(blocks[key][:, :, 51:], whole[key][:, :, 51:])


def test_late_block_flag_rule():
    """Past the first probe block a value after a flagged late value is flagged too (docs/dmft.md
    "Long sweeps"); within the first block, and for a solve of one block, the plain replica rule."""
    from dln_kernels.dmft.recorders import Solve

    # replica values (P=1, B=4, R=6): means 1, 1, tiny, 1, tiny, 1; tiny ones have a spread above them
    eb = np.ones((1, 4, 6)) + 1e-3 * np.arange(4)[None, :, None]
    eb[0, :, [2, 4]] = np.array([1e-6, -1e-6, 2e-6, -2e-6]) + 1e-7
    kw = dict(e_batches={"e_train": eb}, time=np.arange(6.0)[None], par={}, w_final=None, scale_final=None,
              floor_factor=3.0, dtype=np.float64)
    plain = Solve(**kw).below_floor("e_train")[0]
    np.testing.assert_array_equal(plain, [False, False, True, False, True, False])
    late = Solve(**kw, late=np.arange(6) >= 3).below_floor("e_train")[0]
    np.testing.assert_array_equal(late, [False, False, True, False, True, True])  # k = 3 precedes the late flag
    one_block = solve_dmft([dict(delta=0.5, rho=0.3, sigma=0.1, alpha=1.0, dt=0.05)], n_steps=40, n_paths=800,
                           n_batches=8, seed=3, progress=False)  # N/B = 100 ≥ T: the plain rule
    assert np.array_equal(one_block["e_train_below_floor"],
                          one_block["e_train"] < 3.0 * one_block["e_train_floor"])


# ------------------------------------------------------------------------------------------
# (d) step schedules
# ------------------------------------------------------------------------------------------
def test_constant_schedule_is_constant_dt():
    pts = [dict(delta=0.5, rho=0.3, sigma=0.1, alpha=0.5), dict(delta=2.0, rho=0.3, sigma=0.0, alpha=1.0)]
    kw = dict(n_steps=40, n_paths=640, n_batches=4, seed=2, progress=False, record_steps=[0, 7, 40])
    a = solve_dmft([{**p, "dt": 0.05} for p in pts], **kw)
    b = solve_dmft(pts, dt_schedule=np.full(40, 0.05), **kw)
    for name in ("e_train", "e_test", "e_train_se"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_allclose(a["time"], b["time"], rtol=1e-14)  # k·dt vs Σ dt_j
    assert b["dt_schedule"].shape == (2, 40)
    with pytest.raises(ValueError, match="dt_schedule: give either dt"):
        solve_dmft(pts, dt=0.05, dt_schedule=np.full(40, 0.05), **kw)
    with pytest.raises(ValueError, match="dt_schedule: need positive finite"):
        solve_dmft(pts, dt_schedule=np.full(39, 0.05), **kw)
    # the closed form's schedule recursion equals its constant-dt formula
    for delta in (0.5, 2.0):
        e1 = linear_gd_errors(delta=delta, dt=0.2, steps=[0, 3, 50], m2=0.7, sigma=0.3, weight_decay=0.05)
        e2 = linear_gd_errors(delta=delta, dt_schedule=np.full(50, 0.2), steps=[0, 3, 50], m2=0.7, sigma=0.3,
                              weight_decay=0.05)
        np.testing.assert_allclose(e1, e2, rtol=1e-10, atol=1e-14)


def test_linear_dmft_per_point_schedules_equal_marchenko_pastur():
    """Geometric and piecewise schedules, one per point, against the exact d → ∞ answer for the
    same schedule (4.5 standard errors, as the constant-dt test above)."""
    n_steps = 150
    geo = np.geomspace(0.02, 0.3, n_steps)  # below 2/s_max = 0.34 at δ = 0.5
    piece = np.where(np.arange(n_steps) < 50, 0.1, 0.25)
    pts = [dict(delta=0.5, rho=1.0, sigma=0.2, weight_decay=0.0), dict(delta=2.0, rho=0.5, sigma=0.0, weight_decay=0.05)]
    rec = output_steps(n_steps, 25)
    out = solve_dmft(pts, dt_schedule=np.stack([geo, piece]), n_steps=n_steps, record_steps=rec, n_paths=8000,
                     n_batches=8, model="linear", seed=3, progress=False)
    for i, (p, sched) in enumerate(zip(pts, (geo, piece))):
        np.testing.assert_allclose(out["time"][i], np.concatenate([[0.0], np.cumsum(sched)])[rec])
        et, ee = linear_gd_errors(delta=p["delta"], dt_schedule=sched, steps=rec, m2=second_moment(GB, p["rho"]),
                                  sigma=p["sigma"], weight_decay=p["weight_decay"])
        ok = ~out["e_train_below_floor"][i]
        assert ok.sum() >= rec.size // 2
        assert np.all(np.abs(out["e_train"][i] - et)[ok] < (4.5 * out["e_train_se"][i] + 1e-12)[ok]), (p, out["e_train"][i], et)
        assert np.all(np.abs(out["e_test"][i] - ee) < 4.5 * out["e_test_se"][i] + 1e-12), (p, out["e_test"][i], ee)


def test_fused_and_cpu_products_agree(monkeypatch):
    """The GPU grouping (one matmul with 2–3 right-hand sides) and the CPU grouping (the fused
    loops of cpu_products, by cache blocks of systems) are the same algorithm: equal to rounding
    over a short sweep; and the CPU blocking does not change a bit (a system's result depends
    only on its own inputs)."""
    import dln_kernels.dmft.solver as dm
    from dln_kernels.dmft import cpu_products

    pts = [dict(delta=0.5, rho=0.3, sigma=0.1, alpha=1.0, dt=0.05), dict(delta=2.0, rho=0.3, sigma=0.0, alpha=0.5, dt=0.05)]
    kw = dict(n_steps=20, n_paths=800, n_batches=4, seed=1, progress=False)
    ref = solve_dmft(pts, **kw)
    monkeypatch.setattr(dm, "CACHE_BYTES", 1)  # one system per block
    one_per_block = solve_dmft(pts, **kw)
    monkeypatch.setattr(dm, "FUSE_PRODUCTS", True)
    fused = solve_dmft(pts, **kw)
    for key in ("e_train", "e_test", "e_train_se", "e_test_se"):
        if cpu_products.AVAILABLE:
            np.testing.assert_array_equal(one_per_block[key], ref[key])
        np.testing.assert_allclose(fused[key], ref[key], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpu_products_equal_matmul(dtype):
    """cpu_products.dots2 / combos3 against matmul at every row count the unrolled loops split
    differently (m = 0, remainders of 4 and 8, full), rounding of the dtype; NaN propagates."""
    from dln_kernels.dmft import cpu_products

    if not cpu_products.AVAILABLE:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(0)
    S, T, n = 3, 21, 37
    H = rng.standard_normal((S, T, n)).astype(dtype)
    v1, v2 = rng.standard_normal((2, S, n)).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for m in (0, 1, 3, 4, 7, 8, 9, 17, T):
        o1, o2 = cpu_products.dots2(H, m, v1, v2)
        assert o1.dtype == dtype and o1.shape == (S, m)
        np.testing.assert_allclose(o1, np.einsum("sjn,sn->sj", H[:, :m].astype(float), v1.astype(float)), rtol=rtol, atol=rtol * 10)
        np.testing.assert_allclose(o2, np.einsum("sjn,sn->sj", H[:, :m].astype(float), v2.astype(float)), rtol=rtol, atol=rtol * 10)
        cs = rng.standard_normal((3, S, m)).astype(dtype)
        outs = cpu_products.combos3(H, m, *cs)
        for c, o in zip(cs, outs):
            assert o.dtype == dtype and o.shape == (S, n)
            np.testing.assert_allclose(o, np.einsum("sj,sjn->sn", c.astype(float), H[:, :m].astype(float)), rtol=rtol, atol=rtol * 10)
    H[1, 2, 5] = np.nan  # a diverged path stays visible (no nnan fast-math)
    o1, _ = cpu_products.dots2(H, 8, v1, v2)
    assert np.isnan(o1[1, 2]) and np.isfinite(o1[0]).all()
    outs = cpu_products.combos3(H, 8, *rng.standard_normal((3, S, 8)).astype(dtype))
    assert np.isnan(outs[0][1, 5]) and np.isfinite(outs[0][0]).all()


def test_pass_clock_times_without_changing_results(monkeypatch):
    """The benchmark hook (dmft.PASS_CLOCK) accumulates the passes' wall time and changes no bit."""
    import dln_kernels.dmft.solver as dm

    pts = [dict(delta=0.5, rho=0.3, sigma=0.1, alpha=1.0, dt=0.05)]
    kw = dict(n_steps=12, n_paths=400, n_batches=4, seed=2, progress=False)
    ref = solve_dmft(pts, **kw)
    clock = {"seconds": 0.0}
    monkeypatch.setattr(dm, "PASS_CLOCK", clock)
    timed = solve_dmft(pts, **kw)
    assert clock["seconds"] > 0.0
    for key in ("e_train", "e_test", "e_train_se"):
        np.testing.assert_array_equal(timed[key], ref[key])


# ------------------------------------------------------------------------------------------
# (e) structure: the recorders table against the registry, the options object, the point keys
# ------------------------------------------------------------------------------------------
TINY = dict(n_steps=6, n_paths=64, n_batches=4, seed=1, progress=False)
TINY_POINTS = [dict(delta=0.5, rho=0.3, sigma=0.1, alpha=0.5, dt=0.05), dict(delta=2.0, rho=0.3, alpha=1.0, dt=0.05)]


def test_every_registered_dmft_observable_has_a_recorder():
    from dln_kernels import registry
    from dln_kernels.dmft import recorders

    want = {o.name for o in registry.OBSERVABLES.values() if "dmft" in o.producers and o.only_with is None}
    assert set(recorders.recorders_for()) == want and "e_train" in want
    steps = {o.only_with for o in registry.OBSERVABLES.values() if "dmft" in o.producers and o.only_with}
    for step in steps:
        assert set(recorders.recorders_for(step)) == {o.name for o in registry.OBSERVABLES.values()
                                                      if "dmft" in o.producers and o.only_with == step}
    out = solve_dmft(TINY_POINTS, **TINY)
    assert want <= set(out)


def test_a_dmft_observable_without_recorder_is_refused(monkeypatch):
    """A DMFT observable registered without a recorder: an error at first use (before any compute)
    and at import, naming it; a recorder for an observable the registry does not list, too."""
    import subprocess
    import sys

    from dln_kernels import registry
    from dln_kernels.dmft import recorders
    from dln_kernels.registry import Observable

    dummy = Observable("e_dummy", "dummy", "1", frozenset({"dmft"}))
    with monkeypatch.context() as m:
        m.setitem(registry.OBSERVABLES, "e_dummy", dummy)
        with pytest.raises(recorders.MissingRecorderError, match=r"\['e_dummy'\].*DMFT.*DMFT_RECORDERS"):
            recorders.check_recorders()
        with pytest.raises(LookupError, match=r"\['e_dummy'\].*solve_dmft does not record"):
            solve_dmft(TINY_POINTS, **{**TINY, "n_steps": 10**6})  # refused before it allocates or computes
        m.setitem(registry.OBSERVABLES, "e_dummy", Observable("e_dummy", "dummy", "1", frozenset({"dmft"}),
                                                             only_with="n_convergence"))
        with pytest.raises(recorders.MissingRecorderError, match=r"\['e_dummy'\].*STEP_RECORDERS\['n_convergence'\]"):
            recorders.check_recorders()
    with monkeypatch.context() as m:  # the reverse: a recorder the registry does not list for the DMFT
        m.setitem(recorders.DMFT_RECORDERS, "l1_norm", lambda s: s.mean("e_test"))
        with pytest.raises(recorders.MissingRecorderError, match=r"\['l1_norm'\].*does not list for the DMFT"):
            recorders.recorders_for()
    code = ("from dln_kernels import registry\n"
            "registry.OBSERVABLES['e_dummy'] = registry.Observable('e_dummy', 'dummy', '1', frozenset({'dmft'}))\n"
            "import dln_kernels.dmft.solver\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "MissingRecorderError" in proc.stderr, proc.stderr
    assert "['e_dummy'] are registered for the DMFT" in proc.stderr, proc.stderr
    recorders.check_recorders()  # the shipped table is consistent again


def test_a_registered_dmft_recorder_is_recorded(monkeypatch):
    from dln_kernels import registry
    from dln_kernels.dmft import recorders
    from dln_kernels.registry import Observable

    monkeypatch.setitem(registry.OBSERVABLES, "e_gap", Observable("e_gap", "e_test - e_train", "1", frozenset({"dmft"})))
    monkeypatch.setitem(recorders.DMFT_RECORDERS, "e_gap", lambda s: s.mean("e_test") - s.mean("e_train"))
    out = solve_dmft(TINY_POINTS, **TINY)
    np.testing.assert_array_equal(out["e_gap"], out["e_test"] - out["e_train"])
    assert np.all(np.isfinite(out["e_gap"])) and np.any(out["e_gap"] != 0)  # from the solve, not an empty buffer


def test_options_object_and_keywords_are_the_same_solve():
    import dataclasses

    from dln_kernels.dmft.solver import DMFTOptions

    opts = DMFTOptions(n_paths=64, n_batches=4, seed=1, progress=False, dtype="float32")
    a = solve_dmft(TINY_POINTS, n_steps=6, options=opts)
    b = solve_dmft(TINY_POINTS, n_steps=6, n_paths=64, n_batches=4, seed=1, progress=False, dtype="float32")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with pytest.raises(ValueError, match=r"n_paths: given both"):
        solve_dmft(TINY_POINTS, n_steps=6, options=opts, n_paths=128)
    with pytest.raises(ValueError, match=r"n_batches, seed: given both"):
        solve_dmft(TINY_POINTS, n_steps=6, options=opts, seed=2, n_batches=4)
    with pytest.raises(TypeError, match="n_path"):
        solve_dmft(TINY_POINTS, n_steps=6, n_path=64)
    with pytest.raises(TypeError, match="options: need a DMFTOptions"):
        solve_dmft(TINY_POINTS, n_steps=6, options={"n_paths": 64})
    with pytest.raises(ValueError, match="n_batches: need at least 2"):
        DMFTOptions(n_batches=1)
    with pytest.raises(ValueError, match="too few paths per replica"):
        solve_dmft(TINY_POINTS, n_steps=6, options=dataclasses.replace(opts, n_paths=7))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.n_paths = 128


def test_point_keys_and_defaults_come_from_the_registry(monkeypatch):
    import dln_kernels.dmft.solver as dm
    from dln_kernels import registry
    from dln_kernels.registry import AXES, DMFT, Axis, axes_for

    assert dm.POINT_KEYS == tuple(a for a in axes_for(DMFT) if not AXES[a].splits_dmft and a != "dt_scale") + ("dt",)
    for k in dm.POINT_KEYS:
        if k in AXES and AXES[k].default is not None:
            assert dm.POINT_DEFAULTS[k] == AXES[k].default[0], k
    assert dm.POINT_DEFAULTS["rho"] == AXES["rho"].default[0] == 0.2 and dm.POINT_DEFAULTS["alpha"] == 1.0
    par = dm.normalize_points({"delta": 0.5}, dt=0.1)
    assert par["rho"][0] == 0.2 and par["alpha"][0] == 1.0 and par["batch_fraction"][0] == 1.0
    with pytest.raises(ValueError, match=r"points\[0\]: 'delta' is required"):
        dm.normalize_points({"rho": 0.5}, dt=0.1)
    # a new DMFT axis becomes a point key with its registry default; a stale exclusion is an error
    monkeypatch.setitem(registry.AXES, "new_axis", Axis("new_axis", "ν", "x", "x", "number", {}, (0.5,), "member",
                                                        frozenset({DMFT}), stack_rank=9))
    keys = dm._point_keys()
    assert keys[-2:] == ("new_axis", "dt") and dm._point_defaults(keys)["new_axis"] == 0.5
    monkeypatch.setattr(dm, "_STEP_AXES", ("no_such_axis",))
    with pytest.raises(ValueError, match=r"_STEP_AXES: \['no_such_axis'\]"):
        dm._point_keys()
