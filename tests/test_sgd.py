"""Mini-batch SGD (theory.md §5): the simulator, its refusals, and its DMFT.

Simulation: b = 1 is full-batch GD bit for bit; the selections come from the documented stream;
the stability bound is the mini-batch one; bad input is refused before compute. Theory: the N = ∞
linear recursion (``sgd_linear``) equals the Marchenko–Pastur GD answer at b = 1 and the closed
first step of §5 Remarks; the N-path solver and the simulations agree with it at b < 1.
"""

import numpy as np
import pytest
from conftest import resolved

from dln_kernels.backend import get_namespace
from dln_kernels.dmft.solver import half_paths, mask_n_bias, solve_dmft
from dln_kernels.static.marchenko_pastur import linear_gd_errors
from dln_kernels.model.priors import second_moment
from dln_kernels.model.problem import draw_instance, n_samples
from dln_kernels.model.schedule import hessian_edge, output_steps, stability_bound
from dln_kernels.dmft.sgd_linear import sgd_linear_exact
from dln_kernels.sim.simulate import simulate_grid, simulate_members
from dln_kernels.pipeline.chunks import make_chunks, make_dmft_chunks
from dln_kernels.pipeline.config import ConfigError, check_sweep
from dln_kernels.pipeline.run import run_chunk

GB = {"kind": "gauss_bernoulli"}
OBS = ("e_train", "e_test", "l1_norm", "conservation_drift")


def grid(**kw):
    args = dict(model="dln", d=150, delta=0.6, rho=[0.3], sigma=[0.0, 0.1], alpha=[0.1, 1.0], weight_decay=[0.0, 0.05],
                seeds=[0, 1], dt=0.05, n_steps=120, record_steps=[0, 7, 60, 120])
    args.update(kw)
    return simulate_grid(**args)


# ------------------------------------------------------------------------------------------
# simulation
# ------------------------------------------------------------------------------------------
# Runs computed in data groups of another width go through matrix products of another shape,
# which a BLAS may block differently (docs/reproducibility.md): such pairs agree to rounding. The
# measured deviation is 2e-14 relative (OpenBLAS Prescott/Core2 kernels; 0 on Haswell, Zen and
# Sandybridge); rounding of ~1e-16 per step over 10^2 steps stays far below this tolerance, a
# wrong selection, scale or step of a b = 1 run does not.
CROSS_LAYOUT = dict(rtol=1e-9, atol=1e-14)


def test_full_batch_is_gradient_descent_bit_for_bit(backend):
    """b = 1 alone, and the b = 1 runs of a data group that also holds b < 1 runs, are GD exactly:
    bit for bit against GD runs in the same layout (same GEMM shapes), to rounding across layouts."""
    gd = grid(backend=backend)
    one = grid(backend=backend, batch_fraction=[1.0])
    mixed = grid(backend=backend, batch_fraction=[0.2, 1.0])
    gd_same_layout = grid(backend=backend, batch_fraction=[1.0, 1.0])  # the mixed groups' shape, all b = 1
    for name in OBS:
        assert np.array_equal(gd[name], one[name][..., 0, :]), name
        assert np.array_equal(gd_same_layout[name][..., 1, :], mixed[name][..., 1, :]), name
        np.testing.assert_allclose(mixed[name][..., 1, :], gd[name], **CROSS_LAYOUT, err_msg=name)
    assert not np.allclose(mixed["e_test"][..., 0, -1], mixed["e_test"][..., 1, -1])  # b < 1 does differ


def test_selection_follows_the_documented_stream():
    """Linear model, one step from β = 0: β_1 = dt·Xᵀ(s ⊙ y)/(bδ), s_μ = [U_μ < b] (Bernoulli) or
    the round(b n) smallest U (fixed size), U the first n uniforms of the selection stream."""
    d, delta, b, dt, seed = 80, 1.5, 0.3, 0.1, 4
    inst = draw_instance(d, seed, base_seed=7)
    n = n_samples(delta, d)
    X, y = inst.design(delta), inst.design(delta) @ inst.teacher(GB, 0.5)
    U = inst.selection_rng().random(n)
    for sampling in ("bernoulli", "fixed"):
        res = simulate_members(get_namespace("numpy"),
                               [draw_instance(d, seed, base_seed=7)],
                               [{"rho": [0.5], "sigma": [0.0], "alpha": [1.0], "weight_decay": [0.0], "batch_fraction": [b]}],
                               model="linear", delta=delta, prior=GB, dt_schedule=np.array([dt]), record_steps=[0, 1],
                               record_beta=True, batch_sampling=sampling)
        if sampling == "bernoulli":
            s, scale = (U < b).astype(float), b
        else:
            m = int(round(b * n))
            s = np.zeros(n)
            s[np.argsort(U, kind="stable")[:m]] = 1.0
            scale = m / n
        expect = dt * X.T @ (s * y) / (scale * n / d)
        np.testing.assert_allclose(res["beta"][0, 0, 1], expect, rtol=1e-12, atol=1e-15)


