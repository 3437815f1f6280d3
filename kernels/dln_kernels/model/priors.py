"""Teacher priors P* for the coordinates of β*.

Every prior is sampled from the same underlying uniforms and normals (``prior_noise``), so
teachers for different ρ (or different priors) built from one seed are coupled: common random
numbers make a curve over ρ smooth instead of blurred by independent draws.

Prior specifications are plain dicts (as in the config); :func:`prior_of` turns one into its
object (one class per kind, registered in ``PRIOR_KINDS``), which carries every kind-dependent
computation (draws, moments, mixture components, quantiles):

- ``{"kind": "gauss_bernoulli"}``: 0 w.p. 1 − ρ, N(0, 1) w.p. ρ.
- ``{"kind": "discrete", "values": [...], "probs": [...]}``: 0 w.p. 1 − ρ, otherwise one of
  ``values`` with probabilities ``probs`` (include both signs in ``values`` for symmetric priors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

DEFAULT_PRIOR = {"kind": "gauss_bernoulli"}  # the spec of the default prior, wherever one is needed


def _largest_remainder_counts(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Integer counts (len(weights),) summing to n: floor(weights·n), then +1 for the largest
    remainders, ties broken at random (one ``rng.random(len(weights))`` draw, only if needed)."""
    raw = weights * n
    counts = np.floor(raw).astype(int)
    short = n - counts.sum()
    if short > 0:  # largest remainders, ties broken at random
        order = np.lexsort((rng.random(len(raw)), -(raw - counts)))
        counts[order[:short]] += 1
    return counts


