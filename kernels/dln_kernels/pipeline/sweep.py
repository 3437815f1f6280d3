"""From a validated sweep configuration to runs, chunks, and checks that need more than a schema.

A sweep's runs are the product of its grid axes and its seeds. Runs with the same (δ, seed) form
a *data group*: they share X, ξ and the teacher noise. A *chunk* (one simulation job, one HDF5
file) is either several whole groups at one δ, or a slice of one large group, so every chunk is
a rectangular (G instances × b members) stack for the simulator.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re

from typing import NamedTuple

import numpy as np
import yaml

from dln_kernels.backend import backend_name, get_namespace, resolve_dtype
from dln_kernels.model.designs import DesignError, check_rows, is_default, resolve_designs
from dln_kernels.model.dln_state import alpha_min
from dln_kernels.model.priors import validate_prior
from dln_kernels.model.problem import draw_instance, n_samples
from dln_kernels.registry import AXES, CHUNK_AXES, GRID_AXES, MEMBER_AXES, OBSERVABLES, STATIC, implicit, observables, opted_in  # by name
from dln_kernels.model.schedule import (DEFAULT_SCHEDULE, check_schedule, is_per_point, n_steps_for, output_steps, rule_dt,
                       shared_dt_schedule, stability_bound, step_times)
from dln_kernels.sim.simulate import DivergenceError, effective_scale_runs, simulate_members


class ConfigError(ValueError):
    """A configuration value the pipeline cannot run with; the message names key and value."""


def validate_config(config: dict, schema_path) -> None:
    """Snakemake's JSON-schema validation (types, ranges, defaults), framed by the checks JSON
    Schema cannot make; raise ConfigError naming the key and the value.

    Before it: a number PyYAML read as text (``1e-2``: the schema would only say "not of type
    'number'"), and NaN or inf anywhere (NaN passes every bound, inf every open one). After it:
    whole-number floats in integer fields (JSON Schema counts 2.0 as an integer; ``range()`` and
    array shapes do not, so the job would fail after compute), and the designs
    (``designs.resolve_designs``). The fields come from the schema.
    """
    from snakemake.utils import validate

    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    fields = numeric_fields(schema)
    for pattern, kind in fields.items():
        for where, value in values_at(config, pattern):
            if isinstance(value, str) and (hint := _number_as_text(value, kind)):
                raise ConfigError(f"{where}: {value!r} is a string{hint}")
    for where, value in values_at(config, None):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
    validate(config, str(schema_path))
    # The validator fills defaults with the schema's own objects: every sweep that omits an axis
    # would share one list, and editing one sweep's value would edit the others. Unshare them.
    for name in list(config.get("sweeps", {})):
        config["sweeps"][name] = copy.deepcopy(config["sweeps"][name])
    for pattern in (p for p, kind in fields.items() if kind == "integer"):
        for where, value in values_at(config, pattern):
            if isinstance(value, float):
                raise ConfigError(f"{where}: {value} is a float; write an integer ({int(value)})")
    # Designs: what the schema leaves open (a kind's keys, the kind itself, patch vs image size,
    # d vs the data, unique names), with the key named.
    for name, sweep in config["sweeps"].items():
        try:
            resolve_designs(sweep, f"sweeps.{name}.design")
        except DesignError as exc:
            raise ConfigError(str(exc)) from None


def numeric_fields(schema: dict) -> dict:
    """{key pattern: "integer" | "number"} of every numeric field of a JSON schema.

    A pattern is a tuple of keys, with "*" for any key of a mapping (``additionalProperties``) and
    "[]" for any list item (``items``); ``$ref``s into ``$defs`` are followed.
    """
    found = {}

    def walk(node, path):
        if "$ref" in node:
            target = schema
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            walk(target, path)
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if "number" in types or "integer" in types:
            found[path] = "number" if "number" in types else "integer"
        for key, sub in node.get("properties", {}).items():
            walk(sub, path + (key,))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], path + ("*",))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + ("[]",))
        for sub in node.get("oneOf", []) + node.get("anyOf", []) + node.get("allOf", []):
            walk(sub, path)

    walk(schema, ())
    return found


def values_at(node, pattern, where: str = ""):
    """(key path as the user reads it, e.g. ``sweeps.tiny.grid.alpha[0]``, value) of every value
    of ``node`` matching ``pattern`` (see :func:`numeric_fields`); every leaf when it is None."""
    if pattern == () or (pattern is None and not isinstance(node, (dict, list))):
        yield where, node
        return
    head, rest = (pattern[0], pattern[1:]) if pattern else (None, None)
    if isinstance(node, list) and head in ("[]", None):
        for i, v in enumerate(node):
            yield from values_at(v, rest, f"{where}[{i}]")
    elif isinstance(node, dict):
        for k in node if head in ("*", None) else [head] if head in node else []:
            yield from values_at(node[k], rest, f"{where}.{k}" if where else str(k))


_DECIMAL = re.compile(r"([-+]?)(\d+\.?\d*|\.\d+)(?:[eE]([-+]?)(\d+))?")


def _number_as_text(text: str, kind: str) -> str | None:
    """The end of the message for a number that reached the config as a string, or None if
    ``text`` is no number. PyYAML follows YAML 1.1: a float needs a decimal point, a digit before
    it and, with an exponent, its sign, so ``1e-2``, ``1.0e5`` and ``-.5`` are read as text."""
    text = text.strip()
    m = _DECIMAL.fullmatch(text)
    if not m:
        return None
    if kind == "integer" and float(text).is_integer():
        return f"; write the integer {int(float(text))} without quotes or exponent"
    if not isinstance(yaml.safe_load(text), str):  # a number to YAML: quoted in the file
        return f"; write {text} without quotes"
    sign, mantissa, exp_sign, exp = m.groups()
    missing = [what for what, bad in (("a decimal point", "." not in mantissa),
                                      ("a digit before the point", mantissa.startswith(".")),
                                      ("a sign in the exponent", exp and not exp_sign)) if bad]
    fix = sign + ("0" if mantissa.startswith(".") else "") + mantissa + ("" if "." in mantissa else ".0")
    fix += f"e{exp_sign or '+'}{exp}" if exp else ""
    return f": YAML reads {text} without {' and '.join(missing)} as text; write {fix}"


def check_sweep(name: str, sweep: dict) -> None:
    """Checks beyond the JSON schema; raise ConfigError naming the key and the value."""
    key = f"sweeps.{name}"
    for b in sweep["grid"].get("batch_fraction", [1.0]):  # the schema says so too; API users skip it
        if not 0 < b <= 1:
            raise ConfigError(f"{key}.grid.batch_fraction: {b} is outside (0, 1] (the probability that a "
                              "sample is used at a step)")
    try:
        validate_prior(sweep["prior"])
    except ValueError as exc:
        raise ConfigError(f"{key}.{exc}") from None
    check_designs(key, sweep)
    grid = sweep["grid"]
    try:
        sched = schedule_of(sweep)
    except ValueError as exc:
        raise ConfigError(f"{key}.{exc}") from None
    if sched["kind"] in ("geometric", "piecewise") and per_point_times(sweep):
        raise ConfigError(f"{key}.grid.dt_scale: {grid['dt_scale']} scales the steps of a constant or "
                          f"alpha_rule schedule only, not of schedule kind {sched['kind']!r}")
    dt = float(sweep["dt"])
    if sched["kind"] == "constant" and sweep["t_max"] < dt:
        raise ConfigError(f"{key}.t_max: {sweep['t_max']} is shorter than one step dt={dt}")
    network = sweep["network"]
    depths = sorted(grid["depth"])
    if sweep["model"] == "dln" and network == "uv" and depths != [2]:
        raise ConfigError(
            f"{key}.grid.depth: {grid['depth']} needs network: pm (network uv, beta = u*v, has depth 2 "
            f"only); set {key}.network: pm or depth: [2]"
        )
    if sweep.get("effective_scale", False) and (sweep["model"] != "dln" or network != "uv"):
        raise ConfigError(f"{key}.effective_scale: true needs model dln with network uv (c_i = u_i^2 - v_i^2), "
                          f"not model {sweep['model']}" + (f" with network {network}" if sweep["model"] == "dln" else ""))
    if sweep["model"] == "linear" and depths != [2]:
        raise ConfigError(f"{key}.grid.depth: {grid['depth']} has no meaning for model linear; use depth: [2]")
    for L in depths:
        a_min = alpha_min(sweep["dtype"], network, L) if sweep["model"] == "dln" else 0.0
        if min(grid["alpha"]) < a_min:
            raise ConfigError(
                f"{key}.grid.alpha: {min(grid['alpha'])} is below {a_min:.2g}, the smallest alpha the "
                f"DLN state keeps exact in {sweep['dtype']} (network {network}, depth {L}); use "
                f"alpha >= {a_min:.2g}" + (" or dtype: float64" if sweep["dtype"] == "float32" else "")
            )
    alpha_max = max(grid["alpha"])
    wd_max = max(grid["weight_decay"])
    b_min = min(grid.get("batch_fraction", [1.0]))
    for delta in grid["delta"]:
        n = n_samples(delta, sweep["d"])
        if b_min * n < 1:
            raise ConfigError(
                f"{key}.grid.batch_fraction: {b_min} gives b·n = {b_min * n:.3g} < 1 samples per step "
                f"on average at delta={delta} (n={n}); use batch_fraction >= {1.0 / n:.3g} or a larger d"
            )
        for L in depths:
            if per_point_times(sweep):
                continue  # every point against its own bound, below
            bound = stability_bound(sweep["model"], alpha_max, delta, wd_max, sweep["prior"], network, L, b_min)
            if sched["kind"] != "constant":  # a shared schedule: its largest step
                dt = float(np.max(time_grid(sweep).dt_schedule))
            if dt > bound:
                depth_text = f", network={network}, depth={L}" if network == "pm" else ""
                sgd_text = (f", batch_fraction={b_min}: the bound of a mini-batch of ratio b·delta"
                            if b_min < 1 else "")
                raise ConfigError(
                    f"{key}.dt: {dt} exceeds the stability bound {bound:.4g} for the largest "
                    f"alpha={alpha_max}, delta={delta}, weight_decay={wd_max} "
                    f"(model={sweep['model']}{depth_text}{sgd_text}); use dt <= {bound:.3g} or a smaller alpha"
                    + (" or a larger batch_fraction" if b_min < 1 else "")
                )
    if per_point_times(sweep):
        check_point_steps(key, sweep)
    check_sim_memory(key, sweep)
    if sweep["dmft"]["enabled"]:
        check_dmft(key, sweep)
    if sweep["dmft"].get("phase_diagram", False):
        check_phase_diagram(key, sweep)


def check_point_steps(key: str, sweep: dict) -> None:
    """Per-point steps (alpha_rule, dt_scale): every point's step below its own stability bound."""
    grid = sweep["grid"]
    names = [a for a in GRID_AXES if a in grid or AXES[a].default is not None]
    for values in itertools.product(*(grid.get(a, AXES[a].default) for a in names)):
        p = dict(zip(names, values))
        dt = float(np.max(point_dt_schedule(sweep, p)))
        bound = stability_bound(sweep["model"], p["alpha"], p["delta"], p["weight_decay"], sweep["prior"],
                                sweep["network"], int(p["depth"]), p["batch_fraction"])
        if dt > bound * (1 + 1e-12):
            raise ConfigError(
                f"{key}.grid.dt_scale: {p['dt_scale']} gives dt = {dt:.4g} above the stability bound {bound:.4g} "
                f"at alpha={p['alpha']}, delta={p['delta']}, weight_decay={p['weight_decay']}, "
                f"batch_fraction={p['batch_fraction']} (model={sweep['model']}); use smaller steps"
            )


def designs_of(sweep: dict) -> list | None:
    """The sweep's resolved designs (``designs.resolve_designs``), or None for the default design
    (one i.i.d. Gaussian at the sweep's d: chunks, names and files exactly as before designs)."""
    return None if is_default(sweep.get("design")) else resolve_designs(sweep)


def check_designs(key: str, sweep: dict) -> None:
    """Designs that can be built, and enough rows in each data design for the largest δ."""
    try:
        designs = designs_of(sweep)
        for i, des in enumerate(designs or []):
            where = f"{key}.design" + (f"[{i}]" if isinstance(sweep["design"], list) else "")
            delta = max(sweep["grid"]["delta"])
            check_rows(des, n_samples(delta, des["d"]), f"{where} / {key}.grid.delta", delta)
    except DesignError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(key) else f"{key}.{exc}") from None


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