def test_sgd_runs_are_reproducible_and_chunk_independent(backend):
    a = grid(backend=backend, batch_fraction=[0.2, 0.5])
    b = grid(backend=backend, batch_fraction=[0.2, 0.5])
    for name in OBS:
        assert np.array_equal(a[name], b[name])
    # a run's selection does not depend on its batch-mates: b = 0.2 alone equals b = 0.2 in the pair
    alone = grid(backend="numpy", alpha=[1.0], sigma=[0.1], weight_decay=[0.0], batch_fraction=[0.2])
    pair = grid(backend="numpy", batch_fraction=[0.2, 0.5])
    np.testing.assert_allclose(alone["e_test"][:, 0, 0, 0, 0, 0], pair["e_test"][:, 0, 1, 1, 0, 0], rtol=1e-12)


def test_fixed_and_bernoulli_batches_agree_on_average():
    """Same d → ∞ limit (theory.md §5 Remarks); finite-d curves differ at O(1/n) + seed noise."""
    kw = dict(model="linear", d=300, delta=2.0, rho=[0.3], sigma=[0.1], alpha=[1.0], weight_decay=[0.0], seeds=range(6),
              dt=0.1, n_steps=80, record_steps=[80], batch_fraction=[0.2])
    ber, fix = simulate_grid(**kw), simulate_grid(**kw, batch_sampling="fixed")
    for name in ("e_train", "e_test"):
        x, y = ber[name].ravel(), fix[name].ravel()
        se = np.hypot(x.std(ddof=1), y.std(ddof=1)) / np.sqrt(x.size)
        assert abs(x.mean() - y.mean()) < 4 * se + 0.02 * x.mean(), (name, x.mean(), y.mean())


def test_bad_batch_fraction_refused_before_compute():
    inst = [draw_instance(50, 0)]
    base = {"rho": [0.5], "sigma": [0.0], "alpha": [1.0], "weight_decay": [0.0]}
    kw = dict(model="dln", delta=0.5, prior=GB, dt_schedule=np.full(3, 0.01), record_steps=[0, 3])
    for bad, text in ((0.0, r"batch_fraction: 0 is outside \(0, 1\]"), (1.5, r"batch_fraction: 1.5 is outside"),
                      (0.02, r"batch_fraction: 0.02 uses b·n = 0.5 < 1")):
        with pytest.raises(ValueError, match=text):
            simulate_members(get_namespace("numpy"), inst, [{**base, "batch_fraction": [bad]}], **kw)


def test_stability_bound_is_the_mini_batch_one():
    for model in ("linear", "dln"):
        assert stability_bound(model, 1.0, 0.5, 0.0, GB) == stability_bound(model, 1.0, 0.5, 0.0, GB, batch_fraction=1.0)
        ratio = stability_bound(model, 1.0, 0.5, 0.0, GB, batch_fraction=0.1) / stability_bound(model, 1.0, 0.5, 0.0, GB)
        assert ratio == pytest.approx(hessian_edge(0.5) / hessian_edge(0.05))
    # stricter than the lazy estimate dt·w/(bδ) ≤ 2 of theory.md §5 Remarks (linear model: w = 1)
    for b, delta in ((0.1, 0.5), (0.3, 2.0), (1.0, 1.0)):
        assert stability_bound("linear", 1.0, delta, 0.0, GB, batch_fraction=b) < 2 * b * delta + 1e-12


def test_sweep_checks_name_key_and_value(base_config):
    cfg = resolved(base_config)["sweeps"]["tiny"]
    for bad, text in ((0.0, r"^sweep t: grid\.batch_fraction = 0\.0: is outside \(0, 1\]"),
                      (1.2, r"^sweep t: grid\.batch_fraction = 1\.2: is outside \(0, 1\]"),
                      (0.01, r"^sweep t: grid\.batch_fraction = 0\.01: gives b·n = 0\.3 < 1")):
        with pytest.raises(ConfigError, match=text):
            check_sweep("t", {**cfg, "grid": {**cfg["grid"], "batch_fraction": [bad, 1.0]}})
    # dt = 0.05 is stable for full batches at alpha = 1 but not for b = 0.2 (a mini-batch of ratio b·delta)
    with pytest.raises(ConfigError, match=r"^sweep t: dt = 0\.05: the step 0\.05 exceeds the simulation stability bound .*batch_fraction=0\.2"):
        check_sweep("t", {**cfg, "grid": {**cfg["grid"], "batch_fraction": [0.2, 1.0]}})
    check_sweep("t", {**cfg, "grid": {**cfg["grid"], "batch_fraction": [0.5, 1.0]}})


