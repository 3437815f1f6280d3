"""Batched gradient descent of the diagonal linear network and of the linear model.

The algorithm is the one of the theory reference, section 1 (same discrete steps as the DMFT):

    r_k = y − X β_k,   g_k = Xᵀ r_k / δ
    DLN ``uv``:  u_{k+1} = u_k + dt_k (v_k ⊙ g_k − λ u_k),  v_{k+1} = v_k + dt_k (u_k ⊙ g_k − λ v_k),  β = u ⊙ v
    DLN ``pm`` (depth L ≥ 2, theory.md §6): u_{k+1} = u_k + dt_k (L u_k^{L−1} ⊙ g_k − λ u_k),
                 v_{k+1} = v_k + dt_k (−L v_k^{L−1} ⊙ g_k − λ v_k),  β = u^L − v^L,  u₀ = v₀ = α
    linear: β_{k+1} = β_k + dt_k (g_k − λ β_k)

Mini-batch SGD (theory.md §5.1), batch fraction b ∈ (0, 1]: g_k = Xᵀ(s(k) ⊙ r_k)/(b δ) with the
selection s_μ(k) = [U_μ(k) < b] (Bernoulli(b), i.i.d. over μ and k) from one uniform per sample and
step shared by the runs of a data group (``problem.Instance.selection_rng``). Fixed-size batches
(``batch_sampling="fixed"``): s_μ(k) = 1 for the m = round(b n) samples of smallest U_μ(k) (a
uniform subset of size m), and g_k = Xᵀ(s ⊙ r_k)/((m/n) δ), unbiased. E_train is over all n
samples. When every run of a call has b = 1 the selection is skipped entirely (no draws): the
operations are those of full-batch GD, bit for bit.

Batching: ``gd_stack`` integrates a stack of G data groups with b runs each. Arrays are laid out
(G, d, b): the b runs of a group share X (and ξ), so the two matrix–vector products per step of
every run become two matrix–matrix products per group. G = 1 with b = B is "shared data"; G = B
with b = 1 is "per-run data".

State: the ``uv`` DLN is stored as (a, b) = (u + v, u − v), whose update is multiplicative and so
exact for any α (see :mod:`dln_kernels.model.dln_state`); u, v never appear. The ``pm`` DLN is stored
as (u, v), whose update is multiplicative in u and v themselves (``dln_state.PMState``). Every array and every scalar of
a run has the configured dtype (float32 runs do float32 arithmetic end to end). The code uses only
the array API standard, so it runs unchanged on NumPy, CuPy and ``array_api_strict``.
"""

from __future__ import annotations

import logging
import time as _time

import numpy as np

from dln_kernels.model import dln_state
from dln_kernels.model.priors import DEFAULT_PRIOR
from dln_kernels.model.dln_state import DivergenceError, effective_scale_runs  # noqa: F401 (public here too)
from dln_kernels.backend import get_namespace, resolve_dtype, to_device, to_numpy
from dln_kernels.registry import MEMBER_AXES
from dln_kernels.model.problem import draw_instance, n_samples
from dln_kernels.sim.recorders import Step, recorders_for
from dln_kernels.model.schedule import step_times

log = logging.getLogger("dln_kernels.sim.simulate")

MODELS = ("dln", "linear")
BATCH_SAMPLING = ("bernoulli", "fixed")
# What each model records, from the registry (by name): "sim:dln" and "sim:linear" producers.
OBSERVABLES = {model: tuple(recorders_for(model)) for model in MODELS}


def _finite_or_raise(xp, e_train, k, params):
    if bool(xp.all(xp.isfinite(e_train))):
        return
    ok = to_numpy(xp.astype(xp.isfinite(e_train), xp.int8)).astype(bool)
    bad = np.argwhere(~ok)
    g, j = (int(i) for i in bad[0])
    where = ", ".join(f"{name}={to_numpy(vals)[g, 0, j]:.6g}" for name, vals in params.items())
    raise DivergenceError(
        f"gradient descent diverged (non-finite training error) at step {k} for {len(bad)} run(s); "
        f"first: {where}. Reduce dt below the stability bound for these parameters."
    )


