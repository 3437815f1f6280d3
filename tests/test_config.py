"""Configuration validation: bad input stops the workflow before compute, naming key and value."""

import copy
import math
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, SCHEMA, resolved

from dln_kernels.registry import GRID_AXES
from dln_kernels.pipeline.chunks import make_chunks, sim_chunk_bytes
from dln_kernels.pipeline.config import ConfigError, check_sweep, numeric_fields, validate_config


def mutate(cfg, path, value):
    node = cfg
    for p in path[:-1]:
        node = node[p]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


DELETE = object()


def one_line(where: str) -> str:
    """The head of a refusal's first line for a key path: ``sweeps.tiny.d`` → ``sweep tiny: d``."""
    return re.sub(r"^sweeps\.([^.\[]+)\.", r"sweep \1: ", where)
SW = ("sweeps", "default")

# (path, bad value, text the message must contain: the offending key or value)
SCHEMA_CASES = [
    (SW + ("grid", "alpha", 0), -0.1, "['alpha']"),
    (SW + ("grid", "delta", 0), 0.0, "['delta']"),
    (SW + ("grid", "rho", 0), 1.5, "['rho']"),
    (SW + ("grid", "sigma", 0), -1.0, "['sigma']"),
    (SW + ("grid", "weight_decay", 0), -0.01, "['weight_decay']"),
    (SW + ("grid", "lambda"), [0.1], "'lambda' was unexpected"),
    (SW + ("grid", "alpha", 1), "big", "'big' is not of type 'number'"),
    (SW + ("d",), 10.5, "['d']"),
    (SW + ("seeds",), 0, "['seeds']"),
    (SW + ("dt",), -0.1, "['dt']"),
    (SW + ("backend",), "tpu", "'tpu' is not one of"),
    (SW + ("dtype",), "float16", "'float16' is not one of"),
    (SW + ("model",), "deep", "'deep' is not one of"),
    (SW + ("chunk_size",), 0, "['chunk_size']"),
    (SW + ("grid", "delta"), DELETE, "'delta' is a required property"),
    (SW + ("colour",), "red", "'colour' was unexpected"),
]


@pytest.mark.parametrize("path,value,expected", SCHEMA_CASES, ids=[str(c[0][-2:]) + "=" + str(c[1]) for c in SCHEMA_CASES])
def test_schema_rejects_bad_values(base_config, path, value, expected):
    """One line first (sweep, key, value, why), the schema's own report after it."""
    with pytest.raises(ConfigError) as exc:
        resolved(mutate(base_config, path, value))
    head, *details = str(exc.value).splitlines()
    key = ".".join(str(p) for p in path[2:]).replace(".0", "[0]").replace(".1", "[1]")
    assert head.startswith(f"sweep default: {key} = "), head
    assert "(schema: " in head and expected in "\n".join(details)


def test_defaults_are_filled(base_config):
    cfg = resolved(base_config)
    tiny = cfg["sweeps"]["tiny"]
    assert tiny["backend"] == "numpy" and tiny["dtype"] == "float64" and tiny["grid"]["sigma"] == [0.0]
    assert tiny["output"]["spacing"] == "log"


def test_unstable_step_is_rejected_naming_key_and_bound(base_config):
    cfg = resolved(mutate(base_config, SW + ("dt",), 0.2))
    with pytest.raises(ConfigError, match=r"^sweep default: dt = 0\.2: the step 0\.2 exceeds the simulation stability bound .* alpha=3"):
        check_sweep("default", cfg["sweeps"]["default"])


def test_discrete_prior_probabilities_must_sum_to_one(base_config):
    prior = {"kind": "discrete", "values": [1, 2], "probs": [0.5, 0.6]}
    cfg = resolved(mutate(base_config, SW + ("prior",), prior))
    with pytest.raises(ConfigError, match=r"^sweep default: prior\.probs = \[0\.5, 0\.6\]: must be non-negative and sum to 1"):
        check_sweep("default", cfg["sweeps"]["default"])


def test_shipped_sweeps_pass_and_chunk_cover_the_grid(base_config):
    cfg = resolved(base_config)
    for name, sweep in cfg["sweeps"].items():
        check_sweep(name, sweep)
        chunks = make_chunks(sweep)
        n_runs = sum(len(c["seeds"]) * len(c["members"]) for c in chunks)
        g = sweep["grid"]
        n_designs = len(sweep["design"]) if isinstance(sweep["design"], list) else 1
        expected = n_designs * sweep["seeds"] * math.prod(len(g[a]) for a in GRID_AXES)  # every axis of the registry
        assert n_runs == expected
        assert all(len(c["seeds"]) * len(c["members"]) <= max(sweep["chunk_size"], len(c["members"])) for c in chunks)


