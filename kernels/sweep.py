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

from .backend import get_namespace, resolve_dtype
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
    out["backend"] = "cupy" if xp.__name__.startswith("cupy") else "numpy"
    return out