def test_schema_refuses_batch_fraction_out_of_range(base_config):
    for bad, why in ((0.0, "is less than or equal to the minimum of 0"), (1.01, "is greater than the maximum of 1")):
        base_config["sweeps"]["tiny"]["grid"]["batch_fraction"] = [bad]
        with pytest.raises(ConfigError, match=rf"^sweep tiny: grid\.batch_fraction\[0\] = {bad}: {why}"):
            resolved(base_config)


def test_default_batch_fraction_keeps_chunk_names_and_bits(base_config):
    """A sweep that states batch_fraction: [1.0] has the chunks (names, contents, bits) of one that
    does not mention it: jobs written before the axis existed are not re-run."""
    plain = resolved(base_config)["sweeps"]["tiny"]
    base_config["sweeps"]["tiny"]["grid"]["batch_fraction"] = [1.0]
    stated = resolved(base_config)["sweeps"]["tiny"]
    assert make_chunks(plain) == make_chunks(stated)
    assert make_dmft_chunks(plain) == make_dmft_chunks(stated)
    assert all("batch_fraction" not in m for c in make_chunks(stated) for m in c["members"])
    chunk = make_chunks(stated)[0]
    a, b = run_chunk(plain, chunk, progress_every=None), run_chunk(stated, chunk, progress_every=None)
    assert set(a["params"]) == set(b["params"]) and "batch_fraction" not in a["params"]
    for name in OBS:
        assert np.array_equal(a[name], b[name])


def test_batch_fraction_is_a_member_axis_of_the_chunks(base_config):
    cfg = resolved(base_config)["sweeps"]["tiny"]
    sgd = {**cfg, "dt": 0.02, "grid": {**cfg["grid"], "batch_fraction": [0.5, 1.0]}}
    check_sweep("t", sgd)
    chunks = make_chunks(sgd)
    assert {m["batch_fraction"] for c in chunks for m in c["members"]} == {0.5, 1.0}
    out = run_chunk(sgd, chunks[0], progress_every=None)
    assert set(out["params"]["batch_fraction"]) == {0.5, 1.0}
    full = [i for i in range(len(out["e_test"])) if out["params"]["batch_fraction"][i] == 1.0]
    assert full
    # the b = 1 runs are GD: bit for bit against the same chunk with every member at b = 1 (the
    # same GEMM shapes), ...
    same = {**chunks[0], "members": [{**m, "batch_fraction": 1.0} for m in chunks[0]["members"]]}
    ref_same = run_chunk(sgd, same, progress_every=None)
    for name in OBS:
        assert all(np.array_equal(out[name][i], ref_same[name][i]) for i in full), name
    # ... and to rounding against the same runs in the chunk of the full-batch sweep (another width)
    gd = {**cfg, "dt": 0.02}
    ref = run_chunk(gd, make_chunks(gd)[0], progress_every=None)
    key = lambda o, i: (int(o["params"]["seed"][i]), float(o["params"]["alpha"][i]))  # noqa: E731
    gd_rows = {key(ref, i): i for i in range(len(ref["e_test"]))}
    for name in OBS:
        for i in full:
            np.testing.assert_allclose(out[name][i], ref[name][gd_rows[key(out, i)]], **CROSS_LAYOUT, err_msg=name)


