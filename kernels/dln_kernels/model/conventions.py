"""Initialisation conventions of the literature, converted to the project's parameters.

The same gradient descent appears with different normalisations of the network and of α. Each
convention below is the project's ``uv`` network (β = u v, u₀ = α, v₀ = 0) up to a rescaling of
α, of the step (time) and of the weight decay, exactly and step for step (theory.md §1, §6):

| convention | network and init | as ``uv``: α, dt (time), λ |
|---|---|---|
| ``uv`` (this project) | β = u v, u₀ = α, v₀ = 0 | α, dt, λ |
| ``pm`` (Woodworth et al. 2020, depth 2) | β = u² − v², u₀ = v₀ = α | 2α, 2·dt, λ/2 |
| ``paper`` (the source paper) | β = ½(u² − v²), u₀ = v₀ = α | √2·α, dt, λ |
| ``even`` (Even et al. 2023) | β = u v, u₀ = √2·α, v₀ = 0 | √2·α, dt, λ |

Derivation: with a = u + v, b = u − v the ``uv`` step is a ← a(1 − dtλ + dt g),
b ← b(1 − dtλ − dt g), β = (a² − b²)/4. ``pm``: u ← u(1 − dtλ + 2dt g) is that step for a = 2u at
step 2dt and decay λ/2; ``paper``: u ← u(1 − dtλ + dt g) is it for a = √2·u at the same dt and λ.
For depth L ≥ 3 only ``pm`` exists (``network: pm``, α as written); it has no ``uv`` form.
"""

from __future__ import annotations

import math

# convention -> (factor on α, factor on dt, factor on λ) that turn it into ``uv``
TO_UV = {
    "uv": (1.0, 1.0, 1.0),
    "pm": (2.0, 2.0, 0.5),
    "paper": (math.sqrt(2.0), 1.0, 1.0),
    "even": (math.sqrt(2.0), 1.0, 1.0),
}


def convert(alpha: float, dt: float = 1.0, weight_decay: float = 0.0, *, source: str, target: str = "uv") -> dict:
    """The (α, dt, λ) in convention ``target`` that give the same β at every step as (α, dt, λ)
    in convention ``source`` (names: ``TO_UV``). ``dt`` may also be read as a time: a time t in
    ``source`` is the time ``dt``-factor·t in ``target``. Returns {"alpha", "dt", "weight_decay"}.

    Example: the source paper's α = 0.1 is ``convert(0.1, source="paper")["alpha"]`` = 0.1414 in
    a ``uv`` sweep. Raises ValueError for an unknown convention.
    """
    for name in (source, target):
        if name not in TO_UV:
            raise ValueError(f"convention: unknown value {name!r}; expected one of {tuple(TO_UV)}")
    fs, ft = TO_UV[source], TO_UV[target]
    return {
        "alpha": alpha * fs[0] / ft[0],
        "dt": dt * fs[1] / ft[1],
        "weight_decay": weight_decay * fs[2] / ft[2],
    }
