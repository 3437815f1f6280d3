"""Config checks beyond the JSON schema: a sweep that cannot run is refused here, before any job
runs, with the key and the value named (and what would pass).

:func:`validate_config` is Snakemake's schema validation framed by the checks JSON Schema cannot
make; :func:`check_sweep` then checks one sweep's values against each other (model and network,
depth, α against the dtype's range, the step against the stability bound, memory budgets, the
DMFT's and the figures' requirements). Tested without Snakemake (``tests/test_config.py``).
"""

from __future__ import annotations

import copy
import itertools
import math
import re

import numpy as np
import yaml

from dln_kernels.model.designs import DesignError, check_rows, is_default, resolve_designs
from dln_kernels.model.dln_state import alpha_min
from dln_kernels.model.priors import prior_of, validate_prior
from dln_kernels.model.problem import n_samples
from dln_kernels.model.schedule import stability_bound
from dln_kernels.pipeline.chunks import (ISOTROPIC, chunk_d, design_dims, designs_of, dmft_designs, largest_sim_chunk,
                                         n_convergence, sim_chunk_bytes)
from dln_kernels.pipeline.timegrid import per_point_times, point_dt_schedule, schedule_of, time_grid
from dln_kernels.pipeline.errors import ConfigError, refuse, refuse_message  # noqa: F401 (ConfigError: callers import it here)
from dln_kernels.registry import AXES, GRID_AXES


def validate_config(config: dict, schema_path) -> None:
    """Snakemake's JSON-schema validation (types, ranges, defaults), framed by the checks JSON
    Schema cannot make; raise ConfigError naming the key and the value.

    Before it: a number PyYAML read as text (``1e-2``: the schema would only say "not of type
    'number'"), and NaN or inf anywhere (NaN passes every bound, inf every open one). After it:
    whole-number floats in integer fields (JSON Schema counts 2.0 as an integer; ``range()`` and
    array shapes do not, so the job would fail after compute), the designs
    (``designs.resolve_designs``) and keys written where they do nothing (:func:`check_applicable`,
    which reads the keys as written, before the defaults). The fields come from the schema. A
    schema violation is refused with one line first (:func:`_schema_refusal`).
    """
    from snakemake.utils import validate

    with open(schema_path) as f:
        schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C parser where built: the check is on every start
    fields = numeric_fields(schema)
    for pattern, kind in fields.items():
        for where, value in values_at(config, pattern):
            if isinstance(value, str) and (hint := _number_as_text(value, kind)):
                raise refuse(where, repr(value), "is a string" + hint)
    for where, value in values_at(config, None):
        if isinstance(value, float) and not math.isfinite(value):
            raise refuse(where, value, "is not a finite number")
    written = copy.deepcopy(config.get("sweeps", {}))  # the keys as written, before the defaults
    try:
        validate(config, str(schema_path))
    except Exception as exc:  # Snakemake's WorkflowError: the schema's whole report
        raise _schema_refusal(config, schema, exc) from None
    # The validator fills defaults with the schema's own objects: every sweep that omits an axis
    # would share one list, and editing one sweep's value would edit the others. Unshare them.
    for name in list(config.get("sweeps", {})):
        config["sweeps"][name] = copy.deepcopy(config["sweeps"][name])
    for pattern in (p for p, kind in fields.items() if kind == "integer"):
        for where, value in values_at(config, pattern):
            if isinstance(value, float):
                raise refuse(where, value, "is a float", f"write an integer: {int(value)}")
    # Designs: what the schema leaves open (a kind's keys, the kind itself, patch vs image size,
    # d vs the data, unique names), with the key named.
    for name, sweep in config["sweeps"].items():
        try:
            resolve_designs(sweep, f"sweeps.{name}.design")
        except DesignError as exc:
            raise refuse_message(str(exc), config) from None
    for name, sweep in config["sweeps"].items():
        check_applicable(f"sweeps.{name}", written.get(name, {}), sweep, _sweep_schema(schema))