def test_large_groups_are_split_across_chunks(base_config):
    sweep = resolved(base_config)["sweeps"]["tiny"]
    sweep["grid"]["alpha"] = [0.01, 0.1, 1.0, 2.0, 3.0]
    sweep["chunk_size"] = 2
    chunks = make_chunks(sweep)
    assert all(len(c["seeds"]) == 1 and len(c["members"]) <= 2 for c in chunks)
    assert sum(len(c["members"]) for c in chunks) == 5 * 2 * 2


def snakemake_dry_run(tmp_path, cfg, *extra):
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(cfg_path), *extra],
        capture_output=True, text=True, timeout=120,
    )


def test_workflow_stops_before_any_job(tmp_path, base_config):
    """The real entry point, the one Snakemake start of these tests: a bad value stops `snakemake -n`
    at parse time with the one-line refusal; no job is planned, nothing is written."""
    cfg = mutate(base_config, SW + ("dt",), 0.2)
    proc = snakemake_dry_run(tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Invalid configuration: sweep default: dt = 0.2: the step 0.2 exceeds the simulation stability bound" in out
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_unknown_sweep_is_refused(base_config):
    from dln_kernels.pipeline.config import check_config

    base_config["sweep"] = "nosuch"
    with pytest.raises(ConfigError, match="^sweep = nosuch: unknown sweep 'nosuch' \\(defined sweeps: default, "):
        check_config(base_config, SCHEMA)


def test_dmft_over_memory_budget_is_refused_before_compute(base_config):
    cfg = resolved(base_config)
    sweep = cfg["sweeps"]["default"]  # 15000 steps: T² matrices far beyond a 1 GB budget
    sweep["dmft"].update(enabled=True, memory_budget_gb=1.0)
    with pytest.raises(ConfigError, match=r"^sweep default: dmft\.memory_budget_gb = 1\.0: is less than the 44\.4 GB one DMFT point needs"):
        check_sweep("default", sweep)


def test_alpha_below_the_dtype_range_is_refused(base_config):
    """The DLN state is exact down to alpha_min(dtype) (1.5e-153 float64, 1.1e-18 float32): below
    it the shrinking coordinate would underflow, so the config is refused naming key and value."""
    cfg = resolved(base_config)
    sweep = cfg["sweeps"]["default"]
    sweep["grid"]["alpha"] = [1e-100, 1.0]
    check_sweep("default", sweep)  # fine in float64
    sweep["dtype"] = "float32"
    with pytest.raises(ConfigError, match=r"^sweep default: grid\.alpha = 1e-100: is below 1.1e-18.*float32"):
        check_sweep("default", sweep)
    sweep["grid"]["alpha"] = [1e-15, 1.0]
    check_sweep("default", sweep)
    sweep["dtype"], sweep["grid"]["alpha"] = "float64", [1e-160]
    with pytest.raises(ConfigError, match=r"^sweep default: grid\.alpha = 1e-160: is below 1.5e-153"):
        check_sweep("default", sweep)


# ---- checks JSON Schema cannot make: one schema-driven rule per kind of fault -------------------

FIELDS = numeric_fields(yaml.safe_load(SCHEMA.read_text()))
INTEGER_FIELDS = [p for p, kind in FIELDS.items() if kind == "integer"]
NUMBER_FIELDS = [p for p, kind in FIELDS.items() if kind == "number"]


def field_id(pattern):
    return ".".join(pattern[2:]).replace(".[]", "[]")


def place(cfg, pattern, value, sweep="tiny"):
    """Put ``value`` at ``pattern`` in sweep ``sweep`` (first item for "[]", creating missing
    containers); return the key path as messages write it, and the value it replaced."""
    path = [sweep if p == "*" else 0 if p == "[]" else p for p in pattern]
    node = cfg
    for key, nxt in zip(path[:-1], path[1:]):
        if isinstance(node, list):
            if node[key] is None:
                node[key] = {}
            node = node[key]
            continue
        child = node.setdefault(key, [None] if nxt == 0 else {})
        if nxt == 0 and not isinstance(child, list):  # one object or a list (design): the list form
            child = node[key] = [child]
        node = child
    old = node[path[-1]] if isinstance(node, list) else node.get(path[-1])
    node[path[-1]] = value
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip("."), old


def test_schema_numeric_fields_are_found():
    """The checks read their fields from the schema; these must be among them."""
    assert len(INTEGER_FIELDS) >= 13
    for key in ("seeds", "d", "chunk_size", "output.n_times", "dmft.n_paths", "static.n_rho"):
        assert ("sweeps", "*", *key.split(".")) in INTEGER_FIELDS
    for key in ("dt", "t_max", "grid.alpha.[]", "static.alpha_range.[]", "memory_budget_gb"):
        assert ("sweeps", "*", *key.split(".")) in NUMBER_FIELDS


def test_shipped_config_passes_unchanged(base_config):
    cfg = validate_config(base_config, SCHEMA) or base_config
    assert cfg["sweeps"]["tiny"]["memory_budget_gb"] == 16.0 and isinstance(cfg["sweeps"]["tiny"]["seeds"], int)


@pytest.mark.parametrize("pattern", INTEGER_FIELDS, ids=field_id)
def test_whole_number_float_in_integer_field_is_refused(base_config, pattern):
    """JSON Schema counts 2.0 as an integer; the jobs (range(), shapes) do not."""
    cfg = resolved(base_config)
    where, value = place(cfg, pattern, None)
    value = 3 if value is None else value  # a field without a default (design.patch)
    place(cfg, pattern, float(value))
    with pytest.raises(ConfigError, match="^" + re.escape(f"{one_line(where)} = {float(value)}: is a float (write an integer: {value})")):
        validate_config(cfg, SCHEMA)


@pytest.mark.parametrize("pattern", NUMBER_FIELDS, ids=field_id)
def test_number_read_as_text_is_refused_with_the_yaml_hint(base_config, pattern):
    value = yaml.safe_load("v: 1e-2")["v"]  # YAML 1.1: no decimal point, so a string
    assert value == "1e-2"
    where, _ = place(base_config, pattern, value)
    hint = f"{one_line(where)} = '1e-2': is a string: YAML reads 1e-2 without a decimal point as text; write 1.0e-2"
    with pytest.raises(ConfigError, match=re.escape(hint)):
        validate_config(base_config, SCHEMA)


@pytest.mark.parametrize("text,expected", [
    ("1.0e5", "'1.0e5' is a string: YAML reads 1.0e5 without a sign in the exponent as text; write 1.0e+5"),
    ("-.5", "'-.5' is a string: YAML reads -.5 without a digit before the point as text; write -0.5"),
    ("'0.5'", "'0.5' is a string; write 0.5 without quotes"),
])
def test_number_text_hints(base_config, text, expected):
    base_config["sweeps"]["tiny"]["t_max"] = yaml.safe_load(f"v: {text}")["v"]
    value, why = expected.split(" ", 1)
    with pytest.raises(ConfigError, match="^" + re.escape(f"sweep tiny: t_max = {value}: {why}")):
        validate_config(base_config, SCHEMA)


def test_integer_read_as_text_is_refused_with_the_integer(base_config):
    base_config["sweeps"]["tiny"]["d"] = yaml.safe_load("v: 1e3")["v"]
    with pytest.raises(ConfigError, match="^" + re.escape("sweep tiny: d = '1e3': is a string; write the integer 1000")):
        validate_config(base_config, SCHEMA)


def test_other_text_still_gets_the_schema_message(base_config):
    base_config["sweeps"]["tiny"]["dt"] = "big"
    with pytest.raises(ConfigError, match="^sweep tiny: dt = big: is not of type 'number' \\(schema: type\\)\n") as exc:
        validate_config(base_config, SCHEMA)
    assert "'big' is not of type 'number'" in str(exc.value).split("\n", 1)[1]  # the schema's report after the line


@pytest.mark.parametrize("pattern", NUMBER_FIELDS, ids=field_id)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=str)
def test_non_finite_number_is_refused(base_config, pattern, value):
    """NaN passes every schema bound (comparisons are false), inf every open one."""
    where, _ = place(base_config, pattern, value)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{one_line(where)} = {value}: is not a finite number")):
        validate_config(base_config, SCHEMA)


