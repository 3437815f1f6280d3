"""Numerical options of the DMFT solver (:func:`dln_kernels.dmft.solver.solve_dmft`).

What a solve computes is fixed by its points, steps, prior, model and network; how it computes it
(paths, replicas, random streams, array backend and dtype, memory budget, tolerances, logging) is
this object. ``solve_dmft`` takes it as ``options=`` or, as before, each option as a keyword
(``n_paths=...``); an option given both ways is a ValueError naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class DMFTOptions:
    """Numerical options of a DMFT solve (docs/dmft.md).

    n_paths : Monte-Carlo paths per point, split into ``n_batches`` independent replicas of
        n_paths // n_batches paths (the remainder is dropped).
    seed : base seed; replica b draws its noise z and probes ε from the stream (seed, b, 1), the
        teacher β* of every point from (seed, b) (common random numbers across points, so a
        point's result does not depend on its batch-mates), the SGD noise rows z' of a point with
        batch_fraction < 1 from (seed, b, 2).
    backend, dtype : array backend ("numpy" | "cupy" | "array_api_strict" | "auto") and float
        type ("float64" | "float32"; the arithmetic and the returned observables are of it).
    n_batches : independent replicas (≥ 2: the standard error is their spread / √n_batches).
    variance_reduction : orthogonal noise/probe rows and stratified teachers (solver module doc).
    return_matrices : also return replica-averaged T×T matrices C_delta, C_r, G, K per point.
    memory_budget_bytes : bytes the solver may hold (``solver.memory_bytes``); points are
        processed in chunks that fit, a single point over budget raises ``MemoryError``; ``None``
        disables the check.
    floor_factor : E_train / E_test values below ``floor_factor`` × their noise floor are flagged.
    pivot_tol : relative Gram–Schmidt remainder below which a row of M counts as dependent
        (None: 1e-12 for float64, 1e-5 for float32).
    progress : log progress (logger ``dln_kernels.dmft.solver``) every 10 % of the steps.

    Raises ValueError for n_batches < 2 or fewer than 2 paths per replica.
    """

    n_paths: int = 20000
    seed: int = 0
    backend: str = "numpy"
    dtype: str = "float64"
    n_batches: int = 8
    variance_reduction: bool = True
    return_matrices: bool = False
    memory_budget_bytes: float | None = 4e9
    floor_factor: float = 3.0
    pivot_tol: float | None = None
    progress: bool = True

    def __post_init__(self):
        if self.n_batches < 2:
            raise ValueError("n_batches: need at least 2 independent replicas for a standard error")
        if self.paths_per_replica < 2:
            raise ValueError(f"n_paths/n_batches = {self.paths_per_replica}: too few paths per replica")

    @property
    def paths_per_replica(self) -> int:
        """n = n_paths // n_batches."""
        return self.n_paths // self.n_batches


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(DMFTOptions))


def merge_options(options: DMFTOptions | None, keywords: dict) -> DMFTOptions:
    """The options of a call: ``options`` (default ``DMFTOptions()``) or the option ``keywords``.

    Raises TypeError for a keyword that is no option (as for an unknown keyword argument),
    TypeError if ``options`` is not a DMFTOptions, and ValueError naming the option(s) given both
    as a keyword and through ``options`` (an options object fixes every option; use
    ``dataclasses.replace(options, name=...)`` to change one)."""
    unknown = sorted(set(keywords) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"solve_dmft() got unexpected keyword argument(s) {unknown}; options are {list(OPTION_NAMES)}")
    if options is None:
        return DMFTOptions(**keywords)
    if not isinstance(options, DMFTOptions):
        raise TypeError(f"options: need a DMFTOptions, got {type(options).__name__}")
    if keywords:
        both = sorted(keywords)
        raise ValueError(
            f"{', '.join(both)}: given both as keyword(s) and in options=; give each option once "
            f"(e.g. options=dataclasses.replace(options, {both[0]}=...))"
        )
    return options