class Prior:
    """Common part of the prior kinds: B = 0 w.p. 1 − ρ, else a draw of the kind's slab.

    A kind implements ``kind``, ``from_spec``, ``spec``, ``values_from_noise``,
    ``unit_second_moment``, ``max_magnitude``, ``bound``, ``quantile_of_abs``, ``_slab_components``,
    ``_stratum_weights``, ``_stratum_values`` and ``_iid_values``."""

    kind = ""

    def second_moment(self, rho):
        """E[B²] = ρ·E[B² | slab]; ``rho`` a scalar (float back) or an array (array, same shape)."""
        m2 = np.asarray(rho, dtype=float) * self.unit_second_moment
        return float(m2) if m2.ndim == 0 else m2

    def teacher_from_noise(self, rho: float, noise: dict) -> np.ndarray:
        """β* from shared noise (:func:`prior_noise`): the slab value where ``support < rho``, else 0."""
        on = noise["support"] < rho
        return np.where(on, self.values_from_noise(noise), 0.0)

    def components(self, rho) -> list:
        """B as a mixture: list of (weight, mean, variance), the atom at 0 (weight 1 − ρ) first.

        Weights are float arrays shaped like ``rho`` (0-d for a scalar); atoms of probability 0
        are left out. The weights sum to 1."""
        rho = np.asarray(rho, dtype=float)
        return [(1.0 - rho, 0.0, 0.0)] + self._slab_components(rho)

    def stratified(self, rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws of β* (n,) with exact component counts (largest remainders of the weights·n) and,
        for continuous parts, values on quantile strata; returned in a random order. Uses ``rng``
        in this order: ties of the remainders, the strata, the permutation."""
        counts = _largest_remainder_counts(self._stratum_weights(rho), n, rng)
        vals = [np.zeros(counts[0])] + self._stratum_values(counts[1:], rng)
        out = np.concatenate(vals)
        return out[rng.permutation(n)]

    def largest_of(self, n_nonzero: float) -> float:
        """The largest |B| to expect among ``n_nonzero`` nonzero draws: the 1 − 1/n quantile of
        |B| given B ≠ 0 (the expected count above it is one), at least :meth:`max_magnitude`'s
        typical scale; a bounded prior's exact maximum (:meth:`bound`) where it has one. Used by
        the tail-aware step check (docs/dmft.md "Step sizes and the teacher's tail")."""
        if self.bound() is not None:
            return self.bound()
        return max(self.max_magnitude(), self.quantile_of_abs(1.0 - 1.0 / max(float(n_nonzero), 1.0)))

    def iid(self, rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
        """n independent draws of β* (n,): the support from ``rng.random(n)``, then the slab values."""
        on = rng.random(n) < rho
        return np.where(on, self._iid_values(n, rng), 0.0)


@dataclass(frozen=True)
class GaussBernoulli(Prior):
    """0 w.p. 1 − ρ, N(0, 1) w.p. ρ. Spec ``{"kind": "gauss_bernoulli"}``."""

    kind = "gauss_bernoulli"

    @classmethod
    def from_spec(cls, spec: dict) -> "GaussBernoulli":
        return cls()

    def spec(self) -> dict:
        return {"kind": self.kind}

    def values_from_noise(self, noise: dict) -> np.ndarray:
        """The slab values (shape of the noise): the shared normals themselves."""
        return noise["normal"]

    @property
    def unit_second_moment(self) -> float:
        return 1.0

    def max_magnitude(self) -> float:
        """A typical largest |B| among the nonzeros: 1, the Gaussian's scale."""
        return 1.0

    def bound(self) -> None:
        """The largest |B| the prior can draw: none (the Gaussian is unbounded)."""
        return None

    def quantile_of_abs(self, q: float) -> float:
        """The q-quantile of |B| given B ≠ 0 (|N(0, 1)|): ndtri((1 + q)/2). ValueError unless 0 ≤ q ≤ 1."""
        return float(ndtri((1.0 + _check_q(q)) / 2.0))

    def _slab_components(self, rho: np.ndarray) -> list:
        return [(rho, 0.0, 1.0)]

    def _stratum_weights(self, rho: float) -> np.ndarray:
        return np.array([1.0 - rho, rho])

    def _stratum_values(self, counts: np.ndarray, rng: np.random.Generator) -> list:
        m = counts[0]
        return [ndtri((np.arange(m) + rng.random(m)) / max(m, 1))]

    def _iid_values(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(n)


@dataclass(frozen=True)
class Discrete(Prior):
    """0 w.p. 1 − ρ, otherwise ``values[k]`` w.p. ``probs[k]`` (include both signs for a symmetric
    prior). Spec ``{"kind": "discrete", "values": [...], "probs": [...]}``; stored as float tuples.

    Raises ValueError (message naming ``prior.values/prior.probs`` or ``prior.probs``) unless the
    two lists are non-empty, of equal length, and ``probs`` is non-negative and sums to 1 (1e-9)."""

    values: tuple
    probs: tuple
    kind = "discrete"

    def __post_init__(self):
        values = np.asarray([] if self.values is None else self.values, dtype=float)
        probs = np.asarray([] if self.probs is None else self.probs, dtype=float)
        if values.size == 0 or values.shape != probs.shape:
            raise ValueError(
                f"prior.values/prior.probs: need two non-empty lists of equal length, got "
                f"{self.values!r} and {self.probs!r}"
            )
        if np.any(probs < 0) or abs(probs.sum() - 1.0) > 1e-9:
            raise ValueError(f"prior.probs: must be non-negative and sum to 1, got {self.probs!r}")
        object.__setattr__(self, "values", tuple(float(v) for v in values))
        object.__setattr__(self, "probs", tuple(float(p) for p in probs))

    @classmethod
    def from_spec(cls, spec: dict) -> "Discrete":
        return cls(spec.get("values"), spec.get("probs"))

    def spec(self) -> dict:
        return {"kind": self.kind, "values": list(self.values), "probs": list(self.probs)}

    def values_from_noise(self, noise: dict) -> np.ndarray:
        """The slab values (shape of the noise): the value whose cumulative-probability bin holds
        the shared uniform ``noise["category"]``."""
        vals = np.asarray(self.values, dtype=float)
        cdf = np.cumsum(np.asarray(self.probs, dtype=float))
        cdf[-1] = 1.0
        return vals[np.searchsorted(cdf, noise["category"], side="right").clip(max=len(vals) - 1)]

    @property
    def unit_second_moment(self) -> float:
        return float(np.sum(np.asarray(self.probs, dtype=float) * np.asarray(self.values, dtype=float) ** 2))

    def max_magnitude(self) -> float:
        """A typical largest |B| among the nonzeros: max |value|."""
        return float(np.max(np.abs(self.values)))

    def bound(self) -> float:
        """The largest |B| the prior can draw: the largest |value| of positive probability."""
        keep = [abs(v) for v, p in zip(self.values, self.probs) if p > 0]
        return float(max(keep)) if keep else 0.0

    def quantile_of_abs(self, q: float) -> float:
        """The q-quantile of |B| given B ≠ 0: the smallest |value| whose cumulative probability
        (over the nonzero values of positive probability, renormalised) reaches q (to 1e-12);
        0.0 if no nonzero value has positive probability. ValueError unless 0 ≤ q ≤ 1."""
        q = _check_q(q)
        vals, probs = np.abs(np.asarray(self.values)), np.asarray(self.probs)
        keep = (probs > 0) & (vals > 0)
        if not keep.any():
            return 0.0
        order = np.argsort(vals[keep], kind="stable")
        mags, cdf = vals[keep][order], np.cumsum(probs[keep][order]) / probs[keep].sum()
        return float(mags[min(int(np.searchsorted(cdf, q - 1e-12, side="left")), mags.size - 1)])

    def _slab_components(self, rho: np.ndarray) -> list:
        return [(rho * float(p), float(v), 0.0) for v, p in zip(self.values, self.probs) if p > 0]

    def _stratum_weights(self, rho: float) -> np.ndarray:
        return np.concatenate([[1.0 - rho], rho * np.asarray(self.probs, dtype=float)])

    def _stratum_values(self, counts: np.ndarray, rng: np.random.Generator) -> list:
        return [np.full(c, float(v)) for c, v in zip(counts, self.values)]

    def _iid_values(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(np.asarray(self.values, float), size=n, p=np.asarray(self.probs, float))


PRIOR_KINDS = {cls.kind: cls for cls in (GaussBernoulli, Discrete)}  # a new kind: one class, one entry here


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q: {q!r} is outside [0, 1]")
    return q


def prior_of(spec) -> Prior:
    """The prior object of a spec dict (see the module docstring); a :class:`Prior` comes back as is.

    Raises ValueError naming the key: ``prior.kind`` for an unknown kind (or a spec that is not a
    dict), ``prior.values/prior.probs`` or ``prior.probs`` for a bad discrete prior."""
    if isinstance(spec, Prior):
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"prior: expected a dict with a 'kind' key, got {spec!r}")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in PRIOR_KINDS:
        raise ValueError(f"prior.kind: unknown value {kind!r}; expected one of {tuple(PRIOR_KINDS)}")
    return PRIOR_KINDS[kind].from_spec(spec)


def validate_prior(prior) -> None:
    """Raise ValueError naming the key if ``prior`` (a spec dict) is not a valid prior (:func:`prior_of`)."""
    prior_of(prior)


def prior_noise(rng: np.random.Generator, size) -> dict:
    """The random numbers every prior is built from (drawn in a fixed order)."""
    return {"support": rng.random(size), "normal": rng.standard_normal(size), "category": rng.random(size)}


def teacher_from_noise(prior, rho: float, noise: dict) -> np.ndarray:
    """β* coordinates (shape of the noise) for prior ``prior`` (spec or object) and sparsity ``rho``
    from shared noise. ValueError for an invalid prior."""
    return prior_of(prior).teacher_from_noise(rho, noise)


def second_moment(prior, rho):
    """E[B²] under the prior (spec or object); ``rho`` may be a scalar (float back) or an array (array back)."""
    return prior_of(prior).second_moment(rho)


def max_magnitude(prior) -> float:
    """A typical largest |B| among the nonzeros: 1 for the Gaussian part (its scale), max|value| else."""
    return prior_of(prior).max_magnitude()


def sample_teacher(prior, rho: float, size, rng: np.random.Generator) -> np.ndarray:
    """Independent draw of β* (convenience for theory Monte Carlo)."""
    return teacher_from_noise(prior, rho, prior_noise(rng, size))
