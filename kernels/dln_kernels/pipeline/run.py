"""Running one job: a simulation chunk (:func:`run_chunk`), a DMFT chunk (:func:`run_dmft_chunk`)
or the long-time theory on a grid (:func:`static_on_grid`), returning the arrays that
``pipeline.io`` writes."""

from __future__ import annotations

import numpy as np

from dln_kernels.backend import backend_name, get_namespace, resolve_dtype
from dln_kernels.model.problem import draw_instance
from dln_kernels.model.schedule import step_times
from dln_kernels.pipeline.chunks import axis_value, chunk_d
from dln_kernels.pipeline.timegrid import point_dt_schedule, schedule_of, time_grid
from dln_kernels.registry import AXES, CHUNK_AXES, GRID_AXES, MEMBER_AXES, OBSERVABLES, STATIC, observables, opted_in  # by name
from dln_kernels.sim.simulate import DivergenceError, effective_scale_runs, simulate_members


def _column_type(axis: str):
    """NumPy type of an axis' values (int64 for integer axes such as the depth)."""
    return np.int64 if AXES[axis].kind == "integer" else np.float64


def _network_kw(sweep: dict, depth) -> dict:
    """Kernel keywords of the DLN family: network and depth (model dln only)."""
    return {"network": sweep["network"], "depth": int(depth)} if sweep["model"] == "dln" else {}


def run_chunk(sweep: dict, chunk: dict, progress_every: float | None = 10.0) -> dict:
    """Simulate one chunk. Returns per-run parameter columns and (runs, times) observables."""
    xp = get_namespace(sweep["backend"])
    grid = time_grid(sweep, chunk)
    dt_schedule, steps, times = grid.dt_schedule, grid.record_steps, grid.times
    runs = {a: np.array([axis_value(m, a) for m in chunk["members"]], dtype=float) for a in MEMBER_AXES}  # by name
    if dt_schedule is None:  # per-point steps: one column per member (the same in every data group)
        pts = [{**m, **{a: chunk[a] for a in CHUNK_AXES}} for m in chunk["members"]]
        dt_schedule = np.stack([point_dt_schedule(sweep, p) for p in pts], axis=1)  # (n_steps, b)
        times = np.tile(np.stack([step_times(dt_schedule[:, j])[steps] for j in range(len(pts))]),
                        (len(chunk["seeds"]), 1))  # (runs, T), runs seed-major as the observables
    instances = [draw_instance(chunk_d(sweep, chunk), s, sweep["base_seed"], chunk.get("design"))
                 for s in chunk["seeds"]]
    opted = opted_in(f"sim:{sweep['model']}", sweep)
    observe = tuple(n for n in opted if OBSERVABLES[n].per_time)  # recorded per step (e_pred)
    extra = tuple(n for n in opted if not OBSERVABLES[n].per_time)  # from the final state (alpha_eff, gain_mean)
    res = simulate_members(
        xp, instances, [runs] * len(instances), model=sweep["model"], delta=chunk["delta"],
        prior=sweep["prior"], dt_schedule=dt_schedule, record_steps=steps,
        dtype=resolve_dtype(sweep["dtype"]), save_beta=sweep["save_beta"],
        progress_every=progress_every, batch_sampling=sweep.get("batch_sampling", "bernoulli"),
        **_network_kw(sweep, chunk["depth"]), **({"save_scale": True} if extra else {}),
        **({"observe": observe} if observe else {}),
    )
    if extra:  # per run from the final u^2 - v^2 (G, b, d); the state itself is not stored
        scale = res.pop("scale_final")
        res.update({k: v for k, v in effective_scale_runs(scale, np.broadcast_to(runs["alpha"], scale.shape[:2]),
                                                           resolve_dtype(sweep["dtype"])).items() if k in extra})
    n_runs = len(instances) * len(chunk["members"])
    out = {name: arr.reshape(n_runs, *arr.shape[2:]) for name, arr in res.items()}
    out["params"] = {
        "seed": np.repeat(np.asarray(chunk["seeds"], dtype=np.int64), len(chunk["members"])),
        **{a: np.full(n_runs, chunk[a], dtype=_column_type(a)) for a in CHUNK_AXES},
        # the axes the chunk names (an implicit axis at its default is not a column, as before it existed)
        **{a: np.tile(runs[a], len(instances)) for a in MEMBER_AXES if a in chunk["members"][0]},
    }
    out["step"], out["time"] = steps, times
    out["backend"] = backend_name(xp)
    return out