def test_simulation_over_memory_budget_is_refused_before_compute(base_config):
    cfg = resolved(mutate(base_config, SW + ("d",), 100_000_000))
    with pytest.raises(ConfigError, match=r"^sweep default: memory_budget_gb = 16\.0: is less than the 7\.2e\+08 GB "
                                          r".*d=100000000.*lower sweeps\.default\.d \(a single run needs"):
        check_sweep("default", cfg["sweeps"]["default"])
    sweep = resolved(base_config)["sweeps"]["tiny"]  # a run fits, a chunk of 2 seeds × 2 runs does not
    one = sim_chunk_bytes(sweep, {"delta": 2.0, "seeds": [0], "members": [0]})
    sweep["memory_budget_gb"] = 1.5 * one / 1e9
    with pytest.raises(ConfigError, match=r"lower sweeps\.tiny\.chunk_size \(runs per job\) or sweeps\.tiny\.d"):
        check_sweep("tiny", sweep)
    sweep["chunk_size"] = 1
    check_sweep("tiny", sweep)


def test_chunk_bytes_is_the_job_memory_formula(base_config):
    """One formula for the budget check and the jobs' mem_mb: 8·(G·n·d + 8·G·d·b + 2·G·n·b)."""
    sweep = resolved(base_config)["sweeps"]["tiny"]  # d = 60; δ = 0.5: n = 30
    assert sim_chunk_bytes(sweep, {"delta": 0.5, "seeds": [0, 1], "members": [0] * 3}) == \
        8 * (2 * 30 * 60 + 8 * 2 * 60 * 3 + 2 * 2 * 30 * 3)


