"""Recorders of the simulator: one function per registered observable, from the state at a step.

The registry (``dln_kernels.registry.OBSERVABLES``) says which observables a model records
(producers ``sim:dln``, ``sim:linear``); this table says how. ``gd_stack`` allocates and records
exactly what :func:`recorders_for` returns, so an observable registered for the simulator without
a recorder here is an error at import (and at first use, for one registered later), never an
uninitialised buffer in a file. Observables with ``per_time=False`` are measured once per run
from the final state by the pipeline (``opt_in`` ones: ``effective_scale_runs``), not here.

Every recorder takes the array namespace and a :class:`Step` and returns a (G, b) array of the run
dtype (array API only: the tests run it on ``array_api_strict``). Formulas: theory.md §1
(E_train = ‖y − Xβ‖²/(2n), E_test = ‖β − β*‖²/(2d)), the prediction risk of docs/dmft.md
"Diagonal designs" (E_pred = (β − β*)ᵀ Cov(x) (β − β*)/2: ‖√s ⊙ (β − β*)‖²/(2d) for a diagonal
design with scales s, the E_test formula itself for the isotropic design) and the network's
gradient-flow invariant (``dln_state``: ``conservation_drift``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dln_kernels.registry import OBSERVABLES


@dataclass(frozen=True)
class Step:
    """The state of G×b runs at one recorded step. Shapes: ``r`` residual y − Xβ (G, n, b);
    ``beta``, ``beta_star`` (G, d, b); ``n``, ``d`` ints; ``net`` the network state object
    (``dln_state.network_state``; None for the linear model) with its coordinates ``ua``, ``ub``
    (G, d, b) and ``alpha`` (G, 1, b). ``row_cov``: d × the covariance of a design row, for the
    prediction risk: None (the isotropic design, identity), the scales s of a diagonal design as a
    (G, d, 1) array, or a (G, d, d) matrix (``designs.row_covariance``), in the run dtype."""

    r: object
    beta: object
    beta_star: object
    n: int
    d: int
    net: object = None
    ua: object = None
    ub: object = None
    alpha: object = None
    row_cov: object = None


def _e_train(xp, s: Step):
    return xp.sum(s.r * s.r, axis=1) / (2 * s.n)


def _e_test(xp, s: Step):
    diff = s.beta - s.beta_star
    return xp.sum(diff * diff, axis=1) / (2 * s.d)


def _e_pred(xp, s: Step):
    """(β − β*)ᵀ (d·Cov(x)) (β − β*)/(2d), (G, b). Without ``row_cov`` (isotropic design) exactly
    the E_test formula; a diagonal design (G, d, 1): Σ_i s_i (β − β*)_i²/(2d); full (G, d, d)."""
    diff = s.beta - s.beta_star
    if s.row_cov is None:
        return xp.sum(diff * diff, axis=1) / (2 * s.d)
    if s.row_cov.shape[-1] == 1:
        return xp.sum(s.row_cov * (diff * diff), axis=1) / (2 * s.d)
    return xp.sum(diff * xp.matmul(s.row_cov, diff), axis=1) / (2 * s.d)


def _l1_norm(xp, s: Step):
    return xp.sum(xp.abs(s.beta), axis=1) / s.d


def _conservation_drift(xp, s: Step):
    return xp.mean(s.net.conservation_drift(s.ua, s.ub, s.alpha), axis=1)


# observable -> recorder, per producer (the models of the simulator)
RECORDERS = {
    "sim:dln": {"e_train": _e_train, "e_test": _e_test, "l1_norm": _l1_norm,
                "conservation_drift": _conservation_drift, "e_pred": _e_pred},
    "sim:linear": {"e_train": _e_train, "e_test": _e_test, "l1_norm": _l1_norm, "e_pred": _e_pred},
}


class MissingRecorderError(LookupError):
    """An observable is registered for a producer that has no recorder for it."""


def recorders_for(model: str, opt_in=()) -> dict:
    """{name: recorder} of the per-step observables model ``model`` ("dln" | "linear") records,
    in registry order: the registry's, and of its opt-in ones those named in ``opt_in``. Raises MissingRecorderError naming the observable if the registry lists
    one that has no recorder here, and ValueError for an unknown model."""
    producer = f"sim:{model}"
    if producer not in RECORDERS:
        raise ValueError(f"model: unknown value {model!r}; expected one of {[p[4:] for p in RECORDERS]}")
    table = RECORDERS[producer]
    names = [o.name for o in OBSERVABLES.values()
             if producer in o.producers and o.per_time and (o.opt_in is None or o.name in opt_in)]
    missing = [n for n in names if n not in table]
    if missing:
        raise MissingRecorderError(
            f"observable(s) {missing} are registered for {producer!r} (registry.OBSERVABLES) but have no "
            f"recorder in dln_kernels.sim.recorders.RECORDERS[{producer!r}]: add one (docs/extending.md)"
        )
    return {n: table[n] for n in names}


for _model in ("dln", "linear"):  # a registered observable without a recorder fails at import
    recorders_for(_model)