def run_dmft_chunk(sweep: dict, chunk: dict, progress: bool = True) -> dict:
    """Solve the DMFT for one chunk of grid points, on the simulations' time grid.

    ``sweep`` needs only the keys a DMFT job reads (no grid). A chunk with a ``"design"`` (a
    resolved design spec, :func:`dln_kernels.pipeline.chunks.make_dmft_chunks`) solves the DMFT of
    that design's spectrum, ``solve_dmft(design=designs.design_spectrum(design))``: its exact
    theory for a diagonal design, the spectrum-only theory for a rotated or data design; without
    one, the isotropic theory (no ``design`` keyword: the bits of a sweep without designs). Where the chunk says so
    (``chunk["n_convergence"]``, set by :func:`make_dmft_chunks` from :func:`n_convergence`)
    each solve is repeated with half the paths per replica (same seed;
    ≈ +50 % time) and the N-path bias estimates ``e_train_n_bias``, ``e_test_n_bias`` are added
    and folded into ``*_below_floor`` (:func:`dln_kernels.dmft.solver.mask_n_bias`). The half-N estimate
    cannot be read off the full solve: each replica's paths are driven by that replica's own
    estimates of G, K and M from all its n paths, so a subset of n/2 of them is not a solve with
    n/2 paths, and the replica means share one bias c/n.
    """
    from dln_kernels.dmft.solver import N_BIAS_TOL, half_paths, mask_n_bias, solve_dmft

    cfg = sweep["dmft"]
    grid = time_grid(sweep, chunk)
    n_steps, shared, steps, times = grid.n_steps, grid.dt_schedule, grid.record_steps, grid.times
    points = {a: np.array([axis_value(p, a) for p in chunk["points"]], dtype=_column_type(a)) for a in GRID_AXES}
    if shared is None:  # per-point steps (P, n_steps), the simulator's for the same point
        per_point = np.stack([point_dt_schedule(sweep, {a: points[a][i] for a in GRID_AXES})
                              for i in range(len(chunk["points"]))])
        times = np.stack([step_times(s)[steps] for s in per_point])
    check = bool(chunk.get("n_convergence", False))
    # one solve per depth (the path update depends on it); results go back in the chunk's order
    parts = []
    for L in np.unique(points["depth"]):
        idx = np.nonzero(points["depth"] == L)[0]
        sel = {a: points[a][idx].astype(float) for a in GRID_AXES if a not in ("depth", "dt_scale")}
        if schedule_of(sweep)["kind"] == "constant" and shared is not None:
            steps_kw = {"dt": float(sweep["dt"])}  # as before schedules existed: the same bits
        else:
            steps_kw = {"dt_schedule": shared if shared is not None else per_point[idx]}
        kw = dict(
            n_steps=n_steps, **steps_kw, record_steps=steps,
            prior=sweep["prior"], model=sweep["model"],
            # one random stream for every point of the sweep (common random numbers): a point's
            # result depends on its parameters and the seed only, not on its job or batch-mates
            seed=int(cfg["seed"]),
            backend=sweep["backend"], dtype=sweep["dtype"], n_batches=cfg["n_batches"],
            memory_budget_bytes=cfg["memory_budget_gb"] * 1e9, progress=progress, **_network_kw(sweep, L),
            **_dmft_design_kw(chunk),
        )
        part = solve_dmft(sel, n_paths=cfg["n_paths"], **kw)
        if check:  # only expectations enter the estimate, so the half solve may reuse the seed
            try:
                half = solve_dmft(sel, n_paths=half_paths(cfg["n_paths"], cfg["n_batches"]), **kw)
            except DivergenceError as exc:  # the full solve did not: say which solve and what to do
                raise DivergenceError(f"the convergence-in-N solve with half the paths (dmft.n_convergence) "
                                      f"diverged: {exc}; raise dmft.n_paths or set dmft.n_convergence: false") from exc
            part = mask_n_bias(part, half, float(cfg.get("n_bias_tol", N_BIAS_TOL)))
        parts.append((idx, part))
    res = {}
    # the registry's DMFT observables for this sweep: opt-in ones (alpha_eff) only where the sweep
    # asks, the N-bias estimates only with the convergence-in-N solve; each must be recorded
    names = observables("dmft", steps=("n_convergence",) if check else ()) + opted_in("dmft", sweep)
    missing = [n for n in names if n not in parts[0][1]]
    if missing:
        raise LookupError(f"observable(s) {missing} are registered for the DMFT (registry.OBSERVABLES) but "
                          "solve_dmft does not record them: add them to its outputs (docs/extending.md)")
    for name in names:
        first = parts[0][1][name]
        res[name] = np.empty((len(chunk["points"]), *first.shape[1:]), dtype=first.dtype)
        for idx, part in parts:
            res[name][idx] = part[name]
    out = dict(res)
    for name in opted_in("dmft", sweep):  # in the run dtype, as the solver's other outputs
        out[name] = out[name].astype(resolve_dtype(sweep["dtype"]))
    out["params"] = {a: v for a, v in points.items() if a in chunk["points"][0]}  # as run_chunk
    out["step"], out["time"] = steps, times
    out["backend"] = backend_name(get_namespace(sweep["backend"]))
    return out


