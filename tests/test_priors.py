"""The teacher prior kinds (model/priors.py): one object per kind, built by prior_of from a spec."""

import numpy as np
import pytest
from scipy.special import ndtr

from dln_kernels.model.priors import (
    DEFAULT_PRIOR,
    PRIOR_KINDS,
    Discrete,
    GaussBernoulli,
    prior_of,
    second_moment,
    validate_prior,
)

SPECS = [DEFAULT_PRIOR,
         {"kind": "discrete", "values": [-2, -1, 1, 2], "probs": [0.1, 0.4, 0.4, 0.1]},
         {"kind": "discrete", "values": [-1.5, 0.5, 3.0], "probs": [0.3, 0.0, 0.7]}]
IDS = ["gauss_bernoulli", "discrete", "discrete_zero_atom"]


def test_registry_and_default():
    assert PRIOR_KINDS == {"gauss_bernoulli": GaussBernoulli, "discrete": Discrete}
    assert prior_of(DEFAULT_PRIOR) == GaussBernoulli()
    p = prior_of(SPECS[1])
    assert prior_of(p) is p and prior_of(p.spec()) == p


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("rho", [0.0, 0.3, 1.0, np.array([0.1, 0.5])])
def test_components_weights_sum_to_one_and_give_the_second_moment(spec, rho):
    comps = prior_of(spec).components(rho)
    assert np.allclose(sum(w for w, _, _ in comps), 1.0, rtol=0, atol=1e-12)
    assert comps[0][1:] == (0.0, 0.0)  # the atom at 0 first
    m2 = sum(w * (m * m + v) for w, m, v in comps)
    assert np.allclose(m2, second_moment(spec, rho), rtol=1e-14, atol=0)


def test_zero_probability_atoms_are_left_out():
    assert [m for _, m, _ in prior_of(SPECS[2]).components(0.5)] == [0.0, -1.5, 3.0]


def test_quantile_of_abs():
    gb = GaussBernoulli()
    for q in (0.0, 0.25, 0.5, 0.9):  # P(|Z| <= x) = 2Φ(x) − 1
        assert 2 * ndtr(gb.quantile_of_abs(q)) - 1 == pytest.approx(q, abs=1e-12)
    assert gb.quantile_of_abs(0.5) == pytest.approx(0.6744897501960817, rel=1e-12)
    d = prior_of(SPECS[1])  # |B| = 1 w.p. 0.8, 2 w.p. 0.2
    assert [d.quantile_of_abs(q) for q in (0.0, 0.3, 0.8, 0.81, 1.0)] == [1.0, 1.0, 1.0, 2.0, 2.0]
    z = Discrete([0.0, -3.0, 0.5], [0.5, 0.25, 0.25])  # given B != 0: |B| = 0.5 or 3, each w.p. 1/2
    assert [z.quantile_of_abs(q) for q in (0.5, 0.51)] == [0.5, 3.0]
    assert prior_of(SPECS[2]).quantile_of_abs(0.2) == 1.5  # the 0.5 of probability 0 is not a value
    with pytest.raises(ValueError, match=r"q: 1\.5 is outside"):
        gb.quantile_of_abs(1.5)


@pytest.mark.parametrize("spec, match", [
    ({"kind": "laplace"}, r"prior\.kind: unknown value 'laplace'; expected one of \('gauss_bernoulli', 'discrete'\)"),
    ({"values": [1.0]}, r"prior\.kind: unknown value None"),
    ({"kind": "discrete", "values": [1.0, 2.0]}, r"prior\.values/prior\.probs: need two non-empty lists"),
    ({"kind": "discrete", "values": [], "probs": []}, r"prior\.values/prior\.probs"),
    ({"kind": "discrete", "values": [1, 2], "probs": [0.5, 0.6]}, r"prior\.probs: must be non-negative and sum to 1"),
    ({"kind": "discrete", "values": [1, 2], "probs": [1.5, -0.5]}, r"prior\.probs: must be non-negative"),
    ("gauss_bernoulli", r"prior: expected a dict"),
])
def test_prior_of_refusals_name_the_key(spec, match):
    with pytest.raises(ValueError, match=match):
        prior_of(spec)
    with pytest.raises(ValueError, match=match):
        validate_prior(spec)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("rho, n", [(0.2, 1000), (0.37, 1001), (0.5, 7)])
def test_stratified_counts_are_exact(spec, rho, n):
    prior = prior_of(spec)
    b = prior.stratified(rho, n, np.random.default_rng(0))
    assert b.shape == (n,)
    weights = [w for w, _, _ in prior.components(rho)]
    assert abs(np.count_nonzero(b) - n * (1 - weights[0])) < 1  # largest remainders: off by < 1
    if isinstance(prior, Discrete):
        for w, m, _ in prior.components(rho)[1:]:
            assert abs(np.sum(b == m) - n * w) < 1
        assert set(np.unique(b)) <= {0.0, *prior.values}


def test_stratified_gaussian_values_fill_the_quantile_strata():
    b = GaussBernoulli().stratified(0.5, 2000, np.random.default_rng(1))
    u = np.sort(ndtr(b[b != 0]))  # one value in each of the 1000 strata [k/m, (k+1)/m)
    assert np.array_equal(np.floor(u * u.size), np.arange(u.size))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_iid_and_noise_draws_follow_the_prior(spec):
    prior, rho, n = prior_of(spec), 0.4, 200_000
    for b in (prior.iid(rho, n, np.random.default_rng(2)),
              prior.teacher_from_noise(rho, {"support": np.random.default_rng(3).random(n),
                                             "normal": np.random.default_rng(4).standard_normal(n),
                                             "category": np.random.default_rng(5).random(n)})):
        assert np.mean(b != 0) == pytest.approx(rho, abs=5e-3)
        assert np.mean(b**2) == pytest.approx(prior.second_moment(rho), rel=3e-2)
        assert np.max(np.abs(b)) >= prior.max_magnitude()