# ------------------------------------------------------------------------------------------
# theory: the N = ∞ linear recursion, the N-path solver, simulations
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta,sigma,lam", [(0.5, 0.0, 0.0), (2.0, 0.3, 0.05), (1.2, 0.1, 0.0)])
def test_linear_recursion_at_b1_is_marchenko_pastur(delta, sigma, lam):
    r = sgd_linear_exact(n_steps=150, dt=0.2, delta=delta, sigma=sigma, weight_decay=lam, second_moment=0.3)
    et, ee = linear_gd_errors(delta=delta, dt=0.2, steps=np.arange(151), m2=0.3, sigma=sigma, weight_decay=lam)
    np.testing.assert_allclose(r["e_train"][0], et, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(r["e_test"][0], ee, rtol=1e-9, atol=1e-14)
    assert np.all(r["D"] == 0)


def test_linear_recursion_first_step_closed_form():
    """theory.md §5 Remarks: C_Δ[1, 1] and E_train(1) in closed form (τ = dt for the linear model)."""
    for b, dt, delta, sig, m2 in ((0.3, 0.1, 0.7, 0.2, 0.4), (0.05, 0.02, 3.0, 0.0, 1.0), (1.0, 0.3, 0.5, 0.5, 0.2)):
        r = sgd_linear_exact(n_steps=1, dt=dt, delta=delta, batch_fraction=b, sigma=sig, second_moment=m2)
        M00 = sig**2 + m2
        cd11 = (1 - dt) ** 2 * m2 + dt**2 * M00 / (b * delta)
        etr1 = 0.5 * (sig**2 + cd11 - 2 * (dt / delta) * (sig**2 + (1 - dt) * m2) + (dt / delta) ** 2 * M00 / b)
        assert r["e_test"][0, 1] == pytest.approx(cd11 / 2, rel=1e-13)
        assert r["e_train"][0, 1] == pytest.approx(etr1, rel=1e-13)
        assert r["D"][0, 0] == pytest.approx((1 - b) / b * M00, rel=1e-13)


def test_linear_recursion_matrices_are_consistent():
    r = sgd_linear_exact(n_steps=30, dt=0.15, delta=1.5, batch_fraction=0.3, sigma=0.2, second_moment=0.5,
                         return_matrices=True)
    T = 31
    K, G, Cr = r["K"][0], r["G"][0], r["C_r"][0]
    np.testing.assert_allclose(K @ (np.eye(T) + G / 1.5), np.eye(T), atol=1e-12)
    np.testing.assert_allclose(np.diag(Cr) / 2, r["e_train"][0], rtol=1e-12)
    np.testing.assert_allclose(r["D"][0], (1 - 0.3) / 0.3 * np.diag(Cr), rtol=1e-12)


LINEAR_SGD_POINTS = [
    dict(delta=0.5, rho=1.0, sigma=0.0, weight_decay=0.0, dt=0.1, batch_fraction=0.3),
    dict(delta=2.0, rho=0.3, sigma=0.3, weight_decay=0.05, dt=0.2, batch_fraction=0.1),
    dict(delta=2.0, rho=0.3, sigma=0.3, weight_decay=0.05, dt=0.2, batch_fraction=1.0),
]


def test_dmft_at_b1_is_the_full_batch_solver_bit_for_bit(backend):
    pts = [dict(p, batch_fraction=1.0) for p in LINEAR_SGD_POINTS[1:]]
    gd = [{k: v for k, v in p.items() if k != "batch_fraction"} for p in pts]
    kw = dict(n_steps=40, n_paths=800, n_batches=4, seed=2, progress=False, backend=backend)
    for model in ("linear", "dln"):
        a, b = solve_dmft(pts, model=model, **kw), solve_dmft(gd, model=model, **kw)
        for name in ("e_train", "e_test", "e_train_se", "e_test_se"):
            assert np.array_equal(a[name], b[name]), (model, name)
    # and inside a chunk that also solves a b < 1 point: bit for bit against a solve of the same
    # shape (two points), to rounding against the point alone (one right-hand side, another GEMM width)
    mixed = solve_dmft([dict(pts[0], batch_fraction=0.5), pts[0]], model="dln", **kw)
    same_shape = solve_dmft([pts[0], pts[0]], model="dln", **kw)
    alone = solve_dmft([pts[0]], model="dln", **kw)
    for name in ("e_train", "e_test"):
        assert np.array_equal(mixed[name][1], same_shape[name][1]), name
        np.testing.assert_allclose(mixed[name][1], alone[name][0], **CROSS_LAYOUT, err_msg=name)


def test_linear_dmft_paths_match_the_exact_recursion(backend):
    """The N-path solver's SGD terms (D, the z' rows, E_train's (I − K)D(I − K)ᵀ) against the
    estimator-free recursion: within 4.5 replica standard errors (R ≈ 25 correlated times)."""
    n_steps = 120
    rec = output_steps(n_steps, 25)
    out = solve_dmft(LINEAR_SGD_POINTS, n_steps=n_steps, record_steps=rec, n_paths=8000, n_batches=8, model="linear",
                     seed=3, progress=False, backend=backend)
    for i, p in enumerate(LINEAR_SGD_POINTS):
        ex = sgd_linear_exact(n_steps=n_steps, dt=p["dt"], delta=p["delta"], batch_fraction=p["batch_fraction"],
                              sigma=p["sigma"], weight_decay=p["weight_decay"], second_moment=second_moment(GB, p["rho"]))
        for key in ("e_train", "e_test"):
            ok = ~out[key + "_below_floor"][i]
            assert ok.sum() >= rec.size // 2
            dev = np.abs(out[key][i] - ex[key][0, rec])
            assert np.all((dev < 4.5 * out[key + "_se"][i] + 1e-12)[ok]), (p, key, out[key][i], ex[key][0, rec])


def test_linear_sgd_simulation_matches_the_exact_recursion():
    """Seed-averaged d = 400 linear SGD against the N = ∞ recursion, and the paired SGD effect
    E(b) − E(1) (common random numbers): within 4.5 standard errors plus 2/d relative (finite d)."""
    d, n_steps, seeds = 400, 100, 12
    rec = np.array([5, 20, 50, 100])
    bs = [0.1, 0.3, 1.0]
    for delta, sig, lam, dt in ((2.0, 0.3, 0.05, 0.2), (0.5, 0.1, 0.0, 0.05)):
        sim = simulate_grid(model="linear", d=d, delta=delta, rho=[0.3], sigma=[sig], alpha=[1.0], weight_decay=[lam],
                            seeds=range(seeds), dt=dt, n_steps=n_steps, record_steps=rec, batch_fraction=bs)
        ex = sgd_linear_exact(n_steps=n_steps, dt=dt, delta=delta, batch_fraction=bs, sigma=sig, weight_decay=lam,
                              second_moment=second_moment(GB, 0.3))
        for key in ("e_train", "e_test"):
            s = sim[key][:, 0, 0, 0, 0]  # (seeds, b, R)
            for j in range(len(bs)):
                m, se, th = s[:, j].mean(0), s[:, j].std(0, ddof=1) / np.sqrt(seeds), ex[key][j, rec]
                assert np.all(np.abs(m - th) < 4.5 * se + 2.0 / d * th), (delta, key, bs[j], m, th, se)
            pe = s[:, 0] - s[:, 2]
            m, se, th = pe.mean(0), pe.std(0, ddof=1) / np.sqrt(seeds), ex[key][0, rec] - ex[key][2, rec]
            assert np.all(np.abs(m - th) < 4.5 * se + 2.0 / d * np.abs(th)), (delta, key, "paired", m, th, se)


def test_dln_sgd_dmft_matches_simulation_small():
    """DLN, δ = 2, b ∈ {0.3, 1}: N-path SGD DMFT vs seed-averaged d = 500 simulations, 4.5 combined
    standard errors where above the floor (a fast version of the docs/dmft.md SGD panel)."""
    delta, dt, n_steps, d, seeds = 2.0, 0.05, 200, 500, 8
    rec = output_steps(n_steps, 15)
    bs = [0.3, 1.0]
    sim = simulate_grid(model="dln", d=d, delta=delta, rho=[0.2], sigma=[0.1], alpha=[1.0], weight_decay=[0.0],
                        seeds=range(seeds), dt=dt, n_steps=n_steps, record_steps=rec, batch_fraction=bs)
    out = solve_dmft([dict(delta=delta, rho=0.2, sigma=0.1, alpha=1.0, dt=dt, batch_fraction=b) for b in bs],
                     n_steps=n_steps, record_steps=rec, n_paths=8000, n_batches=8, seed=5, progress=False)
    for j in range(len(bs)):
        for key in ("e_train", "e_test"):
            s = sim[key][:, 0, 0, 0, 0, j]
            m, se_s = s.mean(0), s.std(0, ddof=1) / np.sqrt(seeds)
            ok = ~out[key + "_below_floor"][j]
            tol = 4.5 * np.hypot(se_s, out[key + "_se"][j]) + 2.0 / d * m
            assert np.all((np.abs(m - out[key][j]) < tol)[ok]), (bs[j], key, m, out[key][j])


# ------------------------------------------------------------------------------------------
# convergence in N: the N-path bias the replica spread misses (theory.md §5 Checks 6–7)
# ------------------------------------------------------------------------------------------
def _two_n(points, n_paths, **kw):
    """The pipeline's pair of solves (n and n/2 paths per replica) and the masked result."""
    kw = dict(n_batches=8, seed=3, progress=False, **kw)
    full = solve_dmft(points, n_paths=n_paths, **kw)
    half = solve_dmft(points, n_paths=half_paths(n_paths, 8), **kw)
    return full, mask_n_bias(full, half)


def test_n_bias_mask_flags_late_sgd_e_train_at_small_b_only():
    """DLN, δ = 0.5, α = 1 (theory.md §5 Checks 6): at b = 0.1 the late E_train of the N-path
    solver stalls on a bias the replica floor does not flag; the E(N/2) − E(N) mask flags those
    times (all in the late half of the log-spaced record) and none at b = 1, where the replica
    floor already covers the end of the curve. N = 3200 paths in 8 replicas, 400 steps."""
    n_steps = 400
    rec = output_steps(n_steps, 15)
    pts = [dict(delta=0.5, rho=0.2, sigma=0.0, alpha=1.0, dt=0.05, batch_fraction=b) for b in (0.1, 1.0)]
    full, out = _two_n(pts, 3200, n_steps=n_steps, record_steps=rec)
    added = out["e_train_below_floor"] & ~full["e_train_below_floor"]
    assert np.array_equal(out["e_train_below_floor"],
                          full["e_train_below_floor"] | (np.abs(out["e_train_n_bias"]) > 0.1 * full["e_train"]))
    assert added[0].sum() >= 2 and np.all(rec[added[0]] >= 50), rec[added[0]]  # b = 0.1: late times only
    # b = 1: at most one time beyond the replica floor, and there E(N/2) − E(N) is sampling noise
    # (two-sided mask: measured k = 100, |E(N/2) − E(N)| = 0.102 E(N), within 2 replica se)
    assert added[1].sum() <= 1, rec[added[1]]
    assert np.all(np.abs(out["e_train_n_bias"][1, added[1]]) < 2 * np.hypot(full["e_train_se"][1, added[1]],
                                                                            full["e_train_se"][1, added[1]]))
    # the flagged b = 0.1 values are no longer decaying: E_train at the last recorded time is not
    # below a tenth of the first flagged one (the b = 1 curve falls by > 10x over the same times)
    j0, j1 = np.flatnonzero(added[0])[0], rec.size - 1
    assert full["e_train"][0, j1] > 0.1 * full["e_train"][0, j0]
    assert full["e_train"][1, j1] < 0.1 * full["e_train"][1, j0]
    # the early curve is untouched and the estimate is small there (|bias| < 10 % before t = 2.5)
    early = rec <= 50
    assert not out["e_train_below_floor"][:, early].any()
    assert np.all(np.abs(out["e_train_n_bias"][:, early]) < 0.1 * full["e_train"][:, early])
    # the decay rate is refitted on the new mask (its window ends before the first masked time)
    first = np.flatnonzero(out["e_train_below_floor"][0])[0]
    assert out["decay_window"][0, 1] < first


def test_masked_sgd_dmft_contains_the_exact_linear_recursion():
    """Linear model, δ = 0.5, dt = 0.02, N = 1600 (200 paths per replica: two probe blocks): at
    b = 0.1 the N-path solver's E_train contains the N = ∞ recursion within 4.5 replica se at
    every time the replica floor keeps (measured max |z| 2.15; before the per-block tangents its
    late values were 15–100× above it, |z| 8–17, docs/dmft.md "Long sweeps"); with the
    convergence-in-N mask every unmasked value (b = 0.1 and b = 1, E_train and E_test) lies within
    4.5 replica se plus its estimated bias of the exact recursion."""
    n_steps = 400
    rec = output_steps(n_steps, 15)
    bs = (0.1, 1.0)
    pts = [dict(delta=0.5, rho=0.2, sigma=0.0, dt=0.02, batch_fraction=b) for b in bs]
    full, out = _two_n(pts, 1600, n_steps=n_steps, record_steps=rec, model="linear")
    ex = sgd_linear_exact(n_steps=n_steps, dt=0.02, delta=0.5, batch_fraction=list(bs), second_moment=second_moment(GB, 0.2))
    z_replica_only = np.abs(full["e_train"][0] - ex["e_train"][0, rec]) / full["e_train_se"][0]
    assert np.all(z_replica_only[~full["e_train_below_floor"][0]] < 4.5)
    for i in range(len(bs)):
        for key in ("e_train", "e_test"):
            ok = ~out[key + "_below_floor"][i]
            assert ok.sum() >= rec.size // 2, (bs[i], key)
            dev = np.abs(out[key][i] - ex[key][i, rec])
            tol = 4.5 * out[key + "_se"][i] + np.abs(out[key + "_n_bias"][i])
            assert np.all((dev < tol)[ok]), (bs[i], key, rec[ok & (dev >= tol)])


def test_mask_n_bias_refuses_mismatched_solves():
    kw = dict(n_steps=20, n_batches=4, seed=1, progress=False)
    pts = [dict(delta=0.5, dt=0.05, batch_fraction=0.5)]
    a, b = solve_dmft(pts, n_paths=64, **kw), solve_dmft(pts, n_paths=32, **kw)
    with pytest.raises(ValueError, match="not fewer"):
        mask_n_bias(b, a)
    with pytest.raises(ValueError, match="differ in alpha"):
        mask_n_bias(a, solve_dmft([dict(pts[0], alpha=0.5)], n_paths=32, **kw))
    with pytest.raises(ValueError, match="n_bias_tol"):
        mask_n_bias(a, b, tol=0.0)
    with pytest.raises(ValueError, match="n_paths"):
        half_paths(24, 8)
    assert half_paths(6000, 8) == 3000 and half_paths(6008, 8) == 3000  # ⌊751/2⌋ = 375 per replica


def test_pipeline_dmft_checks_n_only_in_sgd_sweeps(base_config):
    """run_dmft_chunk: an SGD sweep (b < 1 on the grid) gets the N-bias observables and masks, b = 1
    points included; a full-batch sweep gets neither and exactly its single solve's values (its
    DMFT job names and params do not change); ``dmft.n_convergence`` overrides either way, and
    a sweep whose half solve would have < 2 paths a replica is refused naming the key."""
    from dln_kernels.dmft.solver import mask_n_bias as mask
    from dln_kernels.pipeline.chunks import n_convergence
    from dln_kernels.pipeline.run import run_dmft_chunk
    from dln_kernels.pipeline.timegrid import time_grid

    cfg = resolved(base_config)["sweeps"]["tiny"]
    small = {**cfg, "t_max": 2.0, "dmft": {**cfg["dmft"], "n_paths": 256, "n_batches": 4}}
    sgd = {**small, "dt": 0.02, "grid": {**small["grid"], "batch_fraction": [0.3, 1.0]}}
    assert not n_convergence(small) and n_convergence(sgd)
    assert n_convergence({**small, "dmft": {**small["dmft"], "n_convergence": True}})
    assert not n_convergence({**sgd, "dmft": {**sgd["dmft"], "n_convergence": False}})
    job = lambda sw: {k: v for k, v in sw.items() if k != "grid"}  # noqa: E731  (a job's params hold no grid)
    gd_chunk = make_dmft_chunks(small)[0]
    assert "n_convergence" not in gd_chunk and make_dmft_chunks(sgd)[0]["n_convergence"] is True
    gd = run_dmft_chunk(job(small), gd_chunk, progress=False)
    assert "e_train_n_bias" not in gd and "e_test_n_bias" not in gd
    grid = time_grid(small)
    n_steps, steps = grid.n_steps, grid.record_steps
    pts = [{k: v for k, v in p.items() if k != "depth"} for p in gd_chunk["points"]]
    kw = dict(n_steps=n_steps, dt=float(small["dt"]), record_steps=steps, n_batches=4, seed=int(small["dmft"]["seed"]),
              progress=False)
    direct = solve_dmft(pts, n_paths=256, **kw)
    for name in ("e_train", "e_test", "e_train_below_floor", "e_test_below_floor", "decay_rate"):
        assert np.array_equal(gd[name], direct[name], equal_nan=name == "decay_rate"), name
    chunk = make_dmft_chunks(sgd)[0]
    out = run_dmft_chunk(job(sgd), chunk, progress=False)
    assert {p["batch_fraction"] for p in chunk["points"]} == {0.3, 1.0}
    pts = [{k: v for k, v in p.items() if k != "depth"} for p in chunk["points"]]
    kw["dt"] = 0.02
    grid = time_grid(sgd)
    n_steps, kw["record_steps"] = grid.n_steps, grid.record_steps
    kw["n_steps"] = n_steps
    ref = mask(solve_dmft(pts, n_paths=256, **kw), solve_dmft(pts, n_paths=128, **kw))
    for name in ("e_train", "e_train_n_bias", "e_test_n_bias", "e_train_below_floor", "e_test_below_floor"):
        assert np.array_equal(out[name], ref[name]), name
    with pytest.raises(ConfigError, match=r"dmft\.n_paths"):
        check_sweep("t", {**sgd, "dmft": {**sgd["dmft"], "n_paths": 16, "n_batches": 8}})


# ------------------------------------------------------------------------------------------
# phenomenon: noise vs solution (effective initialisation)
# ------------------------------------------------------------------------------------------
def test_effective_alpha_inverts_the_reference_curve():
    from dln_kernels.measure.phenomena import effective_alpha

    alphas = np.array([0.01, 0.1, 1.0, 10.0])
    ref = np.log(alphas) + 10.0  # increasing in α, linear in ln α: interpolation is exact
    e = np.log(np.array([0.05, 0.5, 3.0])) + 10.0
    np.testing.assert_allclose(effective_alpha(alphas, ref, e), [0.05, 0.5, 3.0], rtol=1e-12)
    assert np.isnan(effective_alpha(alphas, ref, [ref[-1] + 1.0])[0])  # outside the range
    assert np.all(np.isnan(effective_alpha(alphas, np.array([1.0, 2.0, 1.5, 3.0]), [1.7])))  # not monotone


def test_sgd_noise_measure_recovers_a_known_effective_alpha():
    """Synthetic Datasets where SGD at (α, b) ends exactly like GD at α·c_b, c_b = b^0.5."""
    import xarray as xr

    from dln_kernels.measure.phenomena import sgd_noise_measure

    alphas, bs, seeds, t = [0.01, 0.03, 0.1, 0.3, 1.0], [0.05, 0.2, 1.0], [0, 1, 2], np.array([0.0, 1.0, 2.0])
    final = lambda a: 0.01 + 0.02 * np.log(a / 0.001)  # noqa: E731  (increasing, linear in ln α)
    vals = np.array([[final(a * b**0.5) for b in bs] for a in alphas])  # (α, b)
    curve = vals[:, :, None] * np.array([3.0, 2.0, 1.0])  # ends at the final value
    sims = xr.Dataset({"e_test": (("alpha", "delta", "batch_fraction", "seed", "time"),
                                  np.broadcast_to(curve[:, None, :, None, :], (5, 1, 3, 3, 3)).copy())},
                      coords={"alpha": alphas, "delta": [0.8], "batch_fraction": bs, "seed": seeds, "time": t})
    dmft = xr.Dataset({"e_test": (("alpha", "delta", "batch_fraction", "time"), curve[:, None]),
                       "e_test_se": (("alpha", "delta", "batch_fraction", "time"), 0 * curve[:, None])},
                      coords={"alpha": alphas, "delta": [0.8], "batch_fraction": bs, "time": t})
    tab = sgd_noise_measure(sims, dmft)["table"]
    for b in (0.05, 0.2):
        rows = tab[(tab.batch_fraction == b) & (tab.alpha * b**0.5 >= 0.01)]
        np.testing.assert_allclose(rows.alpha_eff_ratio_sim, b**0.5, rtol=1e-9)
        np.testing.assert_allclose(rows.alpha_eff_ratio_dmft, b**0.5, rtol=1e-9)
    assert np.allclose(tab[tab.batch_fraction == 1.0].alpha_eff_ratio_sim, 1.0)
    # a masked DMFT value (replica floor or not converged in N) gives no α_eff and is no reference
    below = np.zeros(curve[:, None].shape, bool)
    below[4, 0, 0, -1] = True  # α = 1, b = 0.05
    below[0, 0, 2, -1] = True  # α = 0.01, b = 1: the reference curve loses its first point
    dmft["e_test_below_floor"] = (("alpha", "delta", "batch_fraction", "time"), below)
    tab2 = sgd_noise_measure(sims, dmft)["table"]
    masked = (tab2.batch_fraction == 0.05) & (tab2.alpha == 1.0)
    assert tab2[masked].dmft_below_floor.all() and np.isnan(tab2[masked].alpha_eff_dmft).all()
    rows = tab2[(tab2.batch_fraction == 0.2) & (tab2.alpha * 0.2**0.5 >= 0.03)]  # inside the shortened reference
    np.testing.assert_allclose(rows.alpha_eff_ratio_dmft, 0.2**0.5, rtol=1e-9)
    np.testing.assert_array_equal(tab2.alpha_eff_sim, tab.alpha_eff_sim)  # simulations unaffected


def test_effective_scale_is_the_product_of_step_factors():
    """uv GD, λ = 0: u² − v² = α²·Π_k (1 − dt² g_k²) (exact algebra of the (a, b) update): the
    final scale of a run equals the product over its steps, recomputed from the gradients of a
    plain NumPy reference; and gradient flow's limit (dt → 0) keeps it at α²."""
    from dln_kernels.measure.phenomena import effective_scale_summary

    d, delta, alpha, dt, T = 60, 0.5, 0.7, 0.1, 40
    inst = draw_instance(d, 0)
    X, beta_star = inst.design(delta), inst.teacher(GB, 0.3)
    y = X @ beta_star
    res = simulate_grid(model="dln", d=d, delta=delta, rho=[0.3], sigma=[0.0], alpha=[alpha], weight_decay=[0.0],
                        seeds=[0], dt=dt, n_steps=T, record_steps=[0, T], save_scale=True)
    u, v, prod = np.full(d, alpha), np.zeros(d), np.full(d, alpha**2)
    for _ in range(T):
        g = X.T @ (y - X @ (u * v)) / (X.shape[0] / d)
        prod *= 1 - dt**2 * g**2
        u, v = u + dt * v * g, v + dt * u * g
    np.testing.assert_allclose(res["scale_final"][0, 0, 0, 0, 0], prod, rtol=1e-10)
    s = effective_scale_summary(res["scale_final"], alpha)
    assert s["alpha_eff"] < alpha and s["gain_mean"] > 0
    small = simulate_grid(model="dln", d=d, delta=delta, rho=[0.3], sigma=[0.0], alpha=[alpha], weight_decay=[0.0],
                          seeds=[0], dt=dt / 10, n_steps=10 * T, record_steps=[0, 10 * T], save_scale=True)
    # gain = Σ_k dt² g_k² ≈ dt·∫ g² dt: first order in dt (∫ g² dt itself moves by O(dt): 10–20 % here)
    assert effective_scale_summary(small["scale_final"], alpha)["gain_mean"] == pytest.approx(s["gain_mean"] / 10, rel=0.25)


def test_dmft_effective_alpha_matches_the_simulations():
    """The DMFT's α_eff (geometric mean of the paths' final u² − v²) against the simulations' at a
    large step (δ = 2, α = 0.3, dt = 0.2, 60 steps; α_eff/α ≈ 0.96): |α_eff,DMFT − α_eff,sim| <
    0.1·(α − α_eff,sim), i.e. the shrink agrees to 10 % (measured: 5 %, seed and path noise)."""
    from dln_kernels.measure.phenomena import effective_scale_summary

    alpha, dt, n_steps = 0.3, 0.2, 60
    sim = simulate_grid(model="dln", d=1000, delta=2.0, rho=[0.2], sigma=[0.0], alpha=[alpha], weight_decay=[0.0],
                        seeds=range(3), dt=dt, n_steps=n_steps, record_steps=[0, n_steps], save_scale=True)
    a_sim = effective_scale_summary(sim["scale_final"], alpha)["alpha_eff"]
    out = solve_dmft([dict(delta=2.0, rho=0.2, alpha=alpha, dt=dt)], n_steps=n_steps, n_paths=4000, n_batches=4,
                     seed=1, progress=False)
    assert a_sim < 0.99 * alpha
    assert abs(out["alpha_eff"][0] - a_sim) < 0.1 * (alpha - a_sim), (out["alpha_eff"][0], a_sim)