# What the Snakefile runs before its DAG (pipeline.config.check_config), on whole configs: the
# one place every refusal below passes through. Snakemake itself is started once, by
# test_workflow_stops_before_any_job (the message reaches the user; nothing runs or is written).
CHECK_CONFIG_CASES = [
    (SW + ("seeds",), 2.0, "sweep default: seeds = 2.0: is a float (write an integer: 2)"),
    (SW + ("grid", "alpha"), [math.nan], "sweep default: grid.alpha[0] = nan: is not a finite number"),
    (SW + ("grid", "alpha"), [math.inf], "sweep default: grid.alpha[0] = inf: is not a finite number"),
    (SW + ("dt",), "1e-2", "sweep default: dt = '1e-2': is a string: YAML reads 1e-2 without a decimal point"),
    (SW + ("d",), 100_000_000, "sweep default: memory_budget_gb = 16.0: is less than"),
]


@pytest.mark.parametrize("path,value,expected", CHECK_CONFIG_CASES, ids=[c[2].split(" =")[0] for c in CHECK_CONFIG_CASES])
def test_check_config_stops_with_the_message_before_any_job(tmp_path, base_config, path, value, expected):
    from dln_kernels.pipeline.config import check_config

    cfg = mutate(base_config, path, value)
    cfg["sweep"] = "default"
    with pytest.raises(ConfigError) as exc:
        check_config(cfg, SCHEMA)
    assert str(exc.value).startswith(expected)


# ----------------------------------------------------------------------------------------------
# designs (dln_kernels.model.designs): refused before compute with the key named; the default changes nothing
# ----------------------------------------------------------------------------------------------
def test_default_design_changes_no_chunk(base_config):
    cfg = resolved(base_config)
    for name in ("default", "tiny"):
        plain = make_chunks(cfg["sweeps"][name])
        for spec in ({"kind": "gaussian"}, [{"kind": "gaussian"}]):
            assert make_chunks({**cfg["sweeps"][name], "design": spec}) == plain
        assert all("design" not in c for c in plain)


def test_design_sweep_chunks_carry_their_design_and_d(base_config):
    pytest.importorskip("sklearn")
    sweep = resolved(base_config)["sweeps"]["universality"]
    chunks = make_chunks(sweep)
    by_design = {}
    for c in chunks:
        by_design.setdefault(c["design"]["name"], []).append(c)
        assert c["name"].startswith(c["design"]["name"] + "_delta")
    assert {k: v[0]["design"]["d"] for k, v in by_design.items()} == {
        "gaussian_d432": 432, "patches_zca": 432, "patches_standardize": 432, "powerlaw_d432": 432,
        "digits_zca": 61, "digits_standardize": 61, "gaussian_d61": 61}
    assert len({c["name"] for c in chunks}) == len(chunks)


@pytest.mark.parametrize("design, delta, match", [
    ([{"kind": "gaussian"}, {"kind": "digits"}], [0.5, 30.0],
     r"^sweep tiny: grid\.delta = \[0\.5, 30\.0\]: design 'digits_standardize' \(digits\) has 1797 rows, "
     r"fewer than the n=1830 rows asked for \(delta=30.0, d=61\); lower grid\.delta to <= 29\.5 \(design\[1\]\)"),
    ({"kind": "image_patches", "patch": 12, "stride": 40}, [2.0],
     r"^sweep tiny: grid\.delta = \[2\.0\]: .* has 352 rows, fewer than the n=864.* \(design\)"),
])
def test_too_many_rows_refused_before_compute(base_config, design, delta, match):
    pytest.importorskip("sklearn")
    cfg = copy.deepcopy(base_config)
    cfg["sweeps"]["tiny"]["design"] = design
    cfg["sweeps"]["tiny"]["grid"]["delta"] = delta
    cfg = resolved(cfg)
    with pytest.raises(ConfigError, match=match):
        check_sweep("tiny", cfg["sweeps"]["tiny"])