def check_sim_memory(key: str, sweep: dict) -> None:
    """A chunk that cannot be allocated would fail inside its job, after queueing: refuse the
    sweep at planning, as check_dmft does for the DMFT."""
    budget = sweep["memory_budget_gb"]
    chunk = max(make_chunks(sweep), key=lambda c: sim_chunk_bytes(sweep, c))
    need = sim_chunk_bytes(sweep, chunk)
    if need <= budget * 1e9:
        return
    one = sim_chunk_bytes(sweep, {**chunk, "seeds": [0], "members": [0]})
    advice = (f"lower {key}.d (a single run needs {one / 1e9:.3g} GB)" if one > budget * 1e9
              else f"lower {key}.chunk_size (runs per job) or {key}.d")
    raise ConfigError(
        f"{key}.memory_budget_gb: {budget} GB is less than the {need / 1e9:.3g} GB the largest "
        f"simulation chunk needs (d={chunk_d(sweep, chunk)}, n={n_samples(chunk['delta'], chunk_d(sweep, chunk))} rows at "
        f"delta={chunk['delta']}, {len(chunk['seeds'])} seeds × {len(chunk['members'])} runs; "
        f"8 bytes·(G·n·d + 8·G·d·b + 2·G·n·b)): {advice}, or raise the budget"
    )


