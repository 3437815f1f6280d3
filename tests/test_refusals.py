"""Refused before compute (issue: tail-aware step checks, plans and budgets, inapplicable keys,
one-line errors). Every case is refused by the parse-time check of the whole config
(``pipeline.config.check_config``, what the Snakefile runs before its DAG), so no job is planned
and nothing is computed or written; the first line of each message is
``sweep NAME: KEY = VALUE: why (what would pass)``."""

import copy
import re

import pytest
from conftest import SCHEMA

from dln_kernels.model.priors import prior_of
from dln_kernels.model.schedule import network_metric, stability_bound
from dln_kernels.pipeline import chunks as chunks_mod
from dln_kernels.pipeline.chunks import dmft_layout, make_chunks, make_dmft_chunks, sim_layout
from dln_kernels.pipeline.config import ConfigError, check_config
from dln_kernels.pipeline.plan import main as plan_main
from dln_kernels.pipeline.budget import plan_of

ONE_LINE = re.compile(r"^sweep [\w-]+: [\w.\[\]]+ = .+: .+")

# The depth-4 case that passed the old check and died in the DMFT with DivergenceError: with
# 8000 paths the ρ·N = 2400 nonzero β* reach |β*| ≈ 3.53 (the 1 − 1/2400 quantile of |N(0,1)|).
DEEP = {"model": "dln", "network": "pm", "d": 1000, "seeds": 2, "dt": 0.02, "t_max": 10.0,
        "grid": {"alpha": [0.5], "delta": [1.5], "rho": [0.3], "sigma": [0.0], "weight_decay": [0.02], "depth": [4]},
        "dmft": {"enabled": True, "n_paths": 8000, "n_batches": 8}, "static": {"enabled": False}}


def config_with(**sweeps):
    cfg = {"sweep": list(sweeps), "sweeps": copy.deepcopy(sweeps)}
    return cfg


def refusal(cfg) -> str:
    with pytest.raises(ConfigError) as exc:
        check_config(cfg, SCHEMA)
    msg = str(exc.value)
    assert ONE_LINE.match(msg.splitlines()[0]), msg
    return msg


# ---- 1. tail-aware stability ------------------------------------------------------------------
def test_tail_bound_refuses_the_dmft_that_diverged_and_keeps_the_simulation():
    msg = refusal(config_with(deep=DEEP))
    head = msg.splitlines()[0]
    assert head.startswith("sweep deep: dt = 0.02: the step 0.02 exceeds the DMFT stability bound 0.01832 at alpha=0.5, "
                           "delta=1.5, rho=0.3, weight_decay=0.02, depth=4")
    assert "2400 nonzero teacher draws, |beta*| ~ 3.53" in head
    fix = float(re.search(r"use dt <= ([0-9.e-]+)", head)[1])
    check_config(config_with(deep={**DEEP, "dt": fix}), SCHEMA)  # the step it proposes passes
    # the simulation alone draws ρ·d·seeds = 600 nonzero β* (|β*| ~ 3.14): bound 0.0217 > 0.02
    check_config(config_with(deep_sim={**DEEP, "dmft": {"enabled": False}}), SCHEMA)


def test_tail_bound_counts_every_seed_of_the_simulation():
    many = {**DEEP, "dmft": {"enabled": False}, "seeds": 8}  # 2400 draws: the DMFT's count
    head = refusal(config_with(many=many)).splitlines()[0]
    assert "exceeds the simulation stability bound 0.01832" in head and "2400 nonzero teacher draws" in head