@pytest.mark.parametrize("design, match", [
    ({"kind": "mnist"}, r"^sweep tiny: design\.kind = mnist: unknown design kind 'mnist'"),
    ([{"kind": "gaussian"}, {"kind": "image_patches", "patch": 700}],
     r"^sweep tiny: design\[1\]\.patch = 700: 700 is larger than image china\.jpg \(427 x 640 pixels\)"),
    ({"kind": "digits", "d": 64}, r"^sweep tiny: design\.d = 64: 64 disagrees"),
    ([{"kind": "digits"}, {"kind": "digits", "whiten": "standardize"}], r"^sweep tiny: design\[1\]\.name = \(not set\): 'digits_standardize' is used twice"),
])
def test_bad_designs_refused_naming_the_key(base_config, design, match):
    pytest.importorskip("sklearn")
    cfg = copy.deepcopy(base_config)
    cfg["sweeps"]["tiny"]["design"] = design
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg, SCHEMA)


PHENOMENON_SCHEDULE_CASES = [
    # a figure that uses one constant dt (discrete-time theory, one time axis) refuses per-point steps
    (("sweeps", "incremental", "schedule"), {"kind": "alpha_rule", "c": 0.01, "b": 0.1, "n_steps": 100},
     "sweep incremental: schedule = {kind: alpha_rule, c: 0.01, b: 0.1, n_steps: 100, cap: 0.9}: kind 'alpha_rule': "
     "the phenomenon figure 'incremental' of sweep "
     "'incremental' needs one constant step shared by all points"),
    # ... and a shared schedule whose step varies
    (("sweeps", "grokking", "schedule"), {"kind": "geometric", "dt0": 0.01, "ratio": 1.01, "dt_max": 0.02},
     "sweep grokking: schedule = {kind: geometric, dt0: 0.01, ratio: 1.01, dt_max: 0.02}: kind 'geometric': "
     "the phenomenon figure 'grokking_curves'"),
    # a figure built for a constant step per point takes alpha_rule but not a varying step
    (("sweeps", "timescales", "schedule"), {"kind": "geometric", "dt0": 0.001, "ratio": 1.01, "dt_max": 0.003},
     "sweep timescales: schedule = {kind: geometric, dt0: 0.001, ratio: 1.01, dt_max: 0.003}: kind 'geometric': "
     "the phenomenon figure 'timescales' of sweep "
     "'timescales' needs a constant step per point"),
]


@pytest.mark.parametrize("path,value,expected", PHENOMENON_SCHEDULE_CASES, ids=["alpha_rule", "geometric", "per_point"])
def test_phenomenon_figure_refuses_a_schedule_it_was_not_built_for(base_config, path, value, expected):
    """A phenomenon figure reads the time axes it was built for (row ``time_axis`` of the phenomena
    table); another schedule on its sweep is refused with the key named, not in the figure job
    after the compute (common.smk calls the check at parse time: the dry-run case below)."""
    from dln_kernels.pipeline.config import check_phenomenon_schedules

    name = path[1]
    check_phenomenon_schedules(name, resolved(copy.deepcopy(base_config))["sweeps"][name])  # the shipped one passes
    cfg = resolved(mutate(base_config, path, value))
    with pytest.raises(ConfigError, match="^" + re.escape(expected)):
        check_phenomenon_schedules(name, cfg["sweeps"][name])


def test_workflow_surfaces_a_phenomenon_schedule_refusal(base_config):
    """The parse-time check of the whole config (what the Snakefile runs before its DAG) stops
    with the message of :func:`check_phenomenon_schedules`."""
    from dln_kernels.pipeline.config import check_config

    path, value, expected = PHENOMENON_SCHEDULE_CASES[0]
    mutate(base_config, path[:-1] + ("t_max",), 2.0)  # few steps: no other check (DMFT memory) fires first
    cfg = mutate(base_config, path, value)
    cfg["sweep"] = "incremental"
    with pytest.raises(ConfigError, match="^" + re.escape(expected)):
        check_config(cfg, SCHEMA)
