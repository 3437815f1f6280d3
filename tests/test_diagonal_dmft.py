"""Diagonal designs and their coordinate-wise DMFT (docs/dmft.md "Diagonal designs").

(a) designs: gaussian_powerlaw ``rotation: none`` is diagonal with the haar design's spectrum
(mean 1), two_level has its two scales in the right counts; the haar default keeps its resolved
form (chunk names); refusals name the key (designs, schema, parse-time checks, the solver).
(b) the prediction risk e_pred: recorder formula (simulator, also on array_api_strict), and
E_pred = E_test exactly for the isotropic design in the simulator and the DMFT.
(c) the solver: s ≡ 1 through the diagonal code path gives the isotropic solve bit for bit
(uv GD with matrices, pm depth 3 SGD, linear; NumPy and array_api_strict); a spectrum passed as
an array gives the design's solve bit for bit.
(d) a two_level design's DMFT against simulations (d = 400, 12–16 seeds), E_train, E_test, E_pred:
uv GD at δ ∈ {0.5, 2}; pm depth 3, the linear model and uv SGD with weight decay.
The ≥ 24-seed, d = 2000 panel is ``benchmarks/diagonal_panel.py`` (docs/dmft.md table).
"""

import numpy as np
import pytest
from conftest import resolved as validated

from dln_kernels.backend import get_namespace
from dln_kernels.dmft.solver import design_scales, solve_dmft
from dln_kernels.model import designs as D
from dln_kernels.model.priors import DEFAULT_PRIOR
from dln_kernels.model.problem import draw_instance
from dln_kernels.model.schedule import stability_bound
from dln_kernels.pipeline.config import ConfigError, check_sweep
from dln_kernels.sim.recorders import Step, _e_pred, _e_test
from dln_kernels.sim.simulate import simulate_grid, simulate_members

PL_NONE = {"kind": "gaussian_powerlaw", "rotation": "none", "exponent": 1.0}
TWO = {"kind": "two_level", "fraction": 0.2, "ratio": 10.0}


# ---- (a) designs ------------------------------------------------------------------------------
def test_rotation_none_is_diagonal_with_the_haar_spectrum():
    d = 30
    diag, haar = D.resolve_design(PL_NONE, d), D.resolve_design({**PL_NONE, "rotation": "haar"}, d)
    s = D.diagonal_scales(diag)
    lam, _ = D.powerlaw_factor(haar)
    assert np.array_equal(s, lam)  # the same spectrum, bit for bit
    assert s.mean() == pytest.approx(1.0, abs=1e-14) and s[0] / s[9] == pytest.approx(10.0)
    assert D.spectrum_ratio(diag) == D.spectrum_ratio(haar) == s.max()
    assert np.array_equal(D.design_spectrum(diag), np.sort(s)) and np.array_equal(D.design_spectrum(haar), np.sort(lam))
    assert D.is_diagonal(diag) and not D.is_diagonal(haar) and D.is_diagonal(D.resolve_design(TWO, d))
    assert diag["name"] == "gaussian_powerlaw_diagonal" and haar["name"] == "gaussian_powerlaw"
    # rows x = z ⊙ √s/√d: the sample covariance of 30 000 rows is diag(s)/d to sampling accuracy
    x = draw_instance(d, 2, 0, diag).design(1000.0)
    n = x.shape[0]
    c = x.T @ x / n * d
    sd = np.sqrt(np.outer(s, s) / n)  # std of an off-diagonal entry; the diagonal's is √2 s/√n
    off = ~np.eye(d, dtype=bool)
    assert np.max(np.abs(c[off]) / sd[off]) < 5.5
    assert np.max(np.abs(np.diag(c) - s) / (np.sqrt(2.0 / n) * s)) < 4.5
    assert np.array_equal(x, draw_instance(d, 2, 0, diag).design(1000.0))  # deterministic per seed
    # covariance of the design as the prediction risk reads it
    assert np.array_equal(D.row_covariance(diag), s) and D.row_covariance({"kind": "gaussian", "d": d}) is None
    assert np.allclose(np.linalg.eigvalsh(D.row_covariance(haar)), np.sort(lam))


def test_unit_scales_give_the_gaussian_rows_bit_for_bit():
    flat = D.resolve_design({**PL_NONE, "exponent": 0.0}, 40)
    assert np.array_equal(D.diagonal_scales(flat), np.ones(40))
    plain, diag = draw_instance(40, 3, 7), draw_instance(40, 3, 7, flat)
    assert np.array_equal(plain.design(2.0), diag.design(2.0)) and np.array_equal(plain.noise(2.0), diag.noise(2.0))


