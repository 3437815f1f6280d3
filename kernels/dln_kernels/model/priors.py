"""Teacher priors P* for the coordinates of β*.

Every prior is sampled from the same underlying uniforms and normals (``prior_noise``), so
teachers for different ρ (or different priors) built from one seed are coupled: common random
numbers make a curve over ρ smooth instead of blurred by independent draws.

Prior specifications are plain dicts (as in the config):

- ``{"kind": "gauss_bernoulli"}``: 0 w.p. 1 − ρ, N(0, 1) w.p. ρ.
- ``{"kind": "discrete", "values": [...], "probs": [...]}``: 0 w.p. 1 − ρ, otherwise one of
  ``values`` with probabilities ``probs`` (include both signs in ``values`` for symmetric priors).
"""

from __future__ import annotations

import numpy as np

PRIOR_KINDS = ("gauss_bernoulli", "discrete")


def validate_prior(prior: dict) -> None:
    kind = prior.get("kind")
    if kind not in PRIOR_KINDS:
        raise ValueError(f"prior.kind: unknown value {kind!r}; expected one of {PRIOR_KINDS}")
    if kind == "discrete":
        values = np.asarray(prior.get("values", []), dtype=float)
        probs = np.asarray(prior.get("probs", []), dtype=float)
        if values.size == 0 or values.shape != probs.shape:
            raise ValueError(
                f"prior.values/prior.probs: need two non-empty lists of equal length, got "
                f"{prior.get('values')!r} and {prior.get('probs')!r}"
            )
        if np.any(probs < 0) or abs(probs.sum() - 1.0) > 1e-9:
            raise ValueError(f"prior.probs: must be non-negative and sum to 1, got {prior.get('probs')!r}")


def prior_noise(rng: np.random.Generator, size) -> dict:
    """The random numbers every prior is built from (drawn in a fixed order)."""
    return {"support": rng.random(size), "normal": rng.standard_normal(size), "category": rng.random(size)}


def teacher_from_noise(prior: dict, rho: float, noise: dict) -> np.ndarray:
    """β* coordinates for prior ``prior`` and sparsity ``rho`` from shared noise."""
    on = noise["support"] < rho
    if prior["kind"] == "gauss_bernoulli":
        values = noise["normal"]
    else:
        vals = np.asarray(prior["values"], dtype=float)
        cdf = np.cumsum(np.asarray(prior["probs"], dtype=float))
        cdf[-1] = 1.0
        values = vals[np.searchsorted(cdf, noise["category"], side="right").clip(max=len(vals) - 1)]
    return np.where(on, values, 0.0)


def second_moment(prior: dict, rho):
    """E[B²] under the prior; ``rho`` may be a scalar (float back) or an array (array back)."""
    if prior["kind"] == "gauss_bernoulli":
        unit = 1.0
    else:
        unit = float(np.sum(np.asarray(prior["probs"], dtype=float) * np.asarray(prior["values"], dtype=float) ** 2))
    m2 = np.asarray(rho, dtype=float) * unit
    return float(m2) if m2.ndim == 0 else m2


def max_magnitude(prior: dict) -> float:
    """A typical largest |B| among the nonzeros: 1 for the Gaussian part (its scale), max|value| else."""
    if prior["kind"] == "gauss_bernoulli":
        return 1.0
    return float(np.max(np.abs(prior["values"])))


def sample_teacher(prior: dict, rho: float, size, rng: np.random.Generator) -> np.ndarray:
    """Independent draw of β* (convenience for theory Monte Carlo)."""
    return teacher_from_noise(prior, rho, prior_noise(rng, size))
