"""From a validated sweep configuration to runs, chunks, and checks that need more than a schema.

A sweep's runs are the product of its grid axes and its seeds. Runs with the same (δ, seed) form
a *data group*: they share X, ξ and the teacher noise. A *chunk* (one simulation job, one HDF5
file) is either several whole groups at one δ, or a slice of one large group, so every chunk is
a rectangular (G instances × b members) stack for the simulator.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .backend import backend_name, get_namespace, resolve_dtype
from .dln_state import alpha_min
from .priors import validate_prior
from .problem import draw_instance
from .schedule import n_steps_for, output_steps, stability_bound
from .simulate import simulate_members

GRID_AXES = ("alpha", "delta", "rho", "sigma", "weight_decay")
MEMBER_AXES = ("rho", "sigma", "alpha", "weight_decay")  # varied inside a data group


class ConfigError(ValueError):
    """A configuration value the pipeline cannot run with; the message names key and value."""


def check_sweep(name: str, sweep: dict) -> None:
    """Checks beyond the JSON schema; raise ConfigError naming the key and the value."""
    key = f"sweeps.{name}"
    try:
        validate_prior(sweep["prior"])
    except ValueError as exc:
        raise ConfigError(f"{key}.{exc}") from None
    grid = sweep["grid"]
    dt = float(sweep["dt"])
    if sweep["t_max"] < dt:
        raise ConfigError(f"{key}.t_max: {sweep['t_max']} is shorter than one step dt={dt}")
    a_min = alpha_min(sweep["dtype"]) if sweep["model"] == "dln" else 0.0
    if min(grid["alpha"]) < a_min:
        raise ConfigError(
            f"{key}.grid.alpha: {min(grid['alpha'])} is below {a_min:.2g}, the smallest alpha the "
            f"DLN state keeps exact in {sweep['dtype']} (alpha**2 must stay a normal number); use "
            f"alpha >= {a_min:.2g}" + (" or dtype: float64 (down to 1.5e-153)" if sweep["dtype"] == "float32" else "")
        )
    alpha_max = max(grid["alpha"])
    wd_max = max(grid["weight_decay"])
    for delta in grid["delta"]:
        bound = stability_bound(sweep["model"], alpha_max, delta, wd_max, sweep["prior"])
        if dt > bound:
            raise ConfigError(
                f"{key}.dt: {dt} exceeds the stability bound {bound:.4g} for the largest "
                f"alpha={alpha_max}, delta={delta}, weight_decay={wd_max} "
                f"(model={sweep['model']}); use dt <= {bound:.3g} or a smaller alpha"
            )
    if sweep["dmft"]["enabled"]:
        check_dmft(key, sweep)


def check_dmft(key: str, sweep: dict) -> None:
    """A DMFT solve holds T×T matrices: refuse, before compute, one that exceeds its budget."""
    from .dmft import memory_bytes

    cfg = sweep["dmft"]
    n_steps = time_grid(sweep)[0]
    need = memory_bytes(1, cfg["n_paths"], n_steps, cfg["n_batches"], sweep["dtype"])
    if need > cfg["memory_budget_gb"] * 1e9:
        raise ConfigError(
            f"{key}.dmft.memory_budget_gb: {cfg['memory_budget_gb']} GB is less than the "
            f"{need / 1e9:.3g} GB one DMFT point needs with n_steps={n_steps} (t_max/dt), "
            f"n_paths={cfg['n_paths']}, n_batches={cfg['n_batches']}; the solver holds O(n_paths·T + "
            f"n_batches·T²) numbers: shorten t_max, enlarge dt or raise the budget"
        )


def time_grid(sweep: dict):
    """(n_steps, dt schedule, record_steps, record times) of a sweep."""
    n_steps = n_steps_for(sweep["t_max"], sweep["dt"])
    dt_schedule = np.full(n_steps, float(sweep["dt"]))
    steps = output_steps(n_steps, sweep["output"]["n_times"], sweep["output"]["spacing"])
    return n_steps, dt_schedule, steps, steps * float(sweep["dt"])


def members(sweep: dict) -> list:
    """All (ρ, σ, α, λ) combinations of a data group, in a fixed order."""
    g = sweep["grid"]
    return [list(m) for m in itertools.product(*(g[a] for a in MEMBER_AXES))]


def make_chunks(sweep: dict) -> list:
    """Chunks of at most ``chunk_size`` runs (when a group is not larger), JSON-serialisable.

    Each chunk is {"index", "delta", "seeds": [...], "members": [[ρ, σ, α, λ], ...]}.
    """
    mem = members(sweep)
    size = int(sweep["chunk_size"])
    seeds = list(range(int(sweep["seeds"])))
    chunks = []
    for delta in sweep["grid"]["delta"]:
        if len(mem) <= size:
            per = max(1, size // len(mem))
            for i in range(0, len(seeds), per):
                chunks.append({"delta": delta, "seeds": seeds[i : i + per], "members": mem})
        else:
            n_pieces = math.ceil(len(mem) / size)
            piece = math.ceil(len(mem) / n_pieces)
            for s in seeds:
                for i in range(0, len(mem), piece):
                    chunks.append({"delta": delta, "seeds": [s], "members": mem[i : i + piece]})
    for i, c in enumerate(chunks):
        c["index"] = i
    return chunks


def run_chunk(sweep: dict, chunk: dict, progress_every: float | None = 10.0) -> dict:
    """Simulate one chunk. Returns per-run parameter columns and (runs, times) observables."""
    xp = get_namespace(sweep["backend"])
    _, dt_schedule, steps, times = time_grid(sweep)
    rows = np.asarray(chunk["members"], dtype=float)
    instances = [draw_instance(sweep["d"], s, sweep["base_seed"]) for s in chunk["seeds"]]
    res = simulate_members(
        xp, instances, [rows] * len(instances), model=sweep["model"], delta=chunk["delta"],
        prior=sweep["prior"], dt_schedule=dt_schedule, record_steps=steps,
        dtype=resolve_dtype(sweep["dtype"]), save_beta=sweep["save_beta"],
        progress_every=progress_every,
    )
    n_runs = len(instances) * len(rows)
    out = {name: arr.reshape(n_runs, *arr.shape[2:]) for name, arr in res.items()}
    out["params"] = {
        "seed": np.repeat(np.asarray(chunk["seeds"], dtype=np.int64), len(rows)),
        "delta": np.full(n_runs, float(chunk["delta"])),
        **{a: np.tile(rows[:, j], len(instances)) for j, a in enumerate(MEMBER_AXES)},
    }
    out["step"], out["time"] = steps, times
    out["backend"] = backend_name(xp)
    return out


def dmft_points(sweep: dict) -> list:
    """All grid points of a sweep as [α, δ, ρ, σ, λ] lists, in a fixed order."""
    g = sweep["grid"]
    return [list(p) for p in itertools.product(*(g[a] for a in GRID_AXES))]


def make_dmft_chunks(sweep: dict) -> list:
    """DMFT jobs: {"index", "points": [[α, δ, ρ, σ, λ], ...]} of ``dmft.points_per_job`` points."""
    pts = dmft_points(sweep)
    per = int(sweep["dmft"]["points_per_job"])
    return [{"index": i, "points": pts[j : j + per]} for i, j in enumerate(range(0, len(pts), per))]


def run_dmft_chunk(sweep: dict, chunk: dict, progress: bool = True) -> dict:
    """Solve the DMFT for one chunk of grid points, on the simulations' time grid."""
    from .dmft import solve_dmft

    cfg = sweep["dmft"]
    n_steps, _, steps, times = time_grid(sweep)
    pts = np.asarray(chunk["points"], dtype=float)
    points = {a: pts[:, j] for j, a in enumerate(GRID_AXES)}
    res = solve_dmft(
        points, n_steps=n_steps, dt=float(sweep["dt"]), record_steps=steps, n_paths=cfg["n_paths"],
        prior=sweep["prior"], model=sweep["model"],
        seed=int(cfg["seed"]) * 100_003 + int(chunk["index"]),  # one stream per job
        backend=sweep["backend"], dtype=sweep["dtype"], n_batches=cfg["n_batches"],
        memory_budget_bytes=cfg["memory_budget_gb"] * 1e9, progress=progress,
    )
    out = {name: res[name] for name in DMFT_OBSERVABLES if name in res}
    out["params"] = points
    out["step"], out["time"] = steps, times
    out["backend"] = backend_name(get_namespace(sweep["backend"]))
    return out


DMFT_OBSERVABLES = (
    "e_train", "e_test", "e_train_se", "e_test_se", "e_train_floor", "e_train_below_floor",
    "e_test_floor", "e_test_below_floor", "decay_rate", "decay_rate_se", "decay_rate_spectral",
)


STATIC_VARIABLES = {  # solver output -> Dataset variable
    "e_test": "e_test_final", "e_train": "e_train_final", "tau": "tau", "gamma": "gamma",
    "theta": "theta", "frac_active": "frac_active", "converged": "converged", "residual": "residual",
}


def static_on_grid(coords: dict, prior: dict) -> dict:
    """Long-time theory on the product of ``coords`` (dict over GRID_AXES, in that order).

    Returns {variable: array shaped like the product}; ``e_test_final``/``e_train_final`` are NaN
    where the solver did not converge (the ``converged`` flag and ``residual`` say where and how far).
    """
    from .static import solve_static

    mesh = np.meshgrid(*(np.asarray(coords[a], dtype=float) for a in GRID_AXES), indexing="ij")
    res = solve_static(*mesh, prior=prior)
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
    own = {a: sorted(g[a]) for a in GRID_AXES}
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
