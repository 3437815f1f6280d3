"""Configuration validation: bad input stops the workflow before compute, naming key and value."""

import subprocess
import sys

import pytest
import yaml
from conftest import REPO, resolved
from snakemake_interface_common.exceptions import WorkflowError

from dln_kernels.sweep import ConfigError, check_sweep, make_chunks


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
    with pytest.raises(WorkflowError) as exc:
        resolved(mutate(base_config, path, value))
    assert expected in str(exc.value)


def test_defaults_are_filled(base_config):
    cfg = resolved(base_config)
    tiny = cfg["sweeps"]["tiny"]
    assert tiny["backend"] == "numpy" and tiny["dtype"] == "float64" and tiny["grid"]["sigma"] == [0.0]
    assert tiny["output"]["spacing"] == "log"


def test_unstable_step_is_rejected_naming_key_and_bound(base_config):
    cfg = resolved(mutate(base_config, SW + ("dt",), 0.2))
    with pytest.raises(ConfigError, match=r"sweeps\.default\.dt: 0\.2 exceeds the stability bound .* alpha=3"):
        check_sweep("default", cfg["sweeps"]["default"])


def test_discrete_prior_probabilities_must_sum_to_one(base_config):
    prior = {"kind": "discrete", "values": [1, 2], "probs": [0.5, 0.6]}
    cfg = resolved(mutate(base_config, SW + ("prior",), prior))
    with pytest.raises(ConfigError, match=r"sweeps\.default\.prior\.probs"):
        check_sweep("default", cfg["sweeps"]["default"])


def test_shipped_sweeps_pass_and_chunk_cover_the_grid(base_config):
    cfg = resolved(base_config)
    for name, sweep in cfg["sweeps"].items():
        check_sweep(name, sweep)
        chunks = make_chunks(sweep)
        n_runs = sum(len(c["seeds"]) * len(c["members"]) for c in chunks)
        g = sweep["grid"]
        expected = sweep["seeds"] * len(g["alpha"]) * len(g["delta"]) * len(g["rho"]) * len(g["sigma"]) * len(g["weight_decay"])
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
    """The real entry point: a bad value and an unknown sweep both stop `snakemake` at parse time."""
    cfg = mutate(base_config, SW + ("dt",), 0.2)
    proc = snakemake_dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "sweeps.default.dt: 0.2 exceeds the stability bound" in proc.stdout + proc.stderr
    proc = snakemake_dry_run(tmp_path, base_config, "--config", "sweep=nosuch")
    assert proc.returncode != 0
    assert "unknown sweep 'nosuch'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_dmft_over_memory_budget_is_refused_before_compute(base_config):
    cfg = resolved(base_config)
    sweep = cfg["sweeps"]["default"]  # 15000 steps: T² matrices far beyond a 1 GB budget
    sweep["dmft"].update(enabled=True, memory_budget_gb=1.0)
    with pytest.raises(ConfigError, match=r"sweeps\.default\.dmft\.memory_budget_gb: 1\.0 GB is less than"):
        check_sweep("default", sweep)


def test_alpha_below_the_dtype_range_is_refused(base_config):
    """The DLN state is exact down to alpha_min(dtype) (1.5e-153 float64, 1.1e-18 float32): below
    it the shrinking coordinate would underflow, so the config is refused naming key and value."""
    cfg = resolved(base_config)
    sweep = cfg["sweeps"]["default"]
    sweep["grid"]["alpha"] = [1e-100, 1.0]
    check_sweep("default", sweep)  # fine in float64
    sweep["dtype"] = "float32"
    with pytest.raises(ConfigError, match=r"sweeps\.default\.grid\.alpha: 1e-100 is below 1.1e-18.*float32"):
        check_sweep("default", sweep)
    sweep["grid"]["alpha"] = [1e-15, 1.0]
    check_sweep("default", sweep)
    sweep["dtype"], sweep["grid"]["alpha"] = "float64", [1e-160]
    with pytest.raises(ConfigError, match=r"grid\.alpha: 1e-160 is below 1.5e-153"):
        check_sweep("default", sweep)