def gd_stack(
    xp,
    X,
    beta_star,
    y,
    alpha,
    weight_decay,
    dt_schedule,
    record_steps,
    *,
    delta: float,
    model: str = "dln",
    save_beta: bool = False,
    record_beta: bool = False,
    progress_every: float | None = None,
    network: str = "uv",
    depth: int = 2,
    batch_fraction=None,
    selection_rngs=None,
    batch_sampling: str = "bernoulli",
    save_scale: bool = False,
    observe=(),
    row_cov=None,
):
    """Integrate G×b runs; return observables at ``record_steps`` as host arrays.

    Shapes: X (G, n, d); beta_star (G, d, b); y (G, n, b); alpha, weight_decay (G, 1, b), all of
    one float dtype of the namespace ``xp``; dt_schedule: host array of the n_steps step sizes,
    (n_steps,) for every run or (n_steps, b) per member (the same in every group: per-point
    schedules, schedule.py), rounded to that dtype before use (a float32 run takes float32
    steps); record_steps: sorted
    ints in [0, n_steps]. ``delta`` = n/d of X (the algorithm's 1/δ).

    Returns host arrays of the run dtype: each observable of ``recorders.recorders_for(model)`` (the
    registry's, each with its recorder) shaped (G, b, R); with ``save_beta`` also ``beta_final`` (G, b, d); with
    ``record_beta`` also ``beta`` (G, b, R, d), β at every recorded step.
    ``progress_every`` (seconds): log progress at most this often.

    ``network``, ``depth`` (model "dln" only; one network and depth per call): ``"uv"`` (β = u v,
    depth 2, theory.md §1), integrated in the exact coordinates (a, b) = (u + v, u − v) of
    :mod:`dln_kernels.model.dln_state`, or ``"pm"`` (β = u^L − v^L, L = ``depth`` ≥ 2, theory.md §6),
    integrated in (u, v) with the multiplicative update of ``dln_state.PMState``; both are the
    same discrete algorithm as the theory reference, exact for any α ≥ ``alpha_min(dtype,
    network, depth)``. ``conservation_drift`` is the mean over coordinates of the relative
    deviation of the network's gradient-flow invariant: uv |u² − v² − α²|/α²; pm L = 2
    |u v/α² − 1|; pm L ≥ 3 |(u^{2−L} + v^{2−L})/(2α^{2−L}) − 1|.

    ``batch_fraction`` (host array (G, b) in (0, 1], or None: all 1): mini-batch SGD of theory.md
    §5.1 (module docstring); ``selection_rngs``: G NumPy generators of the selection streams (one
    block of n uniforms per step each; needed when any b < 1); ``batch_sampling``: "bernoulli"
    (each sample on its own with probability b) or "fixed" (a uniform subset of round(b n)).
    ``save_scale`` (network uv only): also return ``scale_final`` (G, b, d), the final
    c_i = u_i² − v_i² = a_i b_i. Each uv step multiplies it by (1 − dt λ)² − dt² g_{k,i}², so for
    λ = 0 it is α²·Π_k (1 − dt² g_{k,i}²): the effective initialisation scale of Even et al. 2023
    (gradient flow keeps it at α²).

    Raises ValueError for an unknown model, network, depth or batch_sampling, and DivergenceError (naming α and λ
    of the first bad run) as soon as a recorded training error is not finite.
    """
    if model not in MODELS:
        raise ValueError(f"model: unknown value {model!r}; expected one of {MODELS}")
    if batch_sampling not in BATCH_SAMPLING:
        raise ValueError(f"batch_sampling: unknown value {batch_sampling!r}; expected one of {BATCH_SAMPLING}")
    net = dln_state.network_state(network, depth)
    G, n, d = X.shape
    b = beta_star.shape[2]
    dtype = X.dtype
    steps = _device_steps(xp, dt_schedule, b, dtype)
    n_steps = len(steps)
    record_index = _record_index(record_steps, n_steps)
    Xt = xp.matrix_transpose(X)
    delta = float(_host_dtype(xp, dtype)(delta))
    if model == "dln":
        ua, ub = net.init(xp, alpha, (G, d, b), dtype)  # uv: (u + v, u − v); pm: (u, v)
        beta = net.beta(ua, ub)
    else:
        beta = xp.zeros((G, d, b), dtype=dtype)
    recorders = recorders_for(model, observe)  # the registry's observables of this model (+ opt-in ``observe``)
    records = {name: [] for name in recorders}  # one (G, b) array per recorded step, stacked at the end
    beta_hist = []
    params = {"alpha": alpha, "weight_decay": weight_decay}
    sgd = batch_fraction is not None and bool(np.any(np.asarray(batch_fraction) < 1.0))
    selection = _Selection(xp, batch_fraction, selection_rngs, batch_sampling, n, delta, dtype, (G, b)) if sgd else None
    if sgd:
        params["batch_fraction"] = selection.b
    progress = _Progress(n_steps, progress_every)

    for k in range(n_steps + 1):
        r = y - xp.matmul(X, beta)
        if k in record_index:
            state = Step(r=r, beta=beta, beta_star=beta_star, n=n, d=d, row_cov=row_cov, **(
                dict(net=net, ua=ua, ub=ub, alpha=alpha) if model == "dln" else {}))
            for name, record in recorders.items():
                value = record(xp, state)
                records[name].append(value if value.dtype == dtype else xp.astype(value, dtype))
            if record_beta:
                beta_hist.append(xp.matrix_transpose(beta))
            _finite_or_raise(xp, records["e_train"][-1], k, params)
        if k == n_steps:
            break
        g = selection.gradient(Xt, r) if sgd else xp.matmul(Xt, r) / delta
        dt = steps[k]
        if model == "dln":
            ua, ub = net.step(ua, ub, g, dt, dt * weight_decay)
            beta = net.beta(ua, ub)
        else:
            beta = beta + dt * (g - weight_decay * beta)
        progress.tick(k)

    result = {name: to_numpy(xp.stack(vals, axis=-1)) for name, vals in records.items()}  # (G, b, R)
    if save_beta:
        result["beta_final"] = to_numpy(xp.matrix_transpose(beta))  # (G, b, d)
    if record_beta:
        result["beta"] = to_numpy(xp.stack(beta_hist, axis=2))  # (G, b, R, d)
    if save_scale:
        if model != "dln" or net.network != "uv":
            raise ValueError("save_scale: the effective scale u² − v² is defined for network uv only")
        result["scale_final"] = to_numpy(xp.matrix_transpose(ua * ub))  # (G, b, d): (u + v)(u − v)
    return result