def check_dmft(key: str, sweep: dict) -> None:
    """A DMFT solve holds T×T matrices: refuse, before compute, one that exceeds its budget."""
    from dln_kernels.dmft.solver import memory_bytes

    cfg = sweep["dmft"]
    n_steps = time_grid(sweep).n_steps
    need = memory_bytes(1, cfg["n_paths"], n_steps, cfg["n_batches"], sweep["dtype"],
                        sgd=min(sweep["grid"].get("batch_fraction", [1.0])) < 1)
    if n_convergence(sweep):
        from dln_kernels.dmft.solver import half_paths

        try:
            half_paths(cfg["n_paths"], cfg["n_batches"])
        except ValueError as exc:
            raise ConfigError(f"{key}.dmft.{exc} (dmft.n_convergence)") from None
    if need > cfg["memory_budget_gb"] * 1e9:
        raise ConfigError(
            f"{key}.dmft.memory_budget_gb: {cfg['memory_budget_gb']} GB is less than the "
            f"{need / 1e9:.3g} GB one DMFT point needs with n_steps={n_steps} (t_max/dt), "
            f"n_paths={cfg['n_paths']}, n_batches={cfg['n_batches']}; the solver holds O(n_paths·T + "
            f"n_batches·T²) numbers: shorten t_max, enlarge dt or raise the budget"
        )


