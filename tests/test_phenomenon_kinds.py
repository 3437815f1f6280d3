"""The phenomena table (dln_kernels.measure.phenomenon_kinds): every row names things that exist,
i.e. its caption in workflow/report/, its drawing function in workflow/scripts/phenomena_plots.py,
its sweep in config.yaml and a callable measurement of dln_kernels.measure.phenomena."""

import dataclasses
import inspect
import sys

import pytest
import yaml
from conftest import REPO

from dln_kernels.measure import phenomena
from dln_kernels.measure.phenomenon_kinds import PHENOMENA, PHENOMENON_KINDS, TIME_AXES, PhenomenonKind

ROWS = list(PHENOMENON_KINDS.values())


@pytest.fixture(scope="module")
def phenomena_plots():
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    import phenomena_plots

    return phenomena_plots


@pytest.fixture(scope="module")
def sweeps():
    with open(REPO / "config.yaml") as f:
        return yaml.safe_load(f)["sweeps"]


def test_table_is_keyed_by_row_name_and_frozen():
    assert ROWS and all(isinstance(r, PhenomenonKind) and key == r.name for key, r in PHENOMENON_KINDS.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        ROWS[0].name = "other"
    for sweep, kinds in PHENOMENA.items():  # per sweep, its rows in table order
        assert kinds == [r.name for r in ROWS if r.sweep == sweep]
    assert {r.sweep for r in ROWS} == set(PHENOMENA)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_row_names_things_that_exist(row, phenomena_plots, sweeps):
    assert (REPO / "workflow" / "report" / f"{row.caption}.rst").is_file()
    assert callable(getattr(phenomena_plots, row.figure, None)), f"phenomena_plots.{row.figure}"
    assert list(inspect.signature(getattr(phenomena_plots, row.figure)).parameters) == ["m", "sims", "dmft", "prior"]
    assert row.sweep in sweeps
    assert callable(row.measure) and getattr(phenomena, row.measure.__name__) is row.measure
    assert ("prior" in inspect.signature(row.measure).parameters) == row.reads_prior
    assert row.time_axis in TIME_AXES and row.label
    assert all(name not in ("fig", "table") and "{sweep}" in path for name, path in row.extra_outputs.items())


def test_a_bad_time_axis_is_refused():
    with pytest.raises(ValueError, match="time_axis"):
        PhenomenonKind("x", "x", "x", "x", phenomena.tradeoff_measure, "tradeoff", time_axis="geometric")