def _device_steps(xp, dt_schedule, b: int, dtype) -> list:
    """The n_steps step sizes in the run dtype: Python floats for a shared schedule (n_steps,)
    (they never promote an array, NEP 50), one (1, 1, b) device row per step for per-run steps
    (n_steps, b). Raises ValueError for per-run steps of another width than b."""
    sched = np.asarray(dt_schedule)
    if sched.ndim == 2 and sched.shape[1] != b:
        raise ValueError(f"dt_schedule: per-run steps need shape (n_steps, {b}), got {sched.shape}")
    if sched.ndim == 1:
        return [float(s) for s in np.asarray(sched, dtype=_host_dtype(xp, dtype))]
    dt_dev = to_device(xp, np.asarray(sched, dtype=np.float64)[:, None, None, :], _host_dtype(xp, dtype))
    return [dt_dev[k, ...] for k in range(sched.shape[0])]


def _record_index(record_steps, n_steps: int) -> dict:
    """{step: position} of the recorded steps; ValueError unless strictly increasing in [0, n_steps]."""
    record_steps = np.asarray(record_steps, dtype=np.int64)
    if record_steps.size == 0 or np.any(np.diff(record_steps) <= 0) or record_steps[0] < 0 or record_steps[-1] > n_steps:
        raise ValueError(f"record_steps: need strictly increasing steps in [0, {n_steps}], got {record_steps.tolist()}")
    return {int(k): i for i, k in enumerate(record_steps)}