def check_config(config: dict, schema_path) -> None:
    """Everything the workflow checks before it builds its DAG, without Snakemake's DAG:
    :func:`validate_config`, the selected ``sweep`` names, and every sweep's :func:`check_sweep`
    and :func:`check_phenomenon_schedules`; the steps against the designs' spectra (which need
    the data designs' pools, seconds) for the selected sweeps only (``check_sweep(spectra=...)``).
    Raise ConfigError (first line: sweep, key, value, why)."""
    validate_config(config, schema_path)
    selected = [config["sweep"]] if isinstance(config["sweep"], str) else list(config["sweep"])
    for name in selected:
        if name not in config["sweeps"]:
            raise refuse("sweep", name, f"unknown sweep {name!r}", f"defined sweeps: {', '.join(sorted(config['sweeps']))}")
    for name, sweep in config["sweeps"].items():
        check_sweep(name, sweep, spectra=name in selected)
        # a sweep whose schedule one of its phenomenon figures was not built for (row `time_axis`
        # of the phenomena table) is refused here, with the key named, before any job runs
        check_phenomenon_schedules(name, sweep)


def _schema_refusal(config: dict, schema: dict, exc: Exception) -> ConfigError:
    """The one-line refusal of a schema violation (jsonschema's best match: the key path, the
    value and the schema's reason; an unexpected or a missing key named itself), with the
    validator's full report after it."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(config))
    if error is None:
        return ConfigError(str(exc))
    path, value, why = list(error.absolute_path), error.instance, error.message.replace(f"{error.instance!r} ", "", 1)
    if error.validator == "additionalProperties":  # name the unknown key, not its parent
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        path, value, why = path + extra[:1], error.instance[extra[0]], "is not a known key here"
        why += f" (known: {', '.join(sorted(error.schema.get('properties', {})))})"
    elif error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        path, value, why = path + [missing[1]], "(missing)", "is a required property"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "config"
    return refuse(where, value, why, f"schema: {error.validator}", details=str(exc))


# Keys that mean something only with another key's value: (key as written, applies(sweep), why
# not here, what to do). A sweep that writes such a key where it does nothing is refused.
INAPPLICABLE = (
    ("network", lambda s: s["model"] == "dln", "model linear trains beta directly: it has no network",
     "remove the key or use model: dln"),
    ("batch_sampling", lambda s: min(s["grid"].get("batch_fraction", [1.0])) < 1,
     "chooses how mini-batches are drawn; every grid.batch_fraction is 1 (full batch)",
     "remove the key or add a batch_fraction < 1"),
)


def check_applicable(key: str, written: dict, sweep: dict, sweep_schema: dict | None = None) -> None:
    """Refuse keys a sweep writes where they do nothing (:data:`INAPPLICABLE`; DMFT and static-theory
    settings of a sweep whose ``dmft`` / ``static`` is not enabled). A key written at its schema
    default (``sweep_schema``) changes nothing and passes: restating a default is no error."""
    def restated(path, value):
        node = sweep_schema or {}
        for p in path:
            node = node.get("properties", {}).get(p, {})
        return "default" in node and node["default"] == value

    for field, applies, why, fix in INAPPLICABLE:
        if field in written and not applies(sweep) and not restated([field], written[field]):
            raise refuse(f"{key}.{field}", written[field], why, fix)
    for part in ("dmft", "static"):
        given = written.get(part) if isinstance(written.get(part), dict) else {}
        extra = [k for k, v in given.items() if k != "enabled" and not restated([part, k], v)]
        if extra and not sweep[part]["enabled"]:
            raise refuse(f"{key}.{part}.{extra[0]}", given[extra[0]], f"is a setting of the {part} stage, which "
                         f"this sweep does not run ({part}.enabled: false)", f"remove it or set {part}.enabled: true")


def _sweep_schema(schema: dict) -> dict:
    """The schema of one sweep (``sweeps.*``, its ``$ref`` into ``$defs`` followed)."""
    node = schema.get("properties", {}).get("sweeps", {}).get("additionalProperties", {})
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


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


def check_sweep(name: str, sweep: dict, spectra: bool = True) -> None:
    """Checks beyond the JSON schema, in the order of :data:`SWEEP_CHECKS`; raise ConfigError
    (first line ``sweep NAME: KEY = VALUE: why (what would pass)``, see :func:`refuse`).
    ``spectra``: check the DMFT's steps against each design's spectrum too (:func:`_check_steps`)."""
    key = f"sweeps.{name}"
    for check in SWEEP_CHECKS:
        if check is _check_steps:
            check(key, sweep, spectra=spectra)
        else:
            check(key, sweep)


def _check_budget(key: str, sweep: dict) -> None:
    from dln_kernels.pipeline.budget import check_budget

    check_budget(key, sweep)


def _check_dmft_enabled(key: str, sweep: dict) -> None:
    if sweep["dmft"]["enabled"]:
        check_dmft(key, sweep)


def _check_phase_diagram_set(key: str, sweep: dict) -> None:
    if sweep["dmft"].get("phase_diagram", False):
        check_phase_diagram(key, sweep)


def _check_batch_fraction(key: str, sweep: dict) -> None:
    """b ∈ (0, 1] (the schema says so too; API users skip it) and b·n ≥ 1 at every δ."""
    grid = sweep["grid"]
    for b in grid.get("batch_fraction", [1.0]):
        if not 0 < b <= 1:
            raise refuse(f"{key}.grid.batch_fraction", b, "is outside (0, 1] (the probability that a sample is used at a step)")
    b_min = min(grid.get("batch_fraction", [1.0]))
    for delta in grid["delta"]:
        n = n_samples(delta, sweep["d"])
        if b_min * n < 1:
            raise refuse(f"{key}.grid.batch_fraction", b_min,
                         f"gives b·n = {b_min * n:.3g} < 1 samples per step on average at delta={delta} (n={n})",
                         f"use batch_fraction >= {1.0 / n:.3g} or a larger d")


def _check_prior(key: str, sweep: dict) -> None:
    try:
        validate_prior(sweep["prior"])
    except ValueError as exc:
        raise refuse_message(f"{key}.{exc}", sweep, f"{key}.") from None


def _check_schedule(key: str, sweep: dict) -> None:
    """A schedule that can be resolved, ``dt_scale`` only where it means something, t_max ≥ dt."""
    try:
        sched = schedule_of(sweep)
    except ValueError as exc:
        raise refuse_message(f"{key}.{exc}", sweep, f"{key}.") from None
    if sched["kind"] in ("geometric", "piecewise") and per_point_times(sweep):
        raise refuse(f"{key}.grid.dt_scale", sweep["grid"]["dt_scale"],
                     f"scales the steps of a constant or alpha_rule schedule only, not of schedule kind {sched['kind']!r}")
    if sched["kind"] == "constant" and sweep["t_max"] < float(sweep["dt"]):
        raise refuse(f"{key}.t_max", sweep["t_max"], f"is shorter than one step dt={float(sweep['dt'])}")


def _check_network(key: str, sweep: dict) -> None:
    """Depth and effective_scale where the model and network give them a meaning."""
    network, depths = sweep["network"], sorted(sweep["grid"]["depth"])
    if sweep["model"] == "dln" and network == "uv" and depths != [2]:
        raise refuse(f"{key}.grid.depth", sweep["grid"]["depth"], "needs network: pm (network uv, beta = u*v, has depth 2 only)",
                     f"set {key}.network: pm or depth: [2]")
    if sweep.get("effective_scale", False) and (sweep["model"] != "dln" or network != "uv"):
        raise refuse(f"{key}.effective_scale", True, "needs model dln with network uv (c_i = u_i^2 - v_i^2), not model "
                     f"{sweep['model']}" + (f" with network {network}" if sweep["model"] == "dln" else ""),
                     "remove the key or use model: dln, network: uv")
    if sweep["model"] == "linear" and depths != [2]:
        raise refuse(f"{key}.grid.depth", sweep["grid"]["depth"], "has no meaning for model linear", "use depth: [2]")


def _check_alpha_range(key: str, sweep: dict) -> None:
    """α no smaller than the DLN state keeps exact in the dtype (``dln_state.alpha_min``)."""
    if sweep["model"] != "dln":
        return
    for L in sorted(sweep["grid"]["depth"]):
        a_min = alpha_min(sweep["dtype"], sweep["network"], L)
        if min(sweep["grid"]["alpha"]) < a_min:
            raise refuse(f"{key}.grid.alpha", min(sweep["grid"]["alpha"]),
                         f"is below {a_min:.2g}, the smallest alpha the DLN state keeps exact in {sweep['dtype']} "
                         f"(network {sweep['network']}, depth {L})",
                         f"use alpha >= {a_min:.2g}" + (" or dtype: float64" if sweep["dtype"] == "float32" else ""))


def _check_steps(key: str, sweep: dict, spectra: bool = True) -> None:
    """Every point's largest step below its stability bound, for the teacher draws that run
    (:func:`dln_kernels.model.schedule.stability_bound` with ``n_draws``; docs/dmft.md "Step sizes
    and the teacher's tail"): the simulation's ρ·d·seeds nonzero β*, the DMFT's ρ·n_paths. The
    simulation's bound is divided by the largest scale of the diagonal designs, the DMFT's (with
    ``spectra``) by the largest λ_max/mean of the spectra the DMFT solves (``chunks.dmft_designs``:
    a coordinate of scale s meets s times the curvature, docs/dmft.md "Diagonal designs")."""
    d_max = max(design_dims(sweep))
    scales = {"simulation": _largest_diagonal_scale(sweep),
              "DMFT": _largest_dmft_spectrum(sweep) if spectra else (1.0, None)}
    for point, dt in _step_points(sweep):
        for stage, n_draws in _draws(sweep, point, d_max):
            bound = stability_bound(sweep["model"], point["alpha"], point["delta"], point["weight_decay"], sweep["prior"],
                                    sweep["network"], int(point["depth"]), point["batch_fraction"], n_draws=n_draws)
            bound /= scales[stage][0]
            if dt > bound * (1 + 1e-12):
                raise _step_refusal(key, sweep, point, dt, bound, stage, n_draws, scales[stage])


def _largest_diagonal_scale(sweep: dict) -> tuple:
    """(s_max, its design's name) over the sweep's diagonal designs (``two_level``,
    ``gaussian_powerlaw`` with ``rotation: none``; (1, None) for none): a coordinate of scale s
    meets s times the curvature, so the simulation's bound is divided by it (conservative for the
    bulk, docs/dmft.md "Diagonal designs"). Rotated and data designs keep the isotropic bound."""
    from dln_kernels.model.designs import is_diagonal, spectrum_ratio

    return max([(spectrum_ratio(d), d["name"]) for d in designs_of(sweep) or [] if is_diagonal(d)], default=(1.0, None))


def _largest_dmft_spectrum(sweep: dict) -> tuple:
    """(λ_max/mean, its design's name) over the spectra the sweep's DMFT solves
    (``designs.spectrum_max`` of each design of ``chunks.dmft_designs``; (1, None) where the DMFT
    solves the isotropic theory only). Builds the pools of data designs (cached per process)."""
    from dln_kernels.model.designs import spectrum_max

    if not sweep["dmft"]["enabled"]:
        return 1.0, None
    return max([(spectrum_max(d), d["name"]) for d in dmft_designs(sweep)[1:]], default=(1.0, None))


def _step_points(sweep: dict):
    """(point {axis: value}, its largest step) for the points whose step must be checked: every
    grid point where points have their own steps; else, per (δ, depth), the point of largest
    curvature (largest α, λ, ρ; smallest b) with the shared schedule's largest step."""
    grid = sweep["grid"]
    names = [a for a in GRID_AXES if a in grid or AXES[a].default is not None]
    values = {a: grid.get(a, AXES[a].default) for a in names}
    if per_point_times(sweep):
        for row in itertools.product(*(values[a] for a in names)):
            p = dict(zip(names, row))
            yield p, float(np.max(point_dt_schedule(sweep, p)))
        return
    dt = float(sweep["dt"]) if schedule_of(sweep)["kind"] == "constant" else float(np.max(time_grid(sweep).dt_schedule))
    worst = {a: (min(v) if a == "batch_fraction" else max(v)) for a, v in values.items()}
    for delta, depth in itertools.product(sorted(grid["delta"]), sorted(grid["depth"])):
        yield {**worst, "delta": delta, "depth": depth}, dt


def _draws(sweep: dict, point: dict, d_max: int):
    """(stage, number of nonzero teacher draws) of the computations that run at ``point``
    (``d_max``: the largest d of the sweep's designs)."""
    yield "simulation", point["rho"] * d_max * int(sweep["seeds"])
    if sweep["dmft"]["enabled"]:
        yield "DMFT", point["rho"] * int(sweep["dmft"]["n_paths"])


def _step_refusal(key, sweep, point, dt, bound, stage, n_draws, scale=(1.0, None)) -> ConfigError:
    """The refusal of a step above the bound, naming the point, the bound and a step that passes;
    ``scale``: (the factor the bound was divided by, the design it comes from)."""
    prior = prior_of(sweep["prior"])
    at = ", ".join(f"{a}={point[a]}" for a in ("alpha", "delta", "rho", "weight_decay") + (
        ("depth",) if sweep["network"] == "pm" else ()) + (("batch_fraction",) if point["batch_fraction"] < 1 else ()))
    bulk = stability_bound(sweep["model"], point["alpha"], point["delta"], point["weight_decay"], sweep["prior"],
                           sweep["network"], int(point["depth"]), point["batch_fraction"])
    tail = (f"; the bound of the largest of the {stage}'s {n_draws:.4g} nonzero teacher draws, |beta*| ~ "
            f"{prior.largest_of(n_draws):.3g}, below the bulk's {bulk:.4g}" if bound * scale[0] < bulk else "")
    field = f"{key}.grid.dt_scale" if "dt_scale" in sweep["grid"] and per_point_times(sweep) else f"{key}.dt"
    value = point["dt_scale"] if field.endswith("dt_scale") else dt  # the point's own scale
    if scale[0] != 1.0:
        tail += (f"; divided by the largest diagonal design scale {scale[0]:.4g} (design {scale[1]})"
                 if stage == "simulation" else
                 f"; divided by lambda_max/mean = {scale[0]:.4g} of design {scale[1]}'s spectrum, whose DMFT the sweep solves")
    return refuse(field, value, f"the step {dt:.4g} exceeds the {stage} stability bound {bound:.4g} at {at} "
                  f"(model={sweep['model']}, network={sweep['network']}{tail})",
                  f"use dt <= {0.99 * bound:.3g}" + (", a smaller alpha" if sweep["model"] == "dln" else "")
                  + (" or a larger batch_fraction" if point["batch_fraction"] < 1 else ""))


def check_designs(key: str, sweep: dict) -> None:
    """Designs that can be built, and enough rows in each data design for the largest δ."""
    try:
        designs = designs_of(sweep)
    except DesignError as exc:
        raise refuse_message(str(exc) if str(exc).startswith(key) else f"{key}.{exc}", sweep, f"{key}.") from None
    delta = max(sweep["grid"]["delta"])
    for i, des in enumerate(designs or []):
        where = f"{key}.design" + (f"[{i}]" if isinstance(sweep["design"], list) else "")
        if des["name"] == ISOTROPIC:  # the label of the isotropic DMFT in dmft.nc's design dim
            raise refuse(f"{where}.name", ISOTROPIC, "is reserved for the isotropic DMFT (a label of dmft.nc's design dim)",
                         "give the design another name")
        try:
            check_rows(des, n_samples(delta, des["d"]), where, delta)
        except DesignError as exc:  # the value to change is the δ: name it first, the design after
            why = str(exc).partition(": ")[2]
            raise refuse(f"{key}.grid.delta", sweep["grid"]["delta"], f"{why} ({where.removeprefix(key + '.')})") from None


def check_sim_memory(key: str, sweep: dict) -> None:
    """A chunk that cannot be allocated would fail inside its job, after queueing: refuse the
    sweep at planning, as check_dmft does for the DMFT (the largest chunk is counted, not built)."""
    budget = sweep["memory_budget_gb"]
    chunk = largest_sim_chunk(sweep)
    need = sim_chunk_bytes(sweep, chunk)
    if need <= budget * 1e9:
        return
    one = sim_chunk_bytes(sweep, {**chunk, "seeds": [0], "members": [0]})
    advice = (f"lower {key}.d (a single run needs {one / 1e9:.3g} GB)" if one > budget * 1e9
              else f"lower {key}.chunk_size (runs per job) or {key}.d")
    d, n = chunk_d(sweep, chunk), n_samples(chunk["delta"], chunk_d(sweep, chunk))
    raise refuse(f"{key}.memory_budget_gb", budget,
                 f"is less than the {need / 1e9:.3g} GB the largest simulation chunk needs (d={d}, n={n} rows at "
                 f"delta={chunk['delta']}, {len(chunk['seeds'])} seeds × {len(chunk['members'])} runs; "
                 "8 bytes·(G·n·d + 8·G·d·b + 2·G·n·b))", f"{advice}, or raise the budget")


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
            raise refuse_message(f"{key}.dmft.{exc} (dmft.n_convergence)", sweep, f"{key}.") from None
    if need > cfg["memory_budget_gb"] * 1e9:
        raise refuse(f"{key}.dmft.memory_budget_gb", cfg["memory_budget_gb"],
                     f"is less than the {need / 1e9:.3g} GB one DMFT point needs with n_steps={n_steps} (t_max/dt), "
                     f"n_paths={cfg['n_paths']}, n_batches={cfg['n_batches']}; the solver holds O(n_paths·T + "
                     "n_batches·T²) numbers", "shorten t_max, enlarge dt or raise the budget")


def check_phase_diagram(key: str, sweep: dict) -> None:
    """``dmft.phase_diagram`` draws the DMFT, the long-time theory and the simulations over two
    varied axes, (α, δ) or (δ, ρ) (``phase_diagram.phase_axes``): it needs the DMFT, the static
    theory and the default design."""
    from dln_kernels.measure.phase_diagram import PhaseDiagramError, check_phase_grid

    for part in ("dmft", "static"):
        if not sweep[part]["enabled"]:
            raise refuse(f"{key}.dmft.phase_diagram", True, f"needs {key}.{part}.enabled: true "
                         "(the diagram shows the DMFT beside the long-time theory)")
    if not is_default(sweep.get("design")):
        raise refuse(f"{key}.dmft.phase_diagram", True, f"is drawn for the default Gaussian design only "
                     f"({key}.design lists designs)")
    try:
        check_phase_grid(sweep["grid"], f"{key}.grid")
    except PhaseDiagramError as exc:
        raise refuse(f"{key}.dmft.phase_diagram", True, str(exc).replace(f"{key}.", "")) from None


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
            raise refuse(
                f"sweeps.{name}.schedule", schedule_of(sweep),
                f"kind {kind_of_schedule!r}" + (" with a dt_scale axis" if per_point_times(sweep) and kind_of_schedule == "constant" else "")
                + f": the phenomenon figure {kind!r} of sweep {name!r} needs one constant step shared "
                "by all points (schedule kind 'constant', no dt_scale axis)",
                None if kind == "universality" else
                "run other schedules under another sweep name; the generic figures take any schedule")
        if need == "constant_per_point" and kind_of_schedule not in ("constant", "alpha_rule"):
            raise refuse(
                f"sweeps.{name}.schedule", schedule_of(sweep),
                f"kind {kind_of_schedule!r}: the phenomenon figure {kind!r} of sweep {name!r} needs a constant step "
                "per point (schedule kind 'constant' or 'alpha_rule')")


# The checks of one sweep, in order: cheap ones and those that say what a later one assumes first
# (a prior, a schedule, a network that can be read), the step sizes and the memory after them.
SWEEP_CHECKS = (_check_batch_fraction, _check_prior, check_designs, _check_schedule, _check_network, _check_alpha_range,
                _check_budget, _check_steps, check_sim_memory, _check_dmft_enabled, _check_phase_diagram_set)
