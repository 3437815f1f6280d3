"""From a checked sweep to its jobs: simulation chunks and DMFT chunks, named by content.

A sweep's runs are the product of its grid axes and its seeds. Runs with the same (δ, seed) form
a *data group*: they share X, ξ and the teacher noise. A *chunk* (one simulation job, one HDF5
file) is either several whole groups at one δ, or a slice of one large group, so every chunk is
a rectangular (G instances × b members) stack for the simulator. A chunk's name is a hash of what
it computes, so inserting, removing or reordering grid values re-runs only new chunks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math

from dln_kernels.model.designs import ISOTROPIC, flat_spectrum, is_default, resolve_designs
from dln_kernels.model.problem import n_samples
from dln_kernels.pipeline.cost import COST
from dln_kernels.pipeline.timegrid import n_steps_of
from dln_kernels.registry import AXES, CHUNK_AXES, GRID_AXES, MEMBER_AXES, implicit


def designs_of(sweep: dict) -> list | None:
    """The sweep's resolved designs (``designs.resolve_designs``), or None for the default design
    (one i.i.d. Gaussian at the sweep's d: chunks, names and files exactly as before designs)."""
    return None if is_default(sweep.get("design")) else resolve_designs(sweep)


def design_dims(sweep: dict) -> list:
    """The dimension d of each of the sweep's designs, in order ([the sweep's d] for the default)."""
    return [int(x["d"]) for x in designs_of(sweep) or []] or [int(sweep["d"])]


def chunk_d(sweep: dict, chunk: dict) -> int:
    """The dimension d of a simulation chunk: its design's (data designs fix it), else the sweep's."""
    return int(chunk["design"]["d"]) if "design" in chunk else int(sweep["d"])


def sim_chunk_bytes(sweep: dict, chunk: dict) -> int:
    """Bytes one simulation chunk holds (G seeds × b members, n = round(δ·d) rows):
    8 · (G·n·d + 8·G·d·b + 2·G·n·b), i.e. the design, ~8 run-sized arrays and y/residuals.

    8 bytes whatever the run ``dtype``: the host draws the data in float64 (problem.py) before
    rounding, so float32 saves device memory but not host memory.
    """
    g, b, d = len(chunk["seeds"]), len(chunk["members"]), chunk_d(sweep, chunk)
    n = n_samples(chunk["delta"], d)
    return 8 * (g * n * d + 8 * g * d * b + 2 * g * n * b)


def explicit_axes(sweep: dict, names=GRID_AXES) -> tuple:
    """The axes of ``names`` that chunk contents hold: all but those at an implicit default
    (``registry.implicit``: a newer axis such as batch_fraction at [1.0] is left out, so sweeps
    written before it keep their chunk names, job params and bits)."""
    g = sweep["grid"]
    return tuple(a for a in names if not implicit(a, g.get(a, AXES[a].default)))


def axis_value(record: dict, axis: str):
    """A chunk record's value of ``axis``, the registry default for an implicit one."""
    return record[axis] if axis in record else AXES[axis].default[0]


def members(sweep: dict) -> list:
    """The runs of a data group, [{axis: value}] by axis name: every combination of the member
    axes' sorted values (the order in which grid values are written does not matter); axes at an
    implicit default are left out (:func:`explicit_axes`)."""
    g = sweep["grid"]
    names = explicit_axes(sweep, MEMBER_AXES)
    return _records(names, itertools.product(*(sorted(g[a]) for a in names)))


def _records(names, rows) -> list:
    """Rows of values (tuples in the order of ``names``) as dicts by name."""
    return [dict(zip(names, r)) for r in rows]


def _fmt(x) -> str:
    """A grid value for a file name: shortest round-trip repr, filesystem-safe ('0.5', '1e-10')."""
    return repr(float(x)).replace("+", "")


def chunk_name(chunk: dict) -> str:
    """Readable, content-derived file stem of a chunk: what it computes names it.

    ``delta0.5_seeds0-2_<hash>`` for simulation chunks (``NAME_delta…`` with a design named NAME),
    ``points<P>_<hash>`` for DMFT chunks (``NAME_points…`` for the DMFT of design NAME's spectrum,
    :func:`make_dmft_chunks`); the 8-hex hash is of the canonical JSON of the chunk without its name, so inserting, removing or
    reordering other grid values never renames (and so never re-runs) a chunk.
    """
    body = {k: v for k, v in chunk.items() if k != "name"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    design = f"{chunk['design']['name']}_" if "design" in chunk else ""
    if "points" in chunk:
        return f"{design}points{len(chunk['points'])}_{digest}"
    seeds = chunk["seeds"]
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    return f"{design}delta{_fmt(chunk['delta'])}_seeds{span}_{digest}"


def _pieces(axes_values: list, size: int) -> list:
    """Split the product of ``axes_values`` (list of sorted value lists) into sub-products of at
    most ``size`` elements, each fixing the values of a leading prefix of the axes.

    The prefix is the shortest one whose remaining product fits, so every piece is identified by
    its prefix values: adding a value to an axis inside the prefix adds pieces and leaves the
    others untouched (a flat slicing of the product would shift every later piece).
    """
    for cut in range(len(axes_values) + 1):
        rest = math.prod(len(v) for v in axes_values[cut:])
        if rest <= size:
            break
    pieces = []
    for prefix in itertools.product(*axes_values[:cut]):
        pieces.append([list(prefix) + list(r) for r in itertools.product(*axes_values[cut:])])
    return pieces


def _chunk_points(sweep: dict):
    """The values that fix a simulation chunk, {chunk axis: value} (+ ``"design"`` where the sweep
    lists designs), in the order of the chunks."""
    g = sweep["grid"]
    for design, fixed in itertools.product(designs_of(sweep) or [None], itertools.product(*(sorted(g[a]) for a in CHUNK_AXES))):
        yield dict(zip(CHUNK_AXES, fixed)) | ({"design": design} if design else {})


def _power_of_two_at_most(x: float) -> int:
    """The largest power of two ≤ x, at least 1: automatic sizes move in steps of 2, so a small
    change of t_max or of the cost model does not re-cut every chunk."""
    return 1 if x < 2 else 2 ** int(math.floor(math.log2(x)))


def runs_per_job(sweep: dict, at: dict) -> int:
    """Runs per simulation job at the chunk values ``at`` (δ, depth, design): ``chunk_size``, or
    for ``chunk_size: auto`` the most runs (a power of two) whose estimated time
    (``cost.COST.sim_run_seconds`` at this δ and d) fits ``job_minutes`` and whose memory
    (:func:`sim_chunk_bytes`) fits ``memory_budget_gb``. Per δ, so adding a δ value adds its chunks
    and leaves the others (and their names) as they are."""
    if sweep["chunk_size"] != "auto":
        return int(sweep["chunk_size"])
    d = int(at["design"]["d"]) if "design" in at else int(sweep["d"])
    per_run = COST.sim_run_seconds(n_samples(at["delta"], d), d, n_steps_of(sweep))
    size = _power_of_two_at_most((60.0 * float(sweep["job_minutes"]) - COST.job_start_s) / max(per_run, 1e-12))
    n_members = math.prod(len(sweep["grid"][a]) for a in explicit_axes(sweep, MEMBER_AXES))
    while size > 1:
        g, b = (max(1, size // n_members), n_members) if size >= n_members else (1, size)
        shape = {**at, "seeds": [0] * g, "members": [None] * b}
        if sim_chunk_bytes(sweep, shape) <= float(sweep["memory_budget_gb"]) * 1e9:
            break
        size //= 2
    return size


def points_per_job(sweep: dict) -> int:
    """DMFT points per job: ``dmft.points_per_job``, or for ``auto`` the most points (a power of
    two) whose estimated time (``cost.COST.dmft_point_seconds``, ×1.5 with the convergence-in-N
    solve) fits ``job_minutes`` (the solver batches points to stay within its memory budget)."""
    cfg = sweep["dmft"]
    if cfg["points_per_job"] != "auto":
        return int(cfg["points_per_job"])
    paths = cfg["n_paths"] * (1.5 if n_convergence(sweep) else 1.0)
    per_point = COST.dmft_point_seconds(paths, n_steps_of(sweep) + 1)
    return _power_of_two_at_most((60.0 * float(sweep["job_minutes"]) - COST.job_start_s) / max(per_point, 1e-12))


def make_chunks(sweep: dict) -> list:
    """Simulation chunks of at most :func:`runs_per_job` runs (when a group is not larger), JSON-able.

    Each chunk is {"name", <chunk axes> (δ: one value each), "seeds": [...], "members": [{axis:
    value}]}: several whole data groups at one δ (consecutive seeds), or, for groups larger than
    ``chunk_size``, one seed and a sub-product of the member axes (see :func:`_pieces`). ``name``
    is derived from the content (:func:`chunk_name`). A sweep with designs other than the default
    has the chunks of every design, each with its resolved ``"design"`` (a data-group property:
    the design fixes X and d); the default design adds no key, so its chunks are as before.
    """
    g = sweep["grid"]
    names = explicit_axes(sweep, MEMBER_AXES)
    axes = [sorted(g[a]) for a in names]
    n_members = math.prod(len(v) for v in axes)
    seeds = list(range(int(sweep["seeds"])))
    chunks = []
    for at in _chunk_points(sweep):
        size = runs_per_job(sweep, at)
        if n_members <= size:
            per = max(1, size // n_members)
            for i in range(0, len(seeds), per):
                chunks.append({**at, "seeds": seeds[i : i + per], "members": members(sweep)})
        else:
            for s in seeds:
                for piece in _pieces(axes, size):
                    chunks.append({**at, "seeds": [s], "members": _records(names, piece)})
    for c in chunks:
        c["name"] = chunk_name(c)
    return chunks


def make_dmft_chunks(sweep: dict) -> list:
    """DMFT jobs: {"name", "points": [{axis: value}]}, sub-products of the grid of at most
    ``dmft.points_per_job`` points (see :func:`_pieces`), named by content. Axes with
    ``splits_dmft`` (the depth) lead the prefix, so a job holds one value of them where it can.

    Once per entry of :func:`dmft_designs`: the isotropic chunks (no ``"design"`` key: those of a
    sweep without designs, names and params unchanged) and, per design whose spectrum is not flat,
    the same pieces with its resolved ``"design"`` (the job solves the DMFT of its
    ``designs.design_spectrum``)."""
    g = sweep["grid"]
    # axes the DMFT solves one value at a time go first, so a job's points share one solve
    # (with one value, as in every depth-2 sweep, the pieces and their order are unchanged)
    order = sorted(explicit_axes(sweep), key=lambda a: not AXES[a].splits_dmft)
    pieces = _pieces([sorted(g[a]) for a in order], points_per_job(sweep))
    chunks = []
    for design in dmft_designs(sweep):
        for p in pieces:
            c = {"points": _records(order, p)} | ({"design": design} if design is not None else {})
            if n_convergence(sweep):  # a property of the sweep (its grid), which DMFT jobs do not read
                c["n_convergence"] = True  # absent otherwise: such sweeps keep their chunk names and params
            c["name"] = chunk_name(c)
            chunks.append(c)
    return chunks


def dmft_designs(sweep: dict) -> list:
    """The DMFTs a sweep solves, one set of chunks each: ``None`` (the isotropic theory, always)
    and each of the sweep's resolved designs whose spectrum is not flat
    (``designs.flat_spectrum``); a design with a flat spectrum (Gaussian, ZCA-whitened) shares
    the isotropic chunks (its spectrum DMFT is that solve). ``dmft.spectra: false``: the isotropic
    theory only (and :func:`spectra` false). Cheap: no pool is built."""
    if not spectra(sweep):
        return [None]
    return [None] + [des for des in designs_of(sweep) or [] if not flat_spectrum(des)]


def spectra(sweep: dict) -> bool:
    """Whether the sweep's DMFT solves its designs' spectra (a sweep over designs, ``dmft.spectra``
    not false): then dmft.nc has a ``design`` dim (:func:`dmft_design_labels`)."""
    return not is_default(sweep.get("design")) and sweep.get("dmft", {}).get("spectra", True) is not False


def dmft_design_labels(sweep: dict) -> list:
    """Labels of the ``design`` coordinate of dmft.nc for a sweep over designs: the design names
    in the sweep's order, then :data:`ISOTROPIC`. Needs no ``d`` (as ``designs.design_names``)."""
    from dln_kernels.model.designs import design_names

    return design_names(sweep) + [ISOTROPIC]


def dmft_chunk_labels(sweep: dict, design: str | None) -> list:
    """The labels of :func:`dmft_design_labels` a DMFT chunk fills: ``[design]`` for a chunk of a
    design's spectrum (its name), else (``None``: an isotropic chunk) :data:`ISOTROPIC` after the
    names of the designs with a flat spectrum. ``sweep`` needs ``design`` (and ``d`` where a
    design's resolution needs it)."""
    if design is not None:
        return [design]
    flat = [des["name"] for des in resolve_designs({"d": 2, **sweep}) if flat_spectrum(des)]
    return flat + [ISOTROPIC]


def n_convergence(sweep: dict) -> bool:
    """Whether the sweep's DMFT also checks convergence in N (``dmft.n_convergence``; absent: true
    exactly when the grid holds a batch fraction b < 1). Then every DMFT point is solved a second
    time with half the paths per replica and ``*_below_floor`` also masks the values whose N-path
    bias estimate E(N/2) − E(N) exceeds ``dmft.n_bias_tol`` (default
    :data:`dln_kernels.dmft.solver.N_BIAS_TOL`) of the value (:func:`dln_kernels.dmft.solver.mask_n_bias`).
    Full-batch sweeps keep their single solve (and their job params and bits) unless they ask.
    Reads the whole sweep (its grid); a DMFT job learns the answer from its chunk
    (:func:`make_dmft_chunks` sets ``chunk["n_convergence"]``)."""
    cfg = sweep["dmft"]
    if cfg.get("n_convergence") is not None:
        return bool(cfg["n_convergence"])
    return min(float(b) for b in sweep["grid"].get("batch_fraction", AXES["batch_fraction"].default)) < 1


# ----------------------------------------------------------------------------------------------
# counts without enumeration: a plan (and a budget check) must not build a huge list first
# ----------------------------------------------------------------------------------------------
def _cut(lengths: list, size: int) -> int:
    """The prefix length :func:`_pieces` cuts the product of axes of these ``lengths`` at."""
    for cut in range(len(lengths) + 1):
        if math.prod(lengths[cut:]) <= size:
            return cut
    return len(lengths)


def sim_layout(sweep: dict) -> dict:
    """The simulation chunks of a sweep, counted, not built (the arithmetic of :func:`make_chunks`):
    ``runs``, ``jobs``, and ``largest``, a chunk-shaped dict of the chunk that needs the most
    memory (its δ and design, G seeds and b members as lists of that length) for :func:`sim_chunk_bytes`."""
    lengths = [len(sweep["grid"][a]) for a in explicit_axes(sweep, MEMBER_AXES)]
    n_members, seeds = math.prod(lengths), int(sweep["seeds"])
    out = {"runs": 0, "jobs": 0, "largest": None}
    for at in _chunk_points(sweep):
        size = runs_per_job(sweep, at)
        if n_members <= size:
            per = max(1, size // n_members)
            jobs, g, b = -(-seeds // per), min(per, seeds), n_members
        else:
            cut = _cut(lengths, size)
            jobs, g, b = seeds * math.prod(lengths[:cut]), 1, math.prod(lengths[cut:])
        out["runs"] += seeds * n_members
        out["jobs"] += jobs
        shape = {**at, "seeds": list(range(g)), "members": [None] * b}
        if out["largest"] is None or sim_chunk_bytes(sweep, shape) > sim_chunk_bytes(sweep, out["largest"]):
            out["largest"] = shape
    return out


def largest_sim_chunk(sweep: dict) -> dict:
    """A chunk-shaped dict of the simulation chunk that needs the most memory, for
    :func:`sim_chunk_bytes`; found without enumerating the chunks (:func:`sim_layout`)."""
    return sim_layout(sweep)["largest"]


def dmft_layout(sweep: dict) -> dict:
    """The DMFT chunks of a sweep, counted (the arithmetic of :func:`make_dmft_chunks`): ``points``
    (points solved: grid points × :func:`dmft_designs`), ``jobs`` and the largest job's
    ``points_per_job``."""
    g = sweep["grid"]
    lengths = [len(g[a]) for a in sorted(explicit_axes(sweep), key=lambda a: not AXES[a].splits_dmft)]
    cut, solves = _cut(lengths, points_per_job(sweep)), len(dmft_designs(sweep))
    return {"points": math.prod(lengths) * solves, "jobs": math.prod(lengths[:cut]) * solves,
            "points_per_job": math.prod(lengths[cut:])}
