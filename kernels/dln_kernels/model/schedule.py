"""Step schedules, output times, and the step-size stability bound.

Conventions shared by the simulator and the theory: the state after k gradient steps is β_k,
k = 0 … n_steps, and the time of state k is t_k = Σ_{j<k} dt_j (t_0 = 0). Observables are
recorded at a subset of the k (``output_steps``), always including k = 0 and k = n_steps.
"""

from __future__ import annotations

import math

import numpy as np

from dln_kernels.model.priors import max_magnitude, prior_of


def n_steps_for(t_max: float, dt: float) -> int:
    """Number of constant steps of size ``dt`` that reach ``t_max`` (at least 1)."""
    return max(1, int(round(t_max / dt)))


def output_steps(n_steps: int, n_times: int = 60, spacing: str = "log") -> np.ndarray:
    """Sorted unique step indices in [0, n_steps], including both ends.

    ``log``: roughly geometric in k (k = 1 … n_steps) plus k = 0; ``linear``: evenly spaced.
    Fewer than ``n_times`` indices come back when the log grid would repeat small integers.
    """
    if n_times < 2:
        raise ValueError(f"output.n_times: need at least 2, got {n_times}")
    if spacing == "log":
        ks = np.unique(np.round(np.geomspace(1, n_steps, n_times - 1)).astype(np.int64))
        ks = np.concatenate([[0], ks])
    elif spacing == "linear":
        ks = np.unique(np.round(np.linspace(0, n_steps, n_times)).astype(np.int64))
    else:
        raise ValueError(f"output.spacing: unknown value {spacing!r}; expected 'log' or 'linear'")
    ks[-1] = n_steps
    return np.unique(ks)


def step_times(dt_schedule: np.ndarray) -> np.ndarray:
    """t_k for k = 0 … len(dt_schedule)."""
    return np.concatenate([[0.0], np.cumsum(dt_schedule)])


def hessian_edge(delta: float) -> float:
    """Largest eigenvalue of XᵀX/δ for d → ∞ (Marchenko–Pastur edge): (1 + 1/√δ)²."""
    return (1.0 + 1.0 / math.sqrt(delta)) ** 2


def network_metric(network: str, alpha: float, magnitude: float, depth: int = 2) -> float:
    """The metric (∂β/∂u)² + (∂β/∂v)² of a coordinate learned to |β| = ``magnitude``, an upper
    estimate along the flow (docs/theory.md §6): network ``uv`` √(c² + 4β²) ≤ α² + 2|β| (c = α²);
    ``pm`` of depth L: L²((|β| + α^L)^{(2L−2)/L} + α^{2L−2}), since v ≤ α on the learned side
    gives u^L ≤ |β| + α^L (for L = 2: 4|β| + 8α², the uv estimate at α_uv = 2α)."""
    if network == "pm":
        L = int(depth)
        return L * L * ((magnitude + alpha**L) ** ((2 * L - 2) / L) + alpha ** (2 * L - 2))
    return alpha**2 + 2.0 * magnitude


def curvature_scale(model: str, alpha: float, delta: float, weight_decay: float, prior: dict,
                    network: str = "uv", depth: int = 2, batch_fraction: float = 1.0, n_draws: float | None = None) -> float:
    """Estimate of the largest curvature the iteration meets.

    Mini-batch SGD (theory.md §5.1, batch fraction b): the step-k gradient is that of the
    sub-problem of the |S| ≈ b·n selected rows, scaled by 1/(bδ): its data Hessian
    X_Sᵀ X_S/(bδ) has rows N(0, 1/d) at sample ratio |S|/d = bδ, so its top eigenvalue is the
    Marchenko–Pastur edge at bδ, (1 + 1/√(bδ))², instead of (1 + 1/√δ)². Every formula below
    takes H = hessian_edge(b·δ): each step is then a stable GD step of its own mini-batch
    problem. (Fixed-size batches: |S|/d = round(b n)/d, the same to O(1/n).) This is stricter
    than the lazy mean-square estimate of theory.md §5 Remarks, dt·w/(bδ) ≲ 2, since
    (1 + 1/√(bδ))² > 1/(bδ); for b = 1 it is the full-batch bound.

    Linear model: the top of the data Hessian, (1 + 1/√δ)², plus λ. DLN: the bulk, H times the
    metric (:func:`network_metric`) at the teacher's typical magnitude b (``max_magnitude``: 1 for
    the Gaussian), plus λ.

    ``n_draws`` (the nonzero teacher coordinates that run: ρ·d·seeds in simulation, ρ·n_paths in
    the DMFT) adds the tail: the largest of them, |β*| ≈ ``Prior.largest_of(n_draws)``, meets the
    metric at that magnitude times the diagonal of the data Hessian, ‖x_{S,i}‖²/(bδ) ≈ 1 (one
    coordinate sees the diagonal, not the edge H of the bulk). The curvature is then the larger
    of the two. For a bounded prior the tail is its exact maximum. Source and measurements:
    docs/dmft.md "Step sizes and the teacher's tail".
    """
    h = hessian_edge(batch_fraction * delta)
    if model == "linear":
        return h + weight_decay
    bulk = h * network_metric(network, alpha, max_magnitude(prior), depth)
    if n_draws is None:
        return bulk + weight_decay
    tail = network_metric(network, alpha, prior_of(prior).largest_of(n_draws), depth)
    return max(bulk, tail) + weight_decay


