"""The registry: one table of grid axes and one of observables, read by name everywhere.

Everything that lists axes or observables is derived from here — the config schema's grid section
(checked by ``tests/test_registry.py``), the chunking and stacking of simulation runs
(``sweep``), the DMFT point keys, the static-theory meshes, the dims and variable descriptions of
the aggregated files (``io``). Adding an axis or an observable is one entry here plus the kernel
code that uses it: the checklist is ``docs/extending.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stages that read an axis / produce an observable.
SIMULATE, DMFT, STATIC = "simulate", "dmft", "static"


@dataclass(frozen=True)
class Axis:
    """A grid axis of a sweep (every combination of the axes' values is run).

    ``kind``: JSON-schema type of its values ("number" | "integer"); ``bounds``: JSON-schema
    keywords every value must satisfy; ``default``: values when the sweep omits the axis (None:
    required). ``role``: "member" — varied inside a data group (the runs share X, ξ and the teacher
    noise and are integrated together, common random numbers); "chunk" — one value per simulation
    job (δ changes n, the depth changes the update). ``stack_rank``: nesting of the member axes
    inside a group (outermost first); it fixes the order of runs in a job and so their last bits.
    ``stages``: which computations read it. ``splits_dmft``: the DMFT solves each value of the
    axis separately (it changes the path update, so points cannot share a sweep); DMFT jobs then
    group points by its value first. ``implicit_default``: an axis added after sweeps
    existed; while a sweep holds only its default value the axis is left out of chunk contents
    (so of chunk names and job params), so such sweeps keep their jobs and bits.
    """

    name: str
    symbol: str
    description: str
    long_name: str
    kind: str
    bounds: dict
    default: tuple | None
    role: str
    stages: frozenset
    stack_rank: int | None = None
    splits_dmft: bool = False
    implicit_default: bool = False
    label: str | None = None  # axis label of figures (default: "<name> <symbol>")

    def axis_label(self) -> str:
        """The label figures put on this axis."""
        return self.label or f"{self.name.replace('_', ' ')} {self.symbol}"

    def schema(self) -> dict:
        """The JSON-schema property of this axis (a non-empty list of unique values)."""
        out = {"description": self.description, "type": "array", "minItems": 1, "uniqueItems": True,
               "items": {"type": self.kind, **self.bounds}}
        if self.default is not None:
            out["default"] = list(self.default)
        return out


_ALL = frozenset({SIMULATE, DMFT, STATIC})

# Dimension order of every file: the order of this table.
AXES = {
    a.name: a
    for a in (
        Axis("alpha", "α", "initialisation scale alpha > 0", "initialisation scale (u0 = alpha, v0 = 0)", "number", {"exclusiveMinimum": 0}, None,
             "member", _ALL, stack_rank=2, label="initialisation scale α"),
        Axis("delta", "δ", "sample ratio n/d > 0", "sample ratio n/d", "number", {"exclusiveMinimum": 0}, None, "chunk", _ALL,
             label="sample ratio δ = n/d"),
        Axis("rho", "ρ", "teacher sparsity in (0, 1]", "teacher sparsity (fraction of nonzero coordinates)", "number", {"exclusiveMinimum": 0, "maximum": 1}, (0.2,),
             "member", _ALL, stack_rank=0, label="teacher sparsity ρ"),
        Axis("sigma", "σ", "label-noise std >= 0", "label-noise standard deviation", "number", {"minimum": 0}, (0.0,), "member", _ALL, stack_rank=1),
        Axis("weight_decay", "λ", "weight decay lambda >= 0", "weight decay lambda", "number", {"minimum": 0}, (0.0,), "member", _ALL,
             stack_rank=3),
        Axis("depth", "L", "network depth L >= 2 (network pm; network uv is depth 2 only)",
             "depth L of the diagonal network (beta = u^L - v^L for network pm)", "integer", {"minimum": 2}, (2,),
             "chunk", _ALL, splits_dmft=True),
        # mini-batch SGD (theory.md §5): every sample is selected with probability b at each step;
        # b = 1 is full-batch GD. A member axis: the runs of a data group share one uniform per
        # sample and step (common random numbers along b, and masks shared along α, σ, ρ, λ).
        # The gradient-flow (static) limit does not depend on it.
        Axis("batch_fraction", "b", "mini-batch fraction b in (0, 1]: each sample is used at each step with probability b "
             "(1: full-batch gradient descent)", "mini-batch fraction (selection probability of a sample per step)",
             "number", {"exclusiveMinimum": 0, "maximum": 1}, (1.0,), "member", frozenset({SIMULATE, DMFT}),
             stack_rank=4, implicit_default=True),
        # step-size multiplier (schedule.py): every step of the point's schedule times s. With
        # values other than [1] each point has its own time axis (dim ``step``, 2-D ``time``).
        Axis("dt_scale", "s", "step-size multiplier s > 0: the point's steps are s times the schedule's "
             "(constant or alpha_rule schedules)", "step-size multiplier (dt of the point / dt of the schedule)",
             "number", {"exclusiveMinimum": 0}, (1.0,), "member", frozenset({SIMULATE, DMFT}),
             stack_rank=5, implicit_default=True),
    )
}

GRID_AXES = tuple(AXES)
# The planes of the phase diagrams: the static theory's dense grids (groups of static.nc, dims
# "<axis>_dense") and the DMFT phase diagram's varied axes, by name.
PHASE_PLANES = {"alpha_delta": ("alpha", "delta"), "delta_rho": ("delta", "rho")}
MEMBER_AXES = tuple(sorted((a.name for a in AXES.values() if a.role == "member"), key=lambda n: AXES[n].stack_rank))
CHUNK_AXES = tuple(a.name for a in AXES.values() if a.role == "chunk")


def implicit(axis: str, values) -> bool:
    """True if ``axis`` is left out of chunk contents for these grid values (see ``Axis``)."""
    a = AXES[axis]
    return a.implicit_default and sorted(float(v) for v in values) == sorted(float(v) for v in a.default)


def axes_for(stage: str) -> tuple:
    """Names of the axes a stage reads, in dimension order."""
    return tuple(a.name for a in AXES.values() if stage in a.stages)


def schema_grid() -> dict:
    """The config schema's ``grid`` object, derived from :data:`AXES`."""
    return {
        "description": "parameter axes; every combination is run",
        "type": "object",
        "additionalProperties": False,
        "required": [a.name for a in AXES.values() if a.default is None],
        "properties": {a.name: a.schema() for a in AXES.values()},
    }


@dataclass(frozen=True)
class Observable:
    """A recorded quantity. ``producers``: "sim:dln", "sim:linear", "dmft", "static";
    ``per_time``: recorded along the time axis; ``dmft``: name of the DMFT's prediction of it
    (None if none); ``may_be_nan``: NaN is a legitimate value (e.g. no window to fit), else a
    non-finite value means the chunk is not data; ``boolean``: a mask; ``static_key``: the key
    of ``static.solve_static``'s result it comes from (static-theory variables); ``opt_in``: the
    boolean sweep key that switches it on (recorded only by sweeps that set it; once per run or
    point, from the final state, not by the per-step recorder); ``only_with``: the DMFT step that
    adds it (``"n_convergence"``: the second solve with half the paths, ``dmft.n_convergence``),
    so chunks of sweeps without that step do not hold it. Every other observable of a producer is
    recorded by every chunk of that producer: the simulator's recorders (``sim.recorders``) and
    the DMFT's outputs are checked against this table, a missing one is an error."""

    name: str
    long_name: str
    units: str
    producers: frozenset
    per_time: bool = True
    dmft: str | None = None
    may_be_nan: bool = False
    boolean: bool = False
    static_key: str | None = None
    opt_in: str | None = None
    only_with: str | None = None


_SIM = frozenset({"sim:dln", "sim:linear"})
_D = frozenset({"dmft"})
_S = frozenset({"static"})

OBSERVABLES = {
    o.name: o
    for o in (
        Observable("e_train", "training error ||y - X beta||^2 / (2n)", "1", _SIM | _D, dmft="e_train"),
        Observable("e_test", "test (excess) error ||beta - beta*||^2 / (2d)", "1", _SIM | _D, dmft="e_test"),
        Observable("l1_norm", "||beta||_1 / d", "1", _SIM),
        Observable("conservation_drift", "mean_i |I(u_i, v_i)/I_0 - 1| of the network's gradient-flow invariant: "
                   "uv u^2 - v^2; pm depth 2 u v; pm depth L >= 3 u^(2-L) + v^(2-L)", "1", frozenset({"sim:dln"})),
        Observable("e_train_se", "Monte-Carlo standard error of e_train (replica spread)", "1", _D),
        Observable("e_test_se", "Monte-Carlo standard error of e_test (replica spread)", "1", _D),
        Observable("e_train_floor", "estimated Monte-Carlo noise floor of e_train", "1", _D),
        Observable("e_train_below_floor", "e_train is below its noise floor: noise, not physics", "1", _D, boolean=True),
        Observable("e_test_floor", "estimated Monte-Carlo noise floor of e_test", "1", _D),
        Observable("e_test_below_floor", "e_test is below its noise floor: noise, not physics", "1", _D, boolean=True),
        # convergence in N (dmft.n_convergence; by default in sweeps with a batch fraction < 1 only,
        # other sweeps' files do not hold them): values above n_bias_tol x the value are also masked
        Observable("e_train_n_bias", "estimated Monte-Carlo bias of e_train from convergence in N: "
                   "E(N/2) - E(N), N paths per replica", "1", _D, only_with="n_convergence"),
        Observable("e_test_n_bias", "estimated Monte-Carlo bias of e_test from convergence in N: "
                   "E(N/2) - E(N), N paths per replica", "1", _D, only_with="n_convergence"),
        Observable("decay_rate", "exponential decay rate of e_train on the late half of its resolved (above-floor) "
                   "part; pre-asymptotic where the floor comes early, see decay_rate_spectral", "1/time", _D,
                   per_time=False, may_be_nan=True),
        Observable("decay_rate_se", "standard error of decay_rate", "1/time", _D, per_time=False, may_be_nan=True),
        Observable("decay_rate_spectral", "decay rate of e_train from the spectral edge at the final state "
                   "(weight_decay = 0)", "1/time", _D, per_time=False, may_be_nan=True),
        # long-time theory (static.nc); NaN where the solver did not converge
        Observable("e_test_final", "long-time test error ||beta_inf - beta*||^2/(2d), d -> inf", "1", _S,
                   per_time=False, may_be_nan=True, static_key="e_test"),
        Observable("e_train_final", "long-time training error ||y - X beta_inf||^2/(2n)", "1", _S, per_time=False,
                   may_be_nan=True, static_key="e_train"),
        Observable("tau", "state-evolution noise level tau", "1", _S, per_time=False, may_be_nan=True, static_key="tau"),
        Observable("gamma", "state-evolution prox scale gamma (lambda = 0, delta < 1)", "1", _S, per_time=False,
                   may_be_nan=True, static_key="gamma"),
        Observable("theta", "LASSO state-evolution threshold theta (lambda > 0)", "1", _S, per_time=False,
                   may_be_nan=True, static_key="theta"),
        Observable("frac_active", "fraction of nonzero coordinates of the limit", "1", _S, per_time=False,
                   may_be_nan=True, static_key="frac_active"),
        Observable("converged", "the static solver converged at this point", "1", _S, per_time=False, boolean=True,
                   static_key="converged"),
        Observable("residual", "residual of the static solver's equations", "1", _S, per_time=False,
                   may_be_nan=True, static_key="residual"),
        # effective initialisation of network uv (Even et al. 2023), opt-in (sweep key
        # effective_scale): each step multiplies c_i = u_i^2 - v_i^2 by (1 - dt lambda)^2 - dt^2 g_i^2
        Observable("alpha_eff", "effective initialisation scale sqrt(exp(mean_i ln c_i)), c_i = u_i^2 - v_i^2 at "
                   "the last step (network uv; NaN where some c_i <= 0, and in the DMFT for lambda > 0)", "1",
                   frozenset({"sim:dln", "dmft"}), per_time=False, dmft="alpha_eff", may_be_nan=True,
                   opt_in="effective_scale"),
        Observable("gain_mean", "mean gain mean_i -ln(c_i/alpha^2) of the final c_i = u_i^2 - v_i^2 (network uv; "
                   "NaN where some c_i <= 0)", "1", frozenset({"sim:dln"}), per_time=False, may_be_nan=True,
                   opt_in="effective_scale"),
        # prediction risk of an anisotropic design (docs/dmft.md "Diagonal designs"): (beta - beta*)^T
        # Cov(x) (beta - beta*)/2 with Cov(x) = diag(s)/d for a diagonal design; for the isotropic one
        # (s = 1) the same formula as e_test, so the same value. Opt-in (sweep key prediction_risk), so
        # sweeps written before it keep their chunk contents and bits
        Observable("e_pred", "prediction (excess) risk (beta - beta*)^T Cov(x) (beta - beta*) / 2, "
                   "= ||sqrt(s) (beta - beta*)||^2 / (2d) for a diagonal design (= e_test for the isotropic one)",
                   "1", _SIM | _D, dmft="e_pred", opt_in="prediction_risk"),
    )
}

# Coordinates that are not grid axes (descriptions for the aggregated files).
COORDINATES = {
    "seed": ("seed index of the problem instance (X, beta*, xi)", "1"),
    "time": ("time t_k = sum of the steps dt_j, j < k (k dt for a constant step)", "1"),
    "step": ("gradient step index k", "1"),
}


def observables(producer: str, opt_in=(), steps=None) -> tuple:
    """Names of the observables ``producer`` ("sim:dln", "sim:linear", "dmft", "static") records;
    opt-in observables only where their sweep key is in ``opt_in`` (by default none); those added
    by an optional step (``only_with``) all by default (``steps=None``), else only for the steps
    named in ``steps``."""
    return tuple(o.name for o in OBSERVABLES.values()
                 if producer in o.producers and (o.opt_in is None or o.opt_in in opt_in)
                 and (steps is None or o.only_with is None or o.only_with in steps))


def opted_in(producer: str, sweep: dict) -> tuple:
    """Names of the opt-in observables of ``producer`` that ``sweep`` switches on (its keys)."""
    return tuple(o.name for o in OBSERVABLES.values()
                 if producer in o.producers and o.opt_in is not None and sweep.get(o.opt_in, False))


def describe(name: str):
    """(long_name, units) of an axis, coordinate or observable; None if unknown."""
    if name in OBSERVABLES:
        return OBSERVABLES[name].long_name, OBSERVABLES[name].units
    if name in AXES:
        return AXES[name].long_name, "1"
    return COORDINATES.get(name)