def test_two_level_scales():
    des = D.resolve_design({**TWO, "fraction": 0.25}, 40)
    s = D.diagonal_scales(des)
    assert np.count_nonzero(s == s.max()) == 10 and np.count_nonzero(s == s.min()) == 30
    assert s.max() / s.min() == pytest.approx(10.0, rel=1e-14) and s.mean() == pytest.approx(1.0, abs=1e-14)
    assert np.array_equal(D.diagonal_scales(D.resolve_design({**TWO, "ratio": 1.0}, 40)), np.ones(40))
    p = D.provenance(des)
    assert len(p["sha256"]) == 64 and p["rows"] is None and "two levels" in p["source"]


def test_haar_default_keeps_its_resolved_form():
    """``rotation: haar`` is implicit: the resolved design (so chunk contents, names, provenance)
    is the one written before the key existed."""
    old = {"kind": "gaussian_powerlaw", "d": 30, "exponent": 1.0, "seed": 0, "name": "gaussian_powerlaw"}
    assert D.resolve_design({"kind": "gaussian_powerlaw"}, 30) == old
    assert D.resolve_design({"kind": "gaussian_powerlaw", "rotation": "haar"}, 30) == old


@pytest.mark.parametrize("spec, match", [
    ({**PL_NONE, "rotation": "diag"}, r"where\.rotation: unknown value 'diag'"),
    ({**TWO, "fraction": 1.0}, r"where\.fraction: 1\.0 is not a number in \(0, 1\)"),
    ({**TWO, "fraction": 0.001}, r"where\.fraction: 0\.001 puts round\(fraction\*d\) = 0"),
    ({**TWO, "ratio": 0}, r"where\.ratio: 0 is not a finite number > 0"),
    ({**TWO, "rotation": "none"}, r"where\.rotation: not a key of design kind 'two_level'"),
    ({"kind": "gaussian", "rotation": "none"}, r"where\.rotation: not a key of design kind 'gaussian'"),
])
def test_design_refusals_name_the_key(spec, match):
    with pytest.raises(D.DesignError, match=match):
        D.resolve_design(spec, 100, "where")


@pytest.mark.parametrize("design, where", [
    ({"kind": "two_level", "fraction": 1.5}, "design.fraction"),
    ({"kind": "two_level", "ratio": -2.0}, "design.ratio"),
    ({"kind": "gaussian_powerlaw", "rotation": "diag"}, "design.rotation"),
])
def test_schema_refusals_name_the_key(base_config, design, where):
    base_config["sweeps"]["default"]["design"] = design
    with pytest.raises(ConfigError) as exc:
        validated(base_config)
    assert str(exc.value).splitlines()[0].startswith(f"sweep default: {where} = "), str(exc.value)


def test_parse_time_check_names_the_key(base_config):
    cfg = validated(base_config)
    sweep = cfg["sweeps"]["default"]
    sweep["design"] = {"kind": "two_level", "fraction": 1e-6}  # the schema allows it; round(f d) = 0 does not
    with pytest.raises(ConfigError, match=r"design\.fraction"):
        check_sweep("sweeps.default", sweep)


def test_solver_refuses_non_diagonal_designs_naming_the_key():
    with pytest.raises(ValueError, match=r"design\.rotation: the DMFT closes coordinate-wise only"):
        design_scales({"kind": "gaussian_powerlaw", "d": 20})
    with pytest.raises(ValueError, match=r"design\.kind: the DMFT closes coordinate-wise only"):
        design_scales({"kind": "digits"})
    with pytest.raises(ValueError, match=r"design\.d: None is not an integer"):
        design_scales(TWO)
    with pytest.raises(ValueError, match=r"design: scales must have mean 1"):
        design_scales(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"design: scales must be a non-empty 1-D array of positive"):
        design_scales(np.array([2.0, 0.0]))
    assert design_scales(None) is None and design_scales({"kind": "gaussian", "d": 5}) is None


