"""Designs beyond i.i.d. Gaussian (dln_kernels.model.designs): the variance convention, whitening,
determinism per seed, rows without replacement, refusals naming the key, and that the default
Gaussian design is today's instance bit for bit."""

import json

import numpy as np
import pytest

from dln_kernels.model import designs as D
from dln_kernels.model.problem import draw_instance

pytest.importorskip("sklearn")

PATCHES = {"kind": "image_patches", "patch": 6, "stride": 8}  # d = 108, a small pool (fast)


def resolved(spec, d=100):
    return D.resolve_design(spec, d)


def test_gaussian_design_is_todays_instance():
    plain, g = draw_instance(50, 3, 7), draw_instance(50, 3, 7, resolved({"kind": "gaussian"}, 50))
    assert np.array_equal(plain.design(2.0), g.design(2.0))
    assert np.array_equal(plain.noise(2.0), g.noise(2.0))
    assert np.array_equal(plain.teacher({"kind": "gauss_bernoulli"}, 0.3), g.teacher({"kind": "gauss_bernoulli"}, 0.3))


@pytest.mark.parametrize("whiten", ["none", "standardize", "zca"])
def test_variance_convention_on_the_pool(whiten):
    """Every preprocessing gives centred features with mean squared entry exactly 1/d."""
    des = resolved({**PATCHES, "whiten": whiten})
    x = D.pool(des)
    assert x.shape[1] == des["d"] == 108
    assert np.allclose(x.mean(0), 0.0, atol=1e-12)
    assert np.mean(x * x) == pytest.approx(1.0 / des["d"], rel=1e-12)
    if whiten == "standardize":  # every feature, not only on average
        assert np.allclose(x.var(0), 1.0 / des["d"], rtol=1e-10)


def _cov_error_ratio(des, n, seed):
    """||C_n − I/d||_F² of the n rows of one seed, over its sampling expectation for rows drawn
    without replacement from a pool with covariance I/d: (E|x|⁴ − 1/d)/n · (N − n)/(N − 1)
    (Σ_ij Var(x_i x_j) = E|x|⁴ − ||C||_F²; finite-population correction)."""
    pool = D.pool(des)
    N, d = pool.shape
    q = (pool * pool).sum(1)
    expected = (np.mean(q * q) - 1.0 / d) / n * (N - n) / (N - 1)
    xs = draw_instance(d, seed, 0, des).design(n / d)
    err = xs.T @ xs / n - np.eye(d) / d
    return float((err * err).sum() / expected)


def test_zca_identity_covariance():
    """ZCA: the pool's covariance is I/d (to the eigenvalue floor 1e-10), and the n rows of a
    seed have the covariance I/d to sampling accuracy: the squared error is its sampling
    expectation (ratio 0.94–1.14 measured over 4 seeds for patches, 0.78–1.21 for digits).
    Whitened patches are heavy-tailed, so the expectation uses the pool's own fourth moment,
    not the Gaussian one. Without whitening the ratio is orders of magnitude larger (a bias)."""
    for spec in (PATCHES, {"kind": "digits"}):
        des = resolved({**spec, "whiten": "zca"})
        x = D.pool(des)
        cov = x.T @ x / x.shape[0] * des["d"]
        assert np.abs(cov - np.eye(des["d"])).max() < 1e-8
    patches = resolved({"kind": "image_patches", "patch": 6, "stride": 4, "whiten": "zca"})
    digits = resolved({"kind": "digits", "whiten": "zca"})
    assert 0.7 < _cov_error_ratio(patches, 20 * patches["d"], 0) < 1.4
    assert 0.5 < _cov_error_ratio(digits, 10 * digits["d"], 1) < 1.8
    unwhitened = resolved({"kind": "image_patches", "patch": 6, "stride": 4, "whiten": "standardize"})
    assert _cov_error_ratio(unwhitened, 20 * patches["d"], 0) > 100


def test_standardize_and_none_keep_the_spectrum():
    """Standardized natural-image patches are far from isotropic (the mean-brightness mode):
    the top covariance eigenvalue is tens of times the mean; ZCA flattens it to 1."""
    assert D.spectrum_ratio(resolved({**PATCHES, "whiten": "standardize"})) > 20
    assert D.spectrum_ratio(resolved({**PATCHES, "whiten": "zca"})) == pytest.approx(1.0, abs=1e-8)


def test_rows_per_seed_deterministic_nested_without_replacement():
    des = resolved({"kind": "digits"})
    a, b = draw_instance(61, 2, 5, des), draw_instance(61, 2, 5, des)
    big = a.design(20.0)
    assert np.array_equal(big, b.design(20.0))  # same seed: same bits
    assert np.array_equal(draw_instance(61, 2, 5, des).design(5.0), big[: 5 * 61])  # nested along δ
    # without replacement: the n rows are pool rows, as many distinct ones as a draw of n
    # distinct indices gives (the pool holds a few duplicate digit images)
    pool = D.pool(des)
    rows = {r.tobytes() for r in big}
    assert rows <= {r.tobytes() for r in pool}
    perm = draw_instance(61, 2, 5, des).rows._perm_rng.permutation(len(pool))[: len(big)]
    assert len(set(perm)) == len(big) and np.array_equal(pool[perm], big)
    other = draw_instance(61, 3, 5, des).design(20.0)
    assert not np.array_equal(other, big)  # another seed, another draw