def _dmft_design_kw(chunk: dict) -> dict:
    """``{"design": spectrum (d,) float64, mean 1}`` for a DMFT chunk of a design's spectrum
    (``designs.design_spectrum`` of its ``"design"``), else {} (the isotropic solve)."""
    if "design" not in chunk:
        return {}
    from dln_kernels.model.designs import design_spectrum

    return {"design": design_spectrum(chunk["design"])}


DMFT_OBSERVABLES = observables("dmft")


STATIC_VARIABLES = {o.static_key: o.name for o in OBSERVABLES.values() if o.static_key}  # solver key -> variable


def static_on_grid(coords: dict, prior: dict, network: str = "uv") -> dict:
    """Long-time theory on the product of ``coords`` (dict over GRID_AXES, in that order).

    Returns {variable: array shaped like the product}; ``e_test_final``/``e_train_final`` are NaN
    where the solver did not converge (the ``converged`` flag and ``residual`` say where and how far).
    ``network`` ``uv`` uses the depth-2 solver (the depth axis holds 2 only); ``pm`` the depth-L
    one (``static_depth``; λ > 0 with depth ≥ 3 is NaN there: a non-convex penalty).
    """
    from dln_kernels.static.solver import solve_static
    from dln_kernels.static.depth import solve_static_depth

    mesh = dict(zip(GRID_AXES, np.meshgrid(*(np.asarray(coords[a], dtype=float) for a in GRID_AXES), indexing="ij")))
    for a in GRID_AXES:  # axes the long-time theory does not read (e.g. the batch fraction: the
        if STATIC not in AXES[a].stages:  # gradient-flow limit is the same for every b)
            mesh.pop(a)
    if network == "pm":
        res = solve_static_depth(**mesh, prior=prior)  # axes by name
    else:
        if np.any(mesh.pop("depth") != 2):
            raise ValueError("static_on_grid: network uv has depth 2 only")
        res = solve_static(**mesh, prior=prior)
    out = {STATIC_VARIABLES[k]: v for k, v in res.items() if k in STATIC_VARIABLES}
    bad = ~out["converged"]
    for name in ("e_test_final", "e_train_final"):
        out[name] = np.where(bad, np.nan, out[name])
    return out


def static_grids(sweep: dict) -> dict:
    """The grids the static rule evaluates: the sweep's own, and two dense ones.

    ``alpha_delta``: dense log α × dense δ at the sweep's ρ, σ, λ (phase diagram);
    ``delta_rho``: dense δ × dense ρ at the sweep's α, σ, λ (recovery diagram).
    """
    g, st = sweep["grid"], sweep["static"]
    own = {a: sorted(g.get(a, AXES[a].default)) for a in GRID_AXES}  # an implicit axis may be absent
    # The dense axes also hold the sweep's own values, so simulations are compared with the
    # theory at exactly their parameters (no nearest-neighbour look-up).
    dense_alpha = np.union1d(np.geomspace(*st["alpha_range"], st["n_alpha"]), own["alpha"])
    dense_delta = np.union1d(np.linspace(*st["delta_range"], st["n_delta"]), own["delta"])
    dense_rho = np.union1d(np.linspace(*st["rho_range"], st["n_rho"]), own["rho"])
    return {
        "grid": own,
        "alpha_delta": {**own, "alpha": dense_alpha, "delta": dense_delta},
        "delta_rho": {**own, "delta": dense_delta, "rho": dense_rho},
    }