# ---- (b) the prediction risk --------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_e_pred_recorder_formula(backend):
    xp = get_namespace(backend)
    rng = np.random.default_rng(0)
    G, d, b = 2, 7, 3
    beta, bstar = rng.standard_normal((G, d, b)), rng.standard_normal((G, d, b))
    s = rng.uniform(0.5, 2.0, d)
    m = rng.standard_normal((d, d))
    cov = m @ m.T / d
    dev = lambda a: xp.asarray(a)  # noqa: E731
    step = dict(r=None, beta=dev(beta), beta_star=dev(bstar), n=5, d=d)
    iso = np.asarray(_e_pred(xp, Step(**step)))
    assert np.array_equal(iso, np.asarray(_e_test(xp, Step(**step))))  # isotropic: the E_test formula, same bits
    diag = np.asarray(_e_pred(xp, Step(**step, row_cov=dev(np.broadcast_to(s[None, :, None], (G, d, 1)).copy()))))
    full = np.asarray(_e_pred(xp, Step(**step, row_cov=dev(np.broadcast_to(cov, (G, d, d)).copy()))))
    diff = beta - bstar
    assert np.allclose(diag, np.einsum("i,gib->gb", s, diff * diff) / (2 * d), rtol=1e-13)
    assert np.allclose(full, np.einsum("gib,ij,gjb->gb", diff, cov, diff) / (2 * d), rtol=1e-12)


def test_isotropic_e_pred_is_e_test():
    sim = simulate_grid(model="dln", d=60, delta=0.8, rho=0.3, sigma=[0.0, 0.1], alpha=[0.3, 1.0], weight_decay=0.0,
                        seeds=[0, 1], dt=0.05, n_steps=20, record_steps=[0, 10, 20], observe=("e_pred",))
    assert np.array_equal(sim["e_pred"], sim["e_test"])
    assert "e_pred" not in simulate_grid(model="dln", d=60, delta=0.8, rho=0.3, sigma=0.0, alpha=1.0, weight_decay=0.0,
                                         seeds=[0], dt=0.05, n_steps=2, record_steps=[0, 2])  # opt-in only
    res = solve_dmft({"alpha": [0.3, 1.0], "delta": 0.8, "sigma": [0.0, 0.1], "dt": 0.05}, n_steps=20, n_paths=160,
                     n_batches=4, progress=False)
    assert np.array_equal(res["e_pred"], res["e_test"]) and np.array_equal(res["e_pred_batches"], res["e_test_batches"])


# ---- (c) the solver: s ≡ 1 is the isotropic solve ----------------------------------------------
CASES = [
    ({"alpha": [0.1, 1.0], "delta": [0.5, 2.0], "rho": 0.3, "sigma": [0.0, 0.1], "weight_decay": [0.0, 0.02],
      "dt": 0.05}, dict(return_matrices=True, record_steps=[0, 4, 20])),
    ({"alpha": [0.5, 0.8], "delta": 2.0, "rho": 0.3, "sigma": 0.1, "batch_fraction": [0.4, 1.0], "dt": 0.02},
     dict(network="pm", depth=3)),
    ({"alpha": 1.0, "delta": [0.5, 3.0], "rho": 0.5, "sigma": 0.1, "batch_fraction": [1.0, 0.3], "dt": 0.1},
     dict(model="linear", dtype="float32")),
]


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_unit_scales_are_the_isotropic_solve_bit_for_bit(case, backend):
    """Every returned array equal (np.array_equal): with s ≡ 1 the diagonal path multiplies by
    √s = 1.0 exactly, and its extra streams (the path scales) draw nothing the others read."""
    pts, kw = CASES[case]
    kw = dict(n_steps=20, n_paths=320, n_batches=4, seed=5, progress=False, backend=backend, **kw)
    iso = solve_dmft(pts, **kw)
    for design in ({"kind": "two_level", "d": 64, "ratio": 1.0}, {**PL_NONE, "exponent": 0.0, "d": 500}, np.ones(3)):
        diag = solve_dmft(pts, design=design, **kw)
        assert list(diag) == list(iso)
        bad = [k for k in iso if not np.array_equal(iso[k], diag[k], equal_nan=True)]
        assert not bad, (design, bad)


def test_spectrum_array_is_the_design():
    """A design and its spectrum as an array (any order) give the same solve: the paths take the
    scales of the sorted spectrum (stratified), then a random pairing."""
    des = D.resolve_design(TWO, 50)
    kw = dict(n_steps=15, dt=0.05, n_paths=400, n_batches=4, seed=2, progress=False)
    a = solve_dmft({"alpha": 0.5, "delta": 0.7, "sigma": 0.1}, design=des, **kw)
    b = solve_dmft({"alpha": 0.5, "delta": 0.7, "sigma": 0.1}, design=D.design_spectrum(des)[::-1], **kw)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert not np.array_equal(a["e_pred"], a["e_test"])  # the design is not isotropic