def check_phase_diagram(key: str, sweep: dict) -> None:
    """``dmft.phase_diagram`` draws the DMFT, the long-time theory and the simulations over two
    varied axes, (α, δ) or (δ, ρ) (``phase_diagram.phase_axes``): it needs the DMFT, the static
    theory and the default design."""
    from dln_kernels.measure.phase_diagram import PhaseDiagramError, check_phase_grid

    for part in ("dmft", "static"):
        if not sweep[part]["enabled"]:
            raise ConfigError(f"{key}.dmft.phase_diagram: true needs {key}.{part}.enabled: true "
                              "(the diagram shows the DMFT beside the long-time theory)")
    if not is_default(sweep.get("design")):
        raise ConfigError(f"{key}.dmft.phase_diagram: true is drawn for the default Gaussian design only "
                          f"({key}.design lists designs)")
    try:
        check_phase_grid(sweep["grid"], f"{key}.grid")
    except PhaseDiagramError as exc:
        raise ConfigError(f"{key}.dmft.phase_diagram: {exc}") from None


def check_phenomenon_schedules(name: str, sweep: dict) -> None:
    """Refuse, before any job runs, a schedule that a phenomenon figure of sweep ``name`` was not
    built for (not in the figure job, after the compute). The figures are those of
    :func:`dln_kernels.measure.phenomenon_kinds.phenomenon_figures`; each row's ``time_axis``
    says what it reads: "constant" (one constant step for every point; no per-point times) or
    "constant_per_point" (schedule ``constant`` or ``alpha_rule``, ``dt_scale`` allowed)."""
    from dln_kernels.measure.phenomenon_kinds import PHENOMENON_KINDS, phenomenon_figures

    kind_of_schedule = schedule_of(sweep)["kind"]
    for kind in phenomenon_figures(name, sweep):
        need = PHENOMENON_KINDS[kind].time_axis
        if need == "constant" and (kind_of_schedule != "constant" or per_point_times(sweep)):
            raise ConfigError(
                f"sweeps.{name}.schedule: kind {kind_of_schedule!r}"
                + (" with a dt_scale axis" if per_point_times(sweep) and kind_of_schedule == "constant" else "")
                + f": the phenomenon figure {kind!r} of sweep {name!r} needs one constant step shared "
                "by all points (schedule kind 'constant', no dt_scale axis)"
                + ("" if kind == "universality" else
                   "; run other schedules under another sweep name (the generic figures take any schedule)")
            )
        if need == "constant_per_point" and kind_of_schedule not in ("constant", "alpha_rule"):
            raise ConfigError(
                f"sweeps.{name}.schedule: kind {kind_of_schedule!r}: the phenomenon "
                f"figure {kind!r} of sweep {name!r} needs a constant step per point (schedule kind "
                "'constant' or 'alpha_rule')"
            )