def test_powerlaw_spectrum_and_determinism():
    des = resolved({"kind": "gaussian_powerlaw", "d": 40, "exponent": 1.0})
    lam, factor = D.powerlaw_factor(des)
    assert lam.mean() == pytest.approx(1.0)
    assert lam[0] / lam[9] == pytest.approx(10.0)
    cov = factor.T @ factor
    assert np.allclose(np.sort(np.linalg.eigvalsh(cov * 40)), np.sort(lam))
    x = draw_instance(40, 1, 0, des).design(500.0)
    assert np.mean(x * x) == pytest.approx(1 / 40, rel=0.05)
    assert np.array_equal(x, draw_instance(40, 1, 0, des).design(500.0))


def test_provenance_has_source_version_checksum():
    des = resolved({"kind": "digits"})
    p = D.provenance(des)
    assert p["package"] == "scikit-learn" and p["package_version"] != "unknown"
    assert len(p["sha256"]) == 64 and p["rows"] == 1797 and p["d"] == 61
    assert p["sha256"] == D.provenance(resolved({"kind": "digits"}))["sha256"]
    assert p["sha256"] != D.provenance(resolved({"kind": "digits", "whiten": "zca"}))["sha256"]
    json.dumps(p)


@pytest.mark.parametrize("spec, match", [
    ({"kind": "mnist"}, r"where\.kind: unknown design kind 'mnist'"),
    ({"kind": "image_patches", "patch": 500}, r"where\.patch: 500 is larger than image china\.jpg \(427 x 640"),
    ({"kind": "image_patches", "images": ["cat.jpg"]}, r"where\.images: unknown image 'cat\.jpg'"),
    ({"kind": "digits", "d": 64}, r"where\.d: 64 disagrees .* d = 61"),
    ({"kind": "gaussian", "whiten": "zca"}, r"where\.whiten: not a key of design kind 'gaussian'"),
    ({"kind": "digits", "whiten": "pca"}, r"where\.whiten: unknown value 'pca'"),
    ({"kind": "digits", "name": "a/b"}, r"where\.name"),
])
def test_refusals_name_the_key(spec, match):
    with pytest.raises(D.DesignError, match=match):
        D.resolve_design(spec, 100, "where")


def test_too_many_rows_refused_with_numbers():
    des = resolved({"kind": "digits"})
    D.check_rows(des, 1797)
    with pytest.raises(D.DesignError, match=r"has 1797 rows, fewer than the n=1830 rows .*delta=30"):
        D.check_rows(des, 1830, delta=30)
    with pytest.raises(D.DesignError, match="1797 rows"):
        draw_instance(61, 0, 0, des).design(30.0)


def test_design_chunks_run_and_aggregate_with_a_design_dim(tmp_path):
    """A sweep over designs end to end without Snakemake: chunks per design, run, written with
    their provenance, aggregated on a ``design`` dim; a Gaussian design at the sweep's d gives
    the default design's runs bit for bit."""
    import copy

    from conftest import SCHEMA

    from dln_kernels.pipeline.io import aggregate_chunks, write_chunk
    from dln_kernels.pipeline.provenance import provenance
    from dln_kernels.pipeline.chunks import make_chunks
    from dln_kernels.pipeline.config import validate_config
    from dln_kernels.pipeline.run import run_chunk

    base = {"grid": {"alpha": [0.1, 1.0], "delta": [0.5, 2.0]}, "d": 40, "seeds": 2, "dt": 0.05,
            "t_max": 1.0, "output": {"n_times": 5}}
    designs = [{"kind": "gaussian", "name": "g40"}, {"kind": "digits", "whiten": "zca"},
               {"kind": "gaussian_powerlaw", "d": 30}]
    cfg = {"sweeps": {"plain": copy.deepcopy(base), "des": {**copy.deepcopy(base), "design": designs}}}
    validate_config(cfg, SCHEMA)
    plain, sweep = cfg["sweeps"]["plain"], cfg["sweeps"]["des"]
    chunks = make_chunks(sweep)
    assert len(chunks) == 3 * len(make_chunks(plain))
    paths = []
    for c in chunks:
        res = run_chunk(sweep, c, progress_every=None)
        assert res["e_train"].shape == (len(c["seeds"]) * len(c["members"]), 5)
        paths.append(tmp_path / f"{c['name']}.h5")
        attrs = provenance({"sweep": sweep, "chunk": c}, backend="numpy", dtype="float64", seeds=c["seeds"], base_seed=0)
        attrs["design"] = json.dumps(D.provenance(c["design"]))
        write_chunk(paths[-1], res, attrs)
        if c["design"]["name"] == "g40":
            twin = next(p for p in make_chunks(plain) if p["delta"] == c["delta"] and p["seeds"] == c["seeds"])
            ref = run_chunk(plain, twin, progress_every=None)
            assert np.array_equal(ref["e_test"], res["e_test"]) and np.array_equal(ref["e_train"], res["e_train"])
    ds = aggregate_chunks(paths, sweep, {})
    assert list(ds["design"].values) == ["g40", "digits_zca", "gaussian_powerlaw"]
    assert ds.e_train.dims[-3:] == ("design", "seed", "time")
    assert np.isfinite(ds.e_train.values).all()
    # each design's d went into its runs: E_test(0) = ‖β*‖²/(2d) with β* of dimension d
    for name, d in (("g40", 40), ("digits_zca", 61), ("gaussian_powerlaw", 30)):
        bstar = draw_instance(d, 1, 0).teacher({"kind": "gauss_bernoulli"}, 0.2)
        assert np.allclose(ds.e_test.sel(design=name, seed=1).isel(time=0).values, bstar @ bstar / (2 * d), rtol=1e-12)