# ---- (d) against simulations ------------------------------------------------------------------
def _sim_two_level(des, delta, members, seeds, dt, n_steps, record):
    xp = get_namespace("numpy")
    s = D.diagonal_scales(des)
    insts = [draw_instance(des["d"], sd, 0, des) for sd in seeds]
    res = simulate_members(xp, insts, [members] * len(insts), model="dln", delta=delta, prior=DEFAULT_PRIOR,
                           dt_schedule=np.full(n_steps, dt), record_steps=record, record_beta=True)
    bstar = np.stack([np.stack([i.teacher(DEFAULT_PRIOR, r) for r in members["rho"]]) for i in insts])
    diff = res["beta"] - bstar[:, :, None, :]
    return {"e_train": res["e_train"], "e_test": res["e_test"],
            "e_pred": np.sum(s * diff * diff, axis=-1) / (2 * des["d"])}


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_two_level_dmft_matches_simulation(delta):
    """two_level (20 % of the coordinates at 10× the scale of the rest), d = 400, 12 seeds,
    α = 0.5, σ ∈ {0, 0.1}, 100 steps at 0.8 × bound/s_max (t = 3.4 at δ = 0.5, 6.6 at δ = 2);
    DMFT N = 4000 (8 replicas).

    Tolerance: |sim − DMFT| < 4.5 √(se_seed² + se_DMFT²) at every recorded time above the DMFT's
    floor (mean ≥ 3 replica std), as the isotropic panel, with no finite-d allowance: the seed
    se of 12 seeds at d = 400 is 1–9 % of the value (measured: E_train 1–9 %, E_test 4–7 %,
    E_pred 3–9 %), while the O(1/d) finite-size shift is ≈ 0.3 %, so the seed spread is the whole
    error budget. Measured: max |z| 2.03 (δ = 0.5) and 2.60 (δ = 2) over 3 observables × 2 points
    × 11 times; the same comparison against the isotropic DMFT gives max |z| 22.7 and 17.7, so the
    test fails if the solver ignores the design."""
    d, seeds, n_steps = 400, range(12), 100
    des = D.resolve_design(TWO, d)
    s_max = float(np.max(D.diagonal_scales(des)))
    dt = 0.8 * stability_bound("dln", 0.5, delta, 0.0, DEFAULT_PRIOR, n_draws=0.2 * d * 12) / s_max
    record = np.unique(np.concatenate([[0], np.geomspace(1, n_steps, 10).round().astype(int)]))
    members = {"rho": np.full(2, 0.2), "sigma": np.array([0.0, 0.1]), "alpha": np.full(2, 0.5),
               "weight_decay": np.zeros(2)}
    sim = _sim_two_level(des, delta, members, list(seeds), dt, n_steps, record)
    pts = {"alpha": 0.5, "delta": delta, "rho": 0.2, "sigma": [0.0, 0.1], "dt": dt}
    kw = dict(n_steps=n_steps, record_steps=record, n_paths=4000, seed=1, progress=False)
    res = solve_dmft(pts, design=des, **kw)
    iso = solve_dmft(pts, **kw)
    worst, worst_iso = 0.0, 0.0
    for key in ("e_train", "e_test", "e_pred"):
        eb = res[f"{key}_batches"]
        th, th_sd = eb.mean(1), eb.std(1, ddof=1)
        th_se = th_sd / np.sqrt(eb.shape[1])
        m = sim[key].mean(0)
        se = sim[key].std(0, ddof=1) / np.sqrt(sim[key].shape[0])
        ok = th >= 3.0 * th_sd  # above the DMFT floor
        assert ok.sum() >= 0.8 * ok.size
        z = np.abs(m - th) / np.hypot(se, th_se)
        assert np.all(z[ok] < 4.5), (key, z.max())
        worst = max(worst, float(z[ok].max()))
        ib = iso[f"{key}_batches"]
        zi = np.abs(m - ib.mean(1)) / np.hypot(se, ib.std(1, ddof=1) / np.sqrt(ib.shape[1]))
        worst_iso = max(worst_iso, float(zi.max()))
    print(f"max |z| diagonal DMFT {worst:.2f}, isotropic DMFT {worst_iso:.2f}")
    assert worst_iso > 4.5  # the isotropic theory does not describe this design


@pytest.mark.parametrize("model, network, depth, delta, b", [
    ("dln", "pm", 3, 2.0, 1.0), ("linear", "uv", 2, 0.5, 1.0), ("dln", "uv", 2, 2.0, 0.3)])