class _Selection:
    """Mini-batch selection of theory.md §5.1 for G data groups of b runs (module docstring).

    ``batch_fraction`` host values in (0, 1] of ``shape`` (G, b); ``selection_rngs`` one NumPy generator per group
    (one block of n uniforms per step each); ``batch_sampling`` "bernoulli" | "fixed". Raises
    ValueError without one generator per group."""

    def __init__(self, xp, batch_fraction, selection_rngs, batch_sampling: str, n: int, delta: float, dtype, shape):
        bf = np.asarray(batch_fraction, dtype=np.float64).reshape(shape)  # (G, b)
        if selection_rngs is None or len(selection_rngs) != shape[0]:
            raise ValueError("selection_rngs: need one generator per data group for batch_fraction < 1")
        self.xp, self.rngs, self.fixed, self.n = xp, selection_rngs, batch_sampling == "fixed", n
        self.host = _host_dtype(xp, dtype)
        if self.fixed:
            self.m_batch = np.rint(bf * n).astype(np.int64)  # round(b n) samples per step
            scale = self.m_batch / n  # m/n: the unbiased normalisation of a fixed-size batch
        else:
            scale = bf
        self.b = to_device(xp, bf[:, None, :], self.host)  # (G, 1, b), run dtype
        self.b64 = to_device(xp, bf[:, None, :], np.float64)  # the Bernoulli threshold, compared in float64
        # b δ per run as an array of the run dtype (b = 1 runs divide by δ itself, as in GD)
        self.bdelta = to_device(xp, (scale * delta)[:, None, :].astype(self.host), self.host)

    def gradient(self, Xt, r):
        """g = Xᵀ(s(k) ⊙ r)/(b δ) (G, d, b) with this step's selection s(k) (draws n uniforms per group)."""
        xp = self.xp
        U = np.stack([rng.random(self.n) for rng in self.rngs])  # (G, n): step k's uniforms
        if self.fixed:
            rank = np.argsort(np.argsort(U, axis=1, kind="stable"), axis=1, kind="stable")
            s_k = to_device(xp, rank[:, :, None] < self.m_batch[:, None, :], self.host)  # (G, n, b)
        else:  # one (G, n) copy per step; the b runs' masks are made on the device
            s_k = xp.astype(to_device(xp, U[:, :, None], np.float64) < self.b64, self.b.dtype)
        return xp.matmul(Xt, s_k * r) / self.bdelta


class _Progress:
    """Logs "step k/n (x%), elapsed, left" at most every ``every`` seconds (None: never)."""

    def __init__(self, n_steps: int, every: float | None):
        self.n_steps, self.every = n_steps, every
        self.t0 = self.last = _time.perf_counter()

    def tick(self, k: int) -> None:
        if self.every is None:
            return
        now = _time.perf_counter()
        if now - self.last >= self.every:
            frac = (k + 1) / self.n_steps
            log.info("step %d/%d (%.0f%%), %.1f s elapsed, ~%.1f s left",
                     k + 1, self.n_steps, 100 * frac, now - self.t0, (now - self.t0) * (1 - frac) / frac)
            self.last = now


def _check_alpha(alpha, dtype, network: str = "uv", depth: int = 2) -> None:
    """ValueError before compute for α the network's state cannot keep exact in ``dtype``."""
    low = float(np.min(alpha))
    a_min = dln_state.alpha_min(dtype, network, depth)
    if low < a_min:
        if network == "uv":
            where, why = "", "alpha**2 must stay a normal number"
        else:
            where = f" for network {network!r} of depth {depth}"
            why = ("alpha**2 must stay a normal number" if depth == 2
                   else f"alpha**{2 * depth - 2} must stay a normal number")
        raise ValueError(
            f"alpha: {low:g} is below alpha_min({np.dtype(dtype).name}) = {a_min:.2g}{where}, "
            f"the smallest initialisation the DLN state keeps exact ({why})"
        )


def _host_dtype(xp, dtype):
    """NumPy float type of a namespace dtype (float32 or float64)."""
    return np.float32 if dtype == xp.float32 else np.float64