def test_tail_bound_both_sides_and_closed_form():
    """curvature = max(H·metric(1), metric(b_N)) + λ, b_N the 1 − 1/N quantile of |N(0, 1)|."""
    gb = {"kind": "gauss_bernoulli"}
    b = prior_of(gb).largest_of(2400)
    assert b == pytest.approx(3.5293, abs=1e-4)
    expected = 2.0 / (16 * ((b + 0.5**4) ** 1.5 + 0.5**6) + 0.02)
    assert stability_bound("dln", 0.5, 1.5, 0.02, gb, "pm", 4, 1.0, n_draws=2400) == pytest.approx(expected, rel=1e-12)
    assert network_metric("pm", 0.5, b, 4) == pytest.approx(16 * ((b + 0.0625) ** 1.5 + 0.015625), rel=1e-12)
    assert network_metric("uv", 0.5, b) == pytest.approx(0.25 + 2 * b, rel=1e-12)
    # without draws (or when the bulk binds) it is the bound of before: α_rule steps keep their bits
    assert stability_bound("dln", 0.5, 1.5, 0.02, gb, "pm", 4) == stability_bound("dln", 0.5, 1.5, 0.02, gb, "pm", 4, 1.0, None)
    assert stability_bound("dln", 3.0, 0.5, 0.0, gb, "uv", 2, 1.0, n_draws=300) == stability_bound("dln", 3.0, 0.5, 0.0, gb)
    # just below and just above the bound
    bound = stability_bound("dln", 0.5, 1.5, 0.02, gb, "pm", 4, 1.0, n_draws=0.3 * 8000)
    check_config(config_with(deep={**DEEP, "dt": 0.999 * bound}), SCHEMA)
    refusal(config_with(deep={**DEEP, "dt": 1.001 * bound}))


def test_bounded_prior_uses_its_exact_maximum():
    pm1 = {"kind": "discrete", "values": [-1.0, 1.0], "probs": [0.5, 0.5]}
    assert prior_of(pm1).largest_of(10**9) == 1.0
    assert stability_bound("dln", 0.5, 1.5, 0.02, pm1, "pm", 4, 1.0, n_draws=10**9) == \
        stability_bound("dln", 0.5, 1.5, 0.02, pm1, "pm", 4)
    check_config(config_with(deep={**DEEP, "prior": pm1, "dt": 0.03}), SCHEMA)  # ±1: no tail to fear


# ---- 2. plan and budgets --------------------------------------------------------------------
def test_plan_counts_equal_the_enumerated_jobs(base_config):
    check_config(base_config, SCHEMA)
    for name, sweep in base_config["sweeps"].items():
        sim, dm, plan = sim_layout(sweep), dmft_layout(sweep), plan_of(name, sweep)
        chunks, dchunks = make_chunks(sweep), make_dmft_chunks(sweep)
        assert (sim["jobs"], sim["runs"]) == (len(chunks), sum(len(c["seeds"]) * len(c["members"]) for c in chunks)), name
        assert (dm["jobs"], dm["points"]) == (len(dchunks), sum(len(c["points"]) for c in dchunks)), name
        assert plan.runs == sim["runs"] and plan.core_hours > 0 and plan.disk_bytes > 0


def test_over_budget_is_refused_from_counts_without_enumerating(base_config, monkeypatch):
    def no_enumeration(*a, **k):
        raise AssertionError("the budget check enumerated the chunks")

    monkeypatch.setattr(chunks_mod, "make_chunks", no_enumeration)
    base_config["sweeps"]["tiny"]["seeds"] = 100_000_000
    msg = refusal(base_config)
    assert msg.startswith("sweep tiny: budget.jobs = 20000: the sweep needs 1e+08 jobs (raise chunk_size")
    assert "runs (simulation)       400,000,000" in msg  # the plan follows the line
    base_config["sweeps"]["tiny"]["seeds"] = 2  # validated once: restated defaults must pass a second check
    base_config["sweeps"]["tiny"]["budget"] = {"core_hours": 1e-6}
    assert refusal(base_config).startswith("sweep tiny: budget.core_hours = 1e-06: the sweep needs")


def test_plan_command_prints_the_plan_and_refuses(capsys, tmp_path, base_config):
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(base_config))
    assert plan_main(["tiny", "--configfile", str(tmp_path / "c.yaml"), "--schema", str(SCHEMA)]) == 0
    out = capsys.readouterr().out
    assert "plan of sweep tiny:" in out and "simulation jobs         2" in out
    base_config["sweeps"]["tiny"]["budget"] = {"jobs": 1}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(base_config))
    assert plan_main(["tiny", "--configfile", str(tmp_path / "c.yaml"), "--schema", str(SCHEMA)]) == 1
    assert capsys.readouterr().err.startswith("sweep tiny: budget.jobs = 1: the sweep needs 3 jobs")