def test_other_networks_match_simulation(model, network, depth, delta, b):
    """The same two_level design for the depth-3 pm network, the linear model and uv SGD (b = 0.3),
    with weight decay λ ∈ {0, 0.02} and σ ∈ {0, 0.1}: d = 400, 16 seeds, 100 steps at 0.6 × the
    bound/s_max, DMFT N = 8000; tolerance as above (4.5 combined se at unflagged times).
    Measured max |z| over E_train, E_test, E_pred: 0.59 (pm 3), 1.14 (linear), 0.64 (uv SGD)."""
    des = D.resolve_design(TWO, 400)
    s = D.diagonal_scales(des)
    dt = 0.6 * stability_bound(model, 0.5, delta, 0.0, DEFAULT_PRIOR, network, depth, batch_fraction=b,
                               n_draws=0.2 * 400 * 16) / float(s.max())
    n_steps = 100
    rec = np.unique(np.concatenate([[0], np.geomspace(1, n_steps, 10).round().astype(int)]))
    mem = {"rho": np.full(2, 0.2), "sigma": np.array([0.0, 0.1]), "alpha": np.full(2, 0.5),
           "weight_decay": np.array([0.0, 0.02]), "batch_fraction": np.full(2, b)}
    insts = [draw_instance(400, sd, 0, des) for sd in range(16)]
    net = dict(network=network, depth=depth) if model == "dln" else {}
    res = simulate_members(get_namespace("numpy"), insts, [mem] * 16, model=model, delta=delta, prior=DEFAULT_PRIOR,
                           dt_schedule=np.full(n_steps, dt), record_steps=rec, record_beta=True, **net)
    bstar = np.stack([np.stack([i.teacher(DEFAULT_PRIOR, r) for r in mem["rho"]]) for i in insts])
    diff = res["beta"] - bstar[:, :, None, :]
    sim = {"e_train": res["e_train"], "e_test": res["e_test"], "e_pred": np.sum(s * diff * diff, -1) / 800}
    pts = {"alpha": 0.5, "delta": delta, "rho": 0.2, "sigma": [0.0, 0.1], "weight_decay": [0.0, 0.02],
           "batch_fraction": b, "dt": dt}
    th = solve_dmft(pts, n_steps=n_steps, record_steps=rec, design=des, n_paths=8000, seed=2, progress=False,
                    model=model, **net)
    for key, v in sim.items():
        eb = th[f"{key}_batches"]
        m, sd = eb.mean(1), eb.std(1, ddof=1)
        z = np.abs(v.mean(0) - m) / np.hypot(v.std(0, ddof=1) / np.sqrt(v.shape[0]), sd / np.sqrt(eb.shape[1]))
        ok = m >= 3.0 * sd
        assert ok.sum() >= 0.8 * ok.size and np.all(z[ok] < 4.5), (key, z[ok].max())


def test_simulator_e_pred_weights_by_the_design_scales():
    """The simulator's e_pred on a diagonal design is Σ_i s_i (β − β*)_i²/(2d), from the instance's
    own scales (designs.row_covariance), not the isotropic E_test."""
    from dln_kernels.model.designs import diagonal_scales, resolve_design
    from dln_kernels.model.problem import draw_instance
    from dln_kernels.sim.simulate import simulate_members

    design = resolve_design({"kind": "two_level", "fraction": 0.25, "ratio": 9.0}, 40)
    inst = [draw_instance(40, s, 0, design) for s in (0, 1)]
    runs = {"rho": np.array([0.3]), "sigma": np.array([0.0]), "alpha": np.array([0.5]), "weight_decay": np.array([0.0])}
    from dln_kernels.backend import get_namespace

    res = simulate_members(get_namespace("numpy"), inst, [runs] * 2,
                           model="dln", delta=1.0, prior={"kind": "gauss_bernoulli"}, dt_schedule=np.full(10, 0.01),
                           record_steps=np.array([0, 10]), save_beta=True, observe=("e_pred",))
    s = diagonal_scales(design)
    bstar = np.stack([i.teacher({"kind": "gauss_bernoulli"}, 0.3) for i in inst])  # (G, d)
    diff = res["beta_final"][:, 0, :] - bstar
    assert np.allclose(res["e_pred"][:, 0, -1], (s * diff**2).sum(axis=1) / 80, rtol=1e-12)
    assert not np.allclose(res["e_pred"][:, 0, -1], res["e_test"][:, 0, -1], rtol=1e-3)