def stability_bound(model: str, alpha: float, delta: float, weight_decay: float, prior: dict,
                    network: str = "uv", depth: int = 2, batch_fraction: float = 1.0, n_draws: float | None = None) -> float:
    """Largest stable constant step, 2 / curvature (gradient descent diverges beyond it); for
    mini-batch SGD with batch fraction b the curvature of a b·δ mini-batch, with ``n_draws`` that
    of the largest of that many nonzero teacher draws too (see :func:`curvature_scale`)."""
    return 2.0 / curvature_scale(model, alpha, delta, weight_decay, prior, network, depth, batch_fraction, n_draws)


# ----------------------------------------------------------------------------------------------
# step schedules of a sweep (config key ``schedule``; docs/file_formats.md "Time axis")
# ----------------------------------------------------------------------------------------------
SCHEDULE_KINDS = {
    # kind: (required keys, optional keys)
    "constant": ((), ()),
    "alpha_rule": (("c", "b"), ("cap", "n_steps")),
    "geometric": (("dt0", "ratio"), ("dt_max",)),
    "piecewise": (("segments",), ()),
}
DEFAULT_SCHEDULE = {"kind": "constant"}
RULE_CAP = 0.9  # alpha_rule: at most this fraction of the point's stability bound


def check_schedule(spec: dict, key: str = "schedule") -> dict:
    """The schedule ``spec`` with its kind's defaults, or ValueError naming ``key`` and the value.

    Kinds (all step sizes in the sweep's time units):

    - ``constant``: dt_k = ``dt`` (the sweep key) for every k, n_steps = round(t_max/dt);
    - ``alpha_rule``: per point dt = min(c/(α² + b), cap·bound(point)), a dimensionless rule that
      follows the time scale of the dynamics, 1/α² in the lazy phase and O(1) in the search phase
      (docs/phenomena.md a–b), held below the point's stability bound (:func:`stability_bound`;
      ``cap`` default 0.9); n_steps common to all points (``n_steps``, default
      round(t_max/dt) of the sweep keys), so each point ends at its own t_max = n_steps·dt;
    - ``geometric``: dt_k = min(dt0·ratio^k, dt_max) until t_max (the last step is shortened to
      end on t_max); the same for every point;
    - ``piecewise``: ``segments`` [{until: t_end, dt: step}, …] with increasing t_end: steps of
      dt until t_end (the last step of a segment is shortened to end on t_end); the last t_end
      is t_max.
    """
    if not isinstance(spec, dict) or spec.get("kind") not in SCHEDULE_KINDS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise ValueError(f"{key}.kind: unknown value {kind!r}; expected one of {sorted(SCHEDULE_KINDS)}")
    need, opt = SCHEDULE_KINDS[spec["kind"]]
    for k in spec:
        if k != "kind" and k not in need + opt:
            raise ValueError(f"{key}.{k}: not a key of schedule kind {spec['kind']!r} (keys: {list(need + opt)})")
    for k in need:
        if k not in spec:
            raise ValueError(f"{key}.{k}: required by schedule kind {spec['kind']!r}")
    out = dict(spec)
    for k in ("c", "b", "cap", "dt0", "ratio", "dt_max"):
        if k in out:
            v = out[k]
            ok = isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 if k != "b" else v >= 0)
            if not ok or (k == "cap" and v > 1) or (k == "ratio" and v < 1):
                rule = {"cap": "in (0, 1]", "ratio": ">= 1", "b": ">= 0"}.get(k, "> 0")
                raise ValueError(f"{key}.{k}: {v!r} must be a finite number {rule}")
    if "n_steps" in out and not (isinstance(out["n_steps"], int) and out["n_steps"] >= 1):
        raise ValueError(f"{key}.n_steps: {out['n_steps']!r} must be an integer >= 1")
    if out["kind"] == "alpha_rule":
        out.setdefault("cap", RULE_CAP)
    if out["kind"] == "piecewise":
        seg = out["segments"]
        try:
            arr = np.array([[float(x["until"]), float(x["dt"])] for x in seg]) if seg else np.empty((0, 2))
        except (TypeError, ValueError, KeyError):
            arr = np.empty((0, 2))
        if len(arr) == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(np.diff(arr[:, 0]) <= 0):
            raise ValueError(f"{key}.segments: {seg!r} must be a list of {{until: t_end, dt: step}}, positive, "
                             "with increasing until")
    return out