def simulate_members(
    xp,
    instances,
    members,
    *,
    model: str,
    delta: float,
    prior: dict,
    dt_schedule,
    record_steps,
    dtype=np.float64,
    save_beta: bool = False,
    record_beta: bool = False,
    progress_every: float | None = None,
    network: str = "uv",
    depth: int = 2,
    batch_sampling: str = "bernoulli",
    save_scale: bool = False,
    observe=(),
) -> dict:
    """Runs of G instances (one data group each) with b members each; host arrays (G, b, …).

    ``observe``: opt-in per-step observables to record too (``e_pred``: with each instance's row
    covariance, ``designs.row_covariance``).

    ``members[g]`` holds the runs of instance g by axis name: {"rho", "sigma", "alpha",
    "weight_decay"} → (b,) arrays, optionally "batch_fraction" (default 1: full-batch GD; mini-batch
    SGD otherwise, theory.md §5.1, selections from the instance's selection stream, sampling
    ``batch_sampling``); all groups must have the same b. Runs of a group share X and ξ,
    and their teachers share noise. ``dtype`` (NumPy float type) is the run dtype: the host data
    are rounded to it once. ``network``, ``depth``: the DLN family (model "dln" only), see
    :func:`gd_stack`. Raises ValueError for α below ``dln_state.alpha_min``, for a batch fraction
    outside (0, 1] and for b·n < 1 (less than one sample per step on average), before compute.
    """
    network, depth = dln_state.validate_network(network, depth)
    col = lambda m, a: np.asarray(m[a], dtype=float)  # noqa: E731
    if model == "dln":
        _check_alpha(np.concatenate([col(m, "alpha") for m in members]), dtype, network, depth)
    bf = None
    if any("batch_fraction" in m for m in members):
        bf = np.stack([np.broadcast_to(col(m, "batch_fraction") if "batch_fraction" in m else 1.0,
                                       col(m, "alpha").shape) for m in members])
        check_batch_fraction(bf, n_samples(delta, instances[0].d))
    Xs, bstars, ys = [], [], []
    for inst, m in zip(instances, members):
        X = inst.design(delta)
        xi = inst.noise(delta)
        bs = np.stack([inst.teacher(prior, r) for r in col(m, "rho")], axis=1)  # (d, b)
        Xs.append(X)
        bstars.append(bs)
        ys.append(X @ bs + xi[:, None] * col(m, "sigma")[None, :])
    dev = lambda a: to_device(xp, np.stack(a), dtype)  # noqa: E731
    par = lambda a: to_device(xp, np.stack([col(m, a) for m in members])[:, None, :], dtype)  # noqa: E731
    X = dev(Xs)
    return gd_stack(
        xp, X, dev(bstars), dev(ys), par("alpha"), par("weight_decay"), dt_schedule, record_steps,
        delta=X.shape[1] / X.shape[2],  # n/d of the actual design: the algorithm's 1/δ
        model=model, save_beta=save_beta, record_beta=record_beta, progress_every=progress_every,
        network=network, depth=depth, batch_fraction=bf, batch_sampling=batch_sampling, save_scale=save_scale,
        observe=observe, row_cov=_row_cov(xp, instances, dtype) if "e_pred" in observe else None,
        selection_rngs=None if bf is None or np.all(bf == 1.0) else [inst.selection_rng() for inst in instances],
    )


def _row_cov(xp, instances, dtype):
    """d·Cov(x) of the instances' designs on the device for ``Step.row_cov``: None where every
    design is the i.i.d. Gaussian (identity), the scales (G, d, 1) where every one is diagonal,
    else (G, d, d) matrices."""
    from dln_kernels.model.designs import row_covariance

    designs = [None if inst.rows is None else inst.rows.design for inst in instances]
    once = {id(des): row_covariance(des) for des in designs}  # a chunk's instances share one design: one d³ product
    covs = [once[id(des)] for des in designs]
    if all(c is None for c in covs):
        return None
    d = instances[0].d
    if all(c is None or c.ndim == 1 for c in covs):  # diagonal: the scales only, never a d × d matrix
        return to_device(xp, np.stack([np.ones(d) if c is None else c for c in covs])[:, :, None], dtype)
    return to_device(xp, np.stack([np.eye(d) if c is None else (np.diag(c) if c.ndim == 1 else c) for c in covs]), dtype)


def check_batch_fraction(batch_fraction, n: int, key: str = "batch_fraction") -> None:
    """ValueError naming ``key`` and the value for b ∉ (0, 1] or b·n < 1 (n samples)."""
    bf = np.asarray(batch_fraction, dtype=float).ravel()
    bad = bf[~((bf > 0) & (bf <= 1))]
    if bad.size:
        raise ValueError(f"{key}: {bad[0]:g} is outside (0, 1] (the probability that a sample is used at a step)")
    if bf.min() * n < 1:
        raise ValueError(
            f"{key}: {bf.min():g} uses b·n = {bf.min() * n:.3g} < 1 samples per step on average "
            f"(n = {n}); raise it to at least {1.0 / n:.3g} or raise d or delta"
        )