def schedule_of(sweep: dict) -> dict:
    """The sweep's step schedule (key ``schedule``, default constant dt), checked
    (:func:`dln_kernels.model.schedule.check_schedule`)."""
    return check_schedule(sweep.get("schedule", DEFAULT_SCHEDULE))


def per_point_times(sweep: dict, chunk: dict | None = None) -> bool:
    """Whether points of the sweep have their own step sizes, hence their own time axes: an
    ``alpha_rule`` schedule or a ``dt_scale`` axis with values other than [1]. Their files then
    have the dim ``step`` and a ``time`` coordinate per point (docs/file_formats.md).

    A job's sweep param has no ``grid``: give its ``chunk`` (a simulation or DMFT chunk), whose
    runs name ``dt_scale`` exactly when the axis is not at its implicit default."""
    if is_per_point(schedule_of(sweep)):
        return True
    if "grid" in sweep:
        return not implicit("dt_scale", sweep["grid"].get("dt_scale", [1.0]))
    return any("dt_scale" in r for r in chunk.get("members", chunk.get("points", [])))


def n_steps_of(sweep: dict) -> int:
    """Number of steps of every run of the sweep (common to all points; a job reads it from its
    own params, never from the grid).

    constant: round(t_max/dt) (a point with ``dt_scale`` s then ends at s·t_max); alpha_rule:
    its ``n_steps`` (default round(t_max/dt)); geometric, piecewise: the steps to t_max.
    """
    sched = schedule_of(sweep)
    if sched["kind"] == "constant":
        return n_steps_for(sweep["t_max"], sweep["dt"])
    if sched["kind"] == "alpha_rule":
        return int(sched.get("n_steps", n_steps_for(sweep["t_max"], sweep["dt"])))
    return len(shared_dt_schedule(sched, float(sweep["dt"]), float(sweep["t_max"])))


