"""The registry of axes and observables drives the schema, the chunking and the file layouts."""

import yaml
from conftest import SCHEMA, resolved

from dln_kernels.pipeline import io
from dln_kernels.pipeline.chunks import make_chunks, make_dmft_chunks
from dln_kernels.pipeline.run import DMFT_OBSERVABLES, STATIC_VARIABLES
from dln_kernels.registry import AXES, GRID_AXES, MEMBER_AXES, OBSERVABLES, observables, schema_grid


def test_schema_grid_section_is_the_registry():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["$defs"]["sweep"]["properties"]["grid"] == schema_grid()


def test_everything_derived_by_name(base_config):
    assert io.SIM_DIMS == (*GRID_AXES, "seed", "time")
    assert set(MEMBER_AXES) | {a for a in AXES if AXES[a].role == "chunk"} == set(GRID_AXES)
    assert DMFT_OBSERVABLES == observables("dmft")
    assert set(STATIC_VARIABLES.values()) == set(observables("static"))
    cfg = resolved(base_config)["sweeps"]["tiny"]
    # runs by axis name; an axis at its implicit default (batch_fraction [1.0]) is left out
    explicit = {a for a in GRID_AXES if not AXES[a].implicit_default}
    for chunk in make_chunks(cfg):
        assert all(set(m) == set(MEMBER_AXES) & explicit for m in chunk["members"])
    for chunk in make_dmft_chunks(cfg):
        assert all(set(p) == explicit for p in chunk["points"])
    sgd = {**cfg, "grid": {**cfg["grid"], "batch_fraction": [0.5, 1.0]}}
    for chunk in make_chunks(sgd):
        assert all(set(m) == set(MEMBER_AXES) & (explicit | {"batch_fraction"}) for m in chunk["members"])
    for chunk in make_dmft_chunks(sgd):
        assert all(set(p) == explicit | {"batch_fraction"} for p in chunk["points"])
    # every recorded quantity of every producer is described (long_name, units)
    for o in OBSERVABLES.values():
        assert io.describe(o.name) == (o.long_name, o.units)
    for a in (*GRID_AXES, "seed", "time", "step"):
        assert io.describe(a) is not None, a


def test_reordered_axes_give_the_same_chunks(base_config):
    cfg = resolved(base_config)["sweeps"]["default"]
    again = {**cfg, "grid": {a: list(reversed(v)) for a, v in reversed(list(cfg["grid"].items()))}}
    assert [c["name"] for c in make_chunks(cfg)] == [c["name"] for c in make_chunks(again)]
    assert [c["name"] for c in make_dmft_chunks(cfg)] == [c["name"] for c in make_dmft_chunks(again)]


def test_one_copy_of_the_package():
    """`kernels/` holds the one package `dln_kernels`; from the repository root, `import
    kernels.static` must fail rather than load a second copy of the modules (issue 12)."""
    import subprocess
    import sys
    from pathlib import Path

    import dln_kernels

    root = Path(__file__).resolve().parents[1]
    assert Path(dln_kernels.__file__).resolve().parent == root / "kernels" / "dln_kernels"
    assert not (root / "kernels" / "__init__.py").exists()
    code = (
        "import importlib, dln_kernels.static.solver as s\n"
        "try:\n    importlib.import_module('kernels.static')\nexcept ModuleNotFoundError:\n    print('one')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "one"