def simulate_grid(
    *,
    model: str,
    d: int,
    delta: float,
    rho,
    sigma,
    alpha,
    weight_decay,
    seeds,
    dt: float,
    n_steps: int,
    record_steps,
    prior: dict | None = None,
    base_seed: int = 0,
    backend: str = "numpy",
    dtype: str = "float64",
    save_beta: bool = False,
    record_beta: bool = False,
    share_data: bool = True,
    progress_every: float | None = None,
    network: str = "uv",
    depth: int = 2,
    batch_fraction=None,
    batch_sampling: str = "bernoulli",
    save_scale: bool = False,
    observe=(),
) -> dict:
    """All runs of a product grid at one δ (a convenience for tests, benchmarks and notebooks).

    Runs with the same seed share (X, ξ) and the teacher noise (common random numbers along
    α, λ, σ, ρ); all seeds go in one stacked call. Returns host arrays shaped
    (n_seed, n_rho, n_sigma, n_alpha, n_wd, n_record) plus ``time`` and ``step`` (and
    ``beta_final`` with a trailing d axis when ``save_beta``, ``beta`` with trailing (n_record,
    d) axes when ``record_beta``). Observables have the float type ``dtype``. ``share_data=False`` gives every
    run its own instance instead (used to measure what sharing buys).
    ``network``, ``depth``: the DLN family (model "dln" only; ``"uv"`` depth 2 or ``"pm"`` depth
    L ≥ 2), see :func:`gd_stack`. ``batch_fraction`` (mini-batch SGD, theory.md §5.1): values of
    b; when given, the outputs get an n_b axis after n_wd (runs of a seed share the selection
    uniforms); ``batch_sampling``: "bernoulli" or "fixed"; ``save_scale``: also ``scale_final``
    (trailing d axis), the final u² − v² of every coordinate (see :func:`gd_stack`); ``observe``:
    opt-in per-step observables too (``e_pred``, see :func:`simulate_members`).
    """
    prior = prior or DEFAULT_PRIOR
    network, depth = dln_state.validate_network(network, depth)
    xp = get_namespace(backend)
    given = {"rho": rho, "sigma": sigma, "alpha": alpha, "weight_decay": weight_decay, "batch_fraction": batch_fraction}
    names = [a for a in MEMBER_AXES if given.get(a) is not None]  # output axis order: the registry's stack order
    axes = [list(np.atleast_1d(given[a]).astype(float)) for a in names]
    grid = dict(zip(names, (m.ravel() for m in np.meshgrid(*axes, indexing="ij"))))  # (b,) per axis
    seeds = [int(s) for s in np.atleast_1d(seeds)]
    dt_schedule = np.full(n_steps, float(dt))
    record_steps = np.asarray(record_steps, dtype=np.int64)
    if share_data:
        instances = [draw_instance(d, s, base_seed) for s in seeds]
        rows = [grid] * len(seeds)
    else:  # one instance per run, from a separate seed stream
        b = grid["alpha"].size
        instances = [draw_instance(d, s * b + j, base_seed + 1) for s in seeds for j in range(b)]
        rows = [{a: v[j : j + 1] for a, v in grid.items()} for _ in seeds for j in range(b)]
    res = simulate_members(
        xp, instances, rows, model=model, delta=delta, prior=prior, dt_schedule=dt_schedule,
        record_steps=record_steps, dtype=resolve_dtype(dtype), save_beta=save_beta,
        record_beta=record_beta, progress_every=progress_every, network=network, depth=depth,
        batch_sampling=batch_sampling, save_scale=save_scale, observe=observe,
    )
    lead = (len(seeds), *[len(a) for a in axes])
    out = {name: arr.reshape(lead + arr.shape[2:]) for name, arr in res.items()}
    out["step"] = record_steps
    out["time"] = step_times(dt_schedule)[record_steps]
    return out