def point_dt_schedule(sweep: dict, point: dict) -> np.ndarray:
    """Step sizes (n_steps,) of one grid point {axis: value} (axes it omits at their defaults):
    the sweep's schedule, ``alpha_rule`` evaluated at the point's α and stability bound, times
    the point's ``dt_scale``."""
    sched = schedule_of(sweep)
    v = lambda a: float(point.get(a, AXES[a].default[0] if AXES[a].default else 0.0))  # noqa: E731
    scale = v("dt_scale")
    n_steps = n_steps_of(sweep)
    if sched["kind"] == "constant":
        return np.full(n_steps, float(sweep["dt"]) * scale)
    if sched["kind"] == "alpha_rule":
        bound = stability_bound(sweep["model"], v("alpha"), v("delta"), v("weight_decay"), sweep["prior"],
                                sweep["network"], int(v("depth")), v("batch_fraction"))
        return np.full(n_steps, scale * rule_dt(sched, v("alpha"), bound))
    return scale * shared_dt_schedule(sched, float(sweep["dt"]), float(sweep["t_max"]))


class TimeGrid(NamedTuple):
    """The steps of a sweep, resolved once: ``n_steps`` (int), ``dt_schedule`` (n_steps,) step
    sizes, ``record_steps`` (R,) recorded step indices, ``times`` (R,) their times; the schedule
    and the times are None for a sweep with per-point steps (:func:`point_dt_schedule`)."""

    n_steps: int
    dt_schedule: np.ndarray | None
    record_steps: np.ndarray
    times: np.ndarray | None


def time_grid(sweep: dict, chunk: dict | None = None) -> TimeGrid:
    """The :class:`TimeGrid` of a sweep whose points share their steps; for a sweep with
    per-point steps (:func:`per_point_times`; a job gives its ``chunk``) the schedule and the
    times are None (:func:`point_dt_schedule` gives them per point)."""
    n_steps = n_steps_of(sweep)
    steps = output_steps(n_steps, sweep["output"]["n_times"], sweep["output"]["spacing"])
    if per_point_times(sweep, chunk):
        return TimeGrid(n_steps, None, steps, None)
    if schedule_of(sweep)["kind"] == "constant":  # t_k = k·dt exactly (files written before schedules)
        return TimeGrid(n_steps, np.full(n_steps, float(sweep["dt"])), steps, steps * float(sweep["dt"]))
    dt_schedule = point_dt_schedule(sweep, {})
    return TimeGrid(n_steps, dt_schedule, steps, step_times(dt_schedule)[steps])


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
    ``points<P>_<hash>`` for DMFT chunks; the
    8-hex hash is of the canonical JSON of the chunk without its name, so inserting, removing or
    reordering other grid values never renames (and so never re-runs) a chunk.
    """
    body = {k: v for k, v in chunk.items() if k != "name"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    if "points" in chunk:
        return f"points{len(chunk['points'])}_{digest}"
    seeds = chunk["seeds"]
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    design = f"{chunk['design']['name']}_" if "design" in chunk else ""
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


def make_chunks(sweep: dict) -> list:
    """Simulation chunks of at most ``chunk_size`` runs (when a group is not larger), JSON-able.

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
    size = int(sweep["chunk_size"])
    seeds = list(range(int(sweep["seeds"])))
    chunks = []
    for design, fixed in itertools.product(designs_of(sweep) or [None], itertools.product(*(sorted(g[a]) for a in CHUNK_AXES))):
        at = dict(zip(CHUNK_AXES, fixed)) | ({"design": design} if design else {})
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