def is_per_point(schedule: dict) -> bool:
    """Whether the step sizes depend on the grid point (then every point has its own time axis)."""
    return schedule["kind"] == "alpha_rule"


def shared_dt_schedule(schedule: dict, dt: float, t_max: float) -> np.ndarray:
    """The step sizes (n_steps,) of a schedule that is the same for every point.

    ``dt``, ``t_max``: the sweep keys. constant: round(t_max/dt) steps of dt (exactly today's
    grid); geometric and piecewise: steps until t_max, the last one shortened to land on it.
    """
    kind = schedule["kind"]
    if kind == "constant":
        return np.full(n_steps_for(t_max, dt), float(dt))
    if kind == "geometric":
        dt0, r, cap = float(schedule["dt0"]), float(schedule["ratio"]), float(schedule.get("dt_max", math.inf))
        if r == 1.0:
            k = int(math.ceil(t_max / min(dt0, cap) - 1e-9))
            steps = np.full(k, min(dt0, cap))
        else:  # dt0 r^k < cap for k < k_cap, then cap
            k_cap = int(math.floor(math.log(cap / dt0) / math.log(r))) + 1 if cap < math.inf else 10**9
            k_geo = int(math.ceil(math.log1p(t_max * (r - 1) / dt0) / math.log(r)))  # geometric sum ≥ t_max
            if k_geo <= k_cap:
                steps = dt0 * r ** np.arange(k_geo)
            else:
                geo = dt0 * r ** np.arange(k_cap)
                rest = t_max - geo.sum()
                steps = np.concatenate([geo, np.full(max(1, int(math.ceil(rest / cap - 1e-9))), cap)])
        return _land_on(steps, t_max)
    if kind == "piecewise":
        parts, t0 = [], 0.0
        for seg in schedule["segments"]:
            t_end, h = float(seg["until"]), float(seg["dt"])
            span = t_end - t0
            parts.append(_land_on(np.full(max(1, int(math.ceil(span / float(h) - 1e-9))), float(h)), span))
            t0 = float(t_end)
        return np.concatenate(parts)
    raise ValueError(f"schedule.kind: {kind!r} is per point; use point_dt")


def _land_on(steps: np.ndarray, t_end: float) -> np.ndarray:
    """``steps`` with trailing steps dropped / the last one shortened so that they sum to t_end."""
    steps = np.asarray(steps, dtype=float)
    cum = np.cumsum(steps)
    k = int(np.searchsorted(cum, t_end * (1 - 1e-12)))  # first index with cum ≥ t_end
    steps = steps[: k + 1].copy()
    steps[-1] = t_end - (cum[k - 1] if k > 0 else 0.0)
    return steps


def rule_dt(schedule: dict, alpha: float, bound: float) -> float:
    """dt of one point under ``alpha_rule``: min(c/(α² + b), cap·bound)."""
    return min(float(schedule["c"]) / (alpha * alpha + float(schedule["b"])), float(schedule["cap"]) * bound)