# ---- 3. inapplicable keys -------------------------------------------------------------------
INAPPLICABLE_CASES = [
    ({"model": "linear", "network": "pm"}, "sweep x: network = pm: model linear trains beta directly"),
    ({"dmft": {"enabled": False, "n_paths": 4000}}, "sweep x: dmft.n_paths = 4000: is a setting of the dmft stage"),
    ({"static": {"n_alpha": 5}}, "sweep x: static.n_alpha = 5: is a setting of the static stage"),
    ({"batch_sampling": "fixed"}, "sweep x: batch_sampling = fixed: chooses how mini-batches are drawn"),
    ({"model": "linear", "grid": {"alpha": [1.0], "delta": [0.5], "depth": [3]}},
     "sweep x: grid.depth = [3]: has no meaning for model linear (use depth: [2])"),
    ({"model": "linear", "effective_scale": True}, "sweep x: effective_scale = true: needs model dln with network uv"),
]


@pytest.mark.parametrize("change, expected", INAPPLICABLE_CASES, ids=[c[1].split(" =")[0][9:] for c in INAPPLICABLE_CASES])
def test_inapplicable_keys_are_refused(change, expected):
    sweep = {"d": 40, "dt": 0.05, "t_max": 1.0, "grid": {"alpha": [1.0], "delta": [0.5]}, **change}
    assert refusal(config_with(x=sweep)).startswith(expected)


def test_restated_defaults_are_not_inapplicable():
    sweep = {"model": "linear", "network": "uv", "d": 40, "dt": 0.05, "t_max": 1.0, "batch_sampling": "bernoulli",
             "grid": {"alpha": [1.0], "delta": [0.5]}, "dmft": {"enabled": False, "n_paths": 20000}}
    cfg = config_with(x=sweep)
    check_config(cfg, SCHEMA)
    check_config(cfg, SCHEMA)  # a checked config (defaults filled) passes again


def test_written_keys_that_apply_pass():
    sweep = {"d": 40, "dt": 0.05, "t_max": 1.0, "grid": {"alpha": [1.0], "delta": [0.5], "batch_fraction": [0.5]},
             "batch_sampling": "fixed", "network": "uv", "dmft": {"enabled": True, "n_paths": 400, "n_batches": 4},
             "static": {"enabled": True, "n_alpha": 5}}
    check_config(config_with(x=sweep), SCHEMA)


# ---- 4. one line first ------------------------------------------------------------------------
SCHEMA_FAULTS = [
    ({"dt": "big"}, "sweep x: dt = big: is not of type 'number' (schema: type)"),
    ({"grid": {"alpha": [-1.0], "delta": [0.5]}}, "sweep x: grid.alpha[0] = -1.0: is less than or equal to the minimum of 0"),
    ({"colour": "red"}, "sweep x: colour = red: is not a known key here (known: backend,"),
    ({"grid": {"alpha": [1.0]}}, "sweep x: grid.delta = (missing): is a required property (schema: required)"),
]


@pytest.mark.parametrize("change, expected", SCHEMA_FAULTS, ids=["type", "minimum", "unknown_key", "missing"])
def test_schema_faults_get_one_line_then_the_report(change, expected):
    sweep = {"d": 40, "dt": 0.05, "t_max": 1.0, "grid": {"alpha": [1.0], "delta": [0.5]}, **change}
    msg = refusal(config_with(x=sweep))
    assert msg.startswith(expected)
    assert "Failed validating" in msg.split("\n", 1)[1]  # the schema's own report comes after, not instead


def test_diagonal_design_steps_use_the_largest_scale():
    """A coordinate of scale s meets s times the curvature: the simulation's bound of a diagonal
    design is the isotropic one over s_max (two_level, 0.2 of the coordinates at 10× the rest:
    s_max = 10/(0.2·10 + 0.8) = 3.571); a rotated design keeps the isotropic bound."""
    sweep = {"d": 200, "dt": 0.05, "t_max": 1.0, "grid": {"alpha": [1.0], "delta": [0.5]},
             "design": {"kind": "two_level", "fraction": 0.2, "ratio": 10.0}}
    head = refusal(config_with(x=sweep)).splitlines()[0]
    iso = stability_bound("dln", 1.0, 0.5, 0.0, {"kind": "gauss_bernoulli"}, "uv", 2, 1.0, n_draws=0.2 * 200)
    assert f"stability bound {iso / (10 / 2.8):.4g}" in head and "largest diagonal design scale 3.571" in head
    check_config(config_with(x={**sweep, "dt": 0.99 * iso / (10 / 2.8)}), SCHEMA)