def _column_type(axis: str):
    """NumPy type of an axis' values (int64 for integer axes such as the depth)."""
    return np.int64 if AXES[axis].kind == "integer" else np.float64


def _network_kw(sweep: dict, depth) -> dict:
    """Kernel keywords of the DLN family: network and depth (model dln only)."""
    return {"network": sweep["network"], "depth": int(depth)} if sweep["model"] == "dln" else {}


def run_chunk(sweep: dict, chunk: dict, progress_every: float | None = 10.0) -> dict:
    """Simulate one chunk. Returns per-run parameter columns and (runs, times) observables."""
    xp = get_namespace(sweep["backend"])
    _, dt_schedule, steps, times = time_grid(sweep, chunk)
    runs = {a: np.array([axis_value(m, a) for m in chunk["members"]], dtype=float) for a in MEMBER_AXES}  # by name
    if dt_schedule is None:  # per-point steps: one column per member (the same in every data group)
        pts = [{**m, **{a: chunk[a] for a in CHUNK_AXES}} for m in chunk["members"]]
        dt_schedule = np.stack([point_dt_schedule(sweep, p) for p in pts], axis=1)  # (n_steps, b)
        times = np.tile(np.stack([step_times(dt_schedule[:, j])[steps] for j in range(len(pts))]),
                        (len(chunk["seeds"]), 1))  # (runs, T), runs seed-major as the observables
    instances = [draw_instance(chunk_d(sweep, chunk), s, sweep["base_seed"], chunk.get("design"))
                 for s in chunk["seeds"]]
    extra = opted_in("sim:dln", sweep) if sweep["model"] == "dln" else ()  # e.g. alpha_eff, gain_mean
    res = simulate_members(
        xp, instances, [runs] * len(instances), model=sweep["model"], delta=chunk["delta"],
        prior=sweep["prior"], dt_schedule=dt_schedule, record_steps=steps,
        dtype=resolve_dtype(sweep["dtype"]), save_beta=sweep["save_beta"],
        progress_every=progress_every, batch_sampling=sweep.get("batch_sampling", "bernoulli"),
        **_network_kw(sweep, chunk["depth"]), **({"save_scale": True} if extra else {}),
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


def make_dmft_chunks(sweep: dict) -> list:
    """DMFT jobs: {"name", "points": [{axis: value}]}, sub-products of the grid of at most
    ``dmft.points_per_job`` points (see :func:`_pieces`), named by content. Axes with
    ``splits_dmft`` (the depth) lead the prefix, so a job holds one value of them where it can."""
    g = sweep["grid"]
    # axes the DMFT solves one value at a time go first, so a job's points share one solve
    # (with one value, as in every depth-2 sweep, the pieces and their order are unchanged)
    order = sorted(explicit_axes(sweep), key=lambda a: not AXES[a].splits_dmft)
    pieces = _pieces([sorted(g[a]) for a in order], int(sweep["dmft"]["points_per_job"]))
    chunks = [{"points": _records(order, p)} for p in pieces]
    for c in chunks:
        if n_convergence(sweep):  # a property of the sweep (its grid), which DMFT jobs do not read
            c["n_convergence"] = True  # absent otherwise: such sweeps keep their chunk names and params
        c["name"] = chunk_name(c)
    return chunks


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


def run_dmft_chunk(sweep: dict, chunk: dict, progress: bool = True) -> dict:
    """Solve the DMFT for one chunk of grid points, on the simulations' time grid.

    ``sweep`` needs only the keys a DMFT job reads (no grid). Where the chunk says so
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
    n_steps, shared, steps, times = time_grid(sweep, chunk)
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
