"""Recorders of the DMFT: one function per registered observable, from a solve's replica results.

The registry (``dln_kernels.registry.OBSERVABLES``) says which observables the DMFT produces
(producer ``dmft``); this table says how. :func:`dln_kernels.dmft.solver.solve_dmft` returns
exactly what :func:`recorders_for` lists (plus its coordinates, point parameters and replica
values), so an observable registered for the DMFT without a recorder here is an error at import
(and at the first solve, for one registered later), never a silent skip; a recorder here for an
observable the registry does not list for the DMFT is an error too. Observables added by an
optional step of the pipeline (``Observable.only_with``) have their recorders under that step in
:data:`STEP_RECORDERS` (``"n_convergence"``: :func:`dln_kernels.dmft.solver.mask_n_bias`).

A solve's recorder takes a :class:`Solve` and returns a NumPy array over the P points (in the run
dtype, but ``alpha_eff``: float64, cast by the pipeline); a step's recorder takes the full solve's
and the half solve's outputs and the bias scale n'/(n − n'). Formulas: the replica statistics of
docs/dmft.md ("Standard errors", "Noise floor"), the late-time fit of :func:`decay_rate`, the
spectral edge of :mod:`dln_kernels.dmft.spectral_rate` (theory.md §2 for the DMFT itself; the
prediction risk E_pred = E[s Δ²]/2 of a diagonal design, docs/dmft.md "Diagonal designs"), the
effective scale of ``dln_state.effective_scale_runs`` and the N-path bias of theory.md §5
Checks 6–7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dln_kernels.registry import DMFT, OBSERVABLES
from dln_kernels.model.dln_state import effective_scale_runs
from dln_kernels.dmft.spectral_rate import edge_rate


@dataclass(frozen=True)
class Solve:
    """The replica results of a solve of P points, B replicas, R recorded steps (NumPy, host).

    ``e_batches``: {"e_train", "e_test", "e_pred"} → (P, B, R) per-replica values, run dtype
    (``e_pred`` = E[s Δ²]/2, the s-weighted mean of a diagonal design; the same array as
    ``e_test`` for the isotropic design, s ≡ 1); ``time``
    (P, R); ``par``: the point parameters (``POINT_KEYS`` → (P,) float64); ``w_final`` (P, N):
    each path's final Gauss–Newton metric (uv: u² + v²; pm: L²(u^{2L−2} + v^{2L−2}); linear: 1);
    ``scale_final`` (P, N): the final u² − v² (network uv; NaN otherwise); ``floor_factor``: the
    noise-floor flag's factor; ``dtype``: the run dtype; ``late`` (R,) bool or None: the recorded
    steps past the first probe block (step ≥ N/B where T > N/B with variance reduction; see
    :meth:`below_floor`)."""

    e_batches: dict
    time: np.ndarray
    par: dict
    w_final: np.ndarray
    scale_final: np.ndarray
    floor_factor: float
    dtype: type
    late: np.ndarray | None = None

    def mean(self, name):
        """Replica mean (P, R) of ``e_train`` or ``e_test``."""
        return self.e_batches[name].mean(axis=1)

    def below_floor(self, name):
        """(P, R) bool: the replica mean is below ``floor_factor`` × its noise floor; past the
        first probe block (``late``) a value after a flagged late value is flagged too. There the
        noise z of different blocks overlaps by O(1/√(N/B)), an error of the whole history that
        the replica spread at one time underestimates: measured (docs/dmft.md "Long sweeps"),
        the only late values that missed the simulations by more than 4.5 se lay between two
        flagged ones."""
        flags = self.mean(name) < self.floor_factor * noise_floor(self.e_batches[name])
        if self.late is not None and self.late.any():
            flags[:, self.late] = np.logical_or.accumulate(flags[:, self.late], axis=1)
        return flags

    @cached_property
    def decay_fit(self):
        """:func:`decay_rate` of E_train on its reliable part: (rate, rate_se, window)."""
        return decay_rate(self.time, self.e_batches["e_train"], self.below_floor("e_train"))


# ----------------------------------------------------------------------------------------------
# noise floor and late-time decay rate
# ----------------------------------------------------------------------------------------------
def noise_floor(e_batches: np.ndarray) -> np.ndarray:
    """Noise floor of E_train or E_test from the replica spread: (P, B, R) -> (P, R).

    E_train = diag(K M Kᵀ)/2 vanishes only through a cancellation between the estimated K and
    M, so once the true value is small a replica of n paths returns a positive bias of order
    1/n that fluctuates by its own size between replicas. The floor is therefore the standard
    deviation of the single-replica values: where the signal dominates, it is the (small)
    statistical error of one replica; where the bias dominates, it is of the size of the value
    itself. A value is flagged as below the floor when it is less than ``floor_factor`` times
    this (i.e. one replica does not resolve it to better than 1/floor_factor relative).

    E_test = E[Δ_k²]/2 involves no cancellation, but where it decays to zero (noiseless
    recovery) the paths are driven by η, whose covariance C_r/δ carries the floor of E_train, so
    E_test stalls at a floor of its own; the same replica-spread estimate detects it.
    """
    return e_batches.std(axis=1, ddof=1)


def spectral_decay_rate(w_final: np.ndarray, par: dict) -> np.ndarray:
    """Asymptotic decay rate of E_train from the spectral edge of X diag(w) Xᵀ/δ at the paths'
    final Gauss–Newton metric w, β_{k+1} − β_k = dt·w·g_k + O(dt²) (uv: w = u² + v²; pm:
    w = L²(u^{2L−2} + v^{2L−2}); see :mod:`dln_kernels.dmft.spectral_rate`): no cancellation, so no
    noise floor. It is the rate the last state would converge at (the true late rate once w has
    settled). NaN for λ > 0 (the fixed point is then not a zero of the gradient alone) and for
    non-finite paths."""
    rate = np.full(w_final.shape[0], np.nan)
    ok = (par["weight_decay"] == 0) & np.all(np.isfinite(w_final), axis=1) & np.all(w_final > 0, axis=1)
    ok &= par.get("batch_fraction", np.ones_like(par["weight_decay"])) == 1  # GD's edge; SGD: no formula here
    if ok.any():
        rate[ok] = edge_rate(w_final[ok], par["delta"][ok], par["dt"][ok])[0]
    return rate


def decay_rate(time, e_batches, below_floor, min_points: int = 4, late_fraction: float = 0.5):
    """Late-time exponential rate of E_train, fitted per replica on the reliable part.

    Window: the last ``late_fraction`` of the recorded times that are not flagged as below the
    floor (and precede the first flagged time). A least-squares line of log E_train vs t is fitted
    per replica; the rate is −slope, averaged over replicas, with the replica standard error.
    Returns (rate (P,), rate_se (P,), window (P, 2) step-index positions into the record axis).
    """
    P, B, R = e_batches.shape
    rate = np.full(P, np.nan)
    se = np.full(P, np.nan)
    window = np.full((P, 2), -1, dtype=np.int64)
    for p in range(P):
        bad = np.nonzero(below_floor[p])[0]
        end = bad[0] if bad.size else R  # reliable prefix
        t = time[p, :end]
        if end < min_points:
            continue
        t_lo = t[-1] - late_fraction * (t[-1] - t[0])
        sel = np.nonzero(t >= t_lo)[0]
        if sel.size < min_points:
            sel = np.arange(end - min_points, end)
        window[p] = (sel[0], sel[-1])
        y = np.log(np.maximum(e_batches[p][:, sel], 1e-300))
        tt = t[sel] - t[sel].mean()
        slopes = (y - y.mean(axis=1, keepdims=True)) @ tt / np.sum(tt * tt)
        rate[p] = -slopes.mean()
        se[p] = slopes.std(ddof=1) / math.sqrt(B)
    return rate, se, window


# ----------------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------------
def _mean(name):
    return lambda s: s.mean(name)


def _se(name):  # Monte-Carlo standard error: replica std / √B
    return lambda s: s.e_batches[name].std(axis=1, ddof=1) / math.sqrt(s.e_batches[name].shape[1])


def _floor(name):
    return lambda s: noise_floor(s.e_batches[name])


def _below_floor(name):
    return lambda s: s.below_floor(name)


def _decay_rate(s: Solve):
    return s.decay_fit[0].astype(s.dtype)


def _decay_rate_se(s: Solve):
    return s.decay_fit[1].astype(s.dtype)


def _decay_rate_spectral(s: Solve):
    return spectral_decay_rate(s.w_final, s.par).astype(s.dtype)


def _alpha_eff(s: Solve):
    # network uv: √(geometric mean of the paths' final c = u² − v²), which each step multiplies by
    # (1 − dt λ)² − dt² g²; NaN otherwise (scale_final is NaN)
    return effective_scale_runs(s.scale_final, s.par["alpha"])["alpha_eff"]


# observable -> recorder of a solve, in the order of the returned dict
DMFT_RECORDERS = {
    "e_train": _mean("e_train"), "e_train_se": _se("e_train"),
    "e_test": _mean("e_test"), "e_test_se": _se("e_test"),
    "e_train_floor": _floor("e_train"), "e_train_below_floor": _below_floor("e_train"),
    "e_test_floor": _floor("e_test"), "e_test_below_floor": _below_floor("e_test"),
    "decay_rate": _decay_rate, "decay_rate_se": _decay_rate_se,
    "decay_rate_spectral": _decay_rate_spectral,
    "alpha_eff": _alpha_eff,
    "e_pred": _mean("e_pred"),
}


def _n_bias(name):  # bias(n) ≈ (E(n') − E(n)) · n'/(n − n'), in the run dtype (theory.md §5 Checks 6)
    return lambda full, half, scale: ((half[name] - full[name]) * scale).astype(full[name].dtype)


# step (Observable.only_with) -> observable -> recorder(full, half, scale)
STEP_RECORDERS = {
    "n_convergence": {"e_train_n_bias": _n_bias("e_train"), "e_test_n_bias": _n_bias("e_test")},
}


class MissingRecorderError(LookupError):
    """An observable is registered for the DMFT without a recorder here (or the reverse)."""


def _registered(step):
    """Names the registry lists for the DMFT: of the solve itself (``step`` None) or of a step."""
    return [o.name for o in OBSERVABLES.values() if DMFT in o.producers and o.only_with == step]


def recorders_for(step: str | None = None) -> dict:
    """{name: recorder} of the observables the DMFT solve (``step`` None) or the pipeline step
    ``step`` (``"n_convergence"``) records, in this table's order. Raises MissingRecorderError
    naming the observable if the registry lists one for the DMFT that has no recorder here, or
    this table has a recorder for one the registry does not list for the DMFT; ValueError for an
    unknown step."""
    if step is not None and step not in STEP_RECORDERS:
        raise ValueError(f"step: unknown value {step!r}; expected one of {sorted(STEP_RECORDERS)}")
    table = DMFT_RECORDERS if step is None else STEP_RECORDERS[step]
    where = "DMFT_RECORDERS" if step is None else f"STEP_RECORDERS[{step!r}]"
    who = "solve_dmft" if step is None else f"the DMFT step {step!r}"
    names = _registered(step)
    missing = [n for n in names if n not in table]
    if missing:
        raise MissingRecorderError(
            f"observable(s) {missing} are registered for the DMFT (registry.OBSERVABLES) but {who} does not "
            f"record them: add a recorder to dln_kernels.dmft.recorders.{where} (docs/extending.md)"
        )
    extra = [n for n in table if n not in names]
    if extra:
        raise MissingRecorderError(
            f"dln_kernels.dmft.recorders.{where} has recorders for {extra}, which registry.OBSERVABLES does not "
            f"list for the DMFT{'' if step is None else f' step {step!r}'} (producer 'dmft'): register them or "
            "remove the recorders"
        )
    return dict(table)


def check_recorders() -> None:
    """The table against the registry, for the solve and every step (MissingRecorderError)."""
    steps = {o.only_with for o in OBSERVABLES.values() if DMFT in o.producers and o.only_with is not None}
    unknown = sorted(steps - set(STEP_RECORDERS))
    if unknown:
        raise MissingRecorderError(
            f"observable(s) {[o.name for o in OBSERVABLES.values() if o.only_with in unknown]} are registered for "
            f"the DMFT step(s) {unknown} (registry.OBSERVABLES, only_with), which have no table in "
            "dln_kernels.dmft.recorders.STEP_RECORDERS: add one (docs/extending.md)"
        )
    recorders_for()
    for step in STEP_RECORDERS:
        recorders_for(step)


check_recorders()  # a registered observable without a recorder fails at import
