"""The phenomena table (docs/phenomena.md): one row per phenomenon figure kind.

A row names everything the pipeline needs to draw the figure of one phenomenon:

- ``name``: the figure kind (``results/NAME/figures/KIND.png``, ``results/NAME/phenomena/KIND.csv``,
  rule ``phenomenon_KIND``);
- ``sweep``: the named sweep of ``config.yaml`` that draws it (``final_targets`` adds the figure there);
- ``caption``: its report caption, ``workflow/report/CAPTION.rst``; ``label``: its label in the report;
- ``measure``: the measurement, a function of :mod:`dln_kernels.measure.phenomena` called as
  ``measure(sims, dmft, prior)`` (``measure(sims, dmft)`` where ``reads_prior`` is false) on the
  aggregated Datasets; it returns a dict whose ``"table"`` (a DataFrame) is the figure's CSV table
  and whose other keys named in ``extra_outputs`` are written there;
- ``figure``: the NAME of the drawing function in ``workflow/scripts/phenomena_plots.py``, called as
  ``figure(m, sims, dmft, prior)`` with the measurement ``m``; it returns the figure (drawing stays
  in the plotting scripts, measurement here);
- ``time_axis``: the time axes the measurement reads: ``"constant"`` (one constant step shared by
  every point; its measurement or discrete-time theory uses that dt and one time axis) or
  ``"constant_per_point"`` (each point a constant step of its own: schedule ``constant`` or
  ``alpha_rule``, ``dt_scale`` allowed); a sweep whose schedule the figure was not built for is
  refused before any job runs (:func:`dln_kernels.pipeline.config.check_phenomenon_schedules`);
- ``extra_outputs``: named outputs beyond the figure and its CSV table (output name -> path
  pattern); each name is a key of the measurement's dict, written as CSV.

A new phenomenon is one row here (with its measure function, its drawing function, its caption and
its sweep): the rules, the report and the parse-time checks read this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

from dln_kernels.measure import phenomena as _m
from dln_kernels.model.designs import is_default

TIME_AXES = ("constant", "constant_per_point")


@dataclass(frozen=True)
class PhenomenonKind:
    """One phenomenon figure kind (see the module docstring for the fields)."""

    name: str
    sweep: str
    caption: str
    label: str
    measure: Callable
    figure: str
    reads_prior: bool = True
    time_axis: str = "constant"
    extra_outputs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.time_axis not in TIME_AXES:
            raise ValueError(f"phenomenon kind {self.name!r}: time_axis {self.time_axis!r} is not one of {TIME_AXES}")
        object.__setattr__(self, "extra_outputs", MappingProxyType(dict(self.extra_outputs)))


_ROWS = (
    PhenomenonKind("timescales", "timescales", "timescales", "search phase, lazy phase, crossover",
                   _m.timescales_measure, "timescales", time_axis="constant_per_point"),
    PhenomenonKind("search_phase", "timescales", "search_phase", "search phase vs ln(1/alpha)",
                   _m.search_phase_measure, "search_phase", time_axis="constant_per_point"),
    PhenomenonKind("lazy_time", "timescales", "lazy_time", "lazy time vs alpha",
                   _m.lazy_time_measure, "lazy_time", time_axis="constant_per_point"),
    PhenomenonKind("incremental", "incremental", "incremental", "incremental learning",
                   _m.incremental_measure, "incremental"),
    PhenomenonKind("grokking_curves", "grokking", "grokking_curves", "grokking-like delay: curves",
                   _m.grokking_curves_measure, "grokking_curves", reads_prior=False),
    PhenomenonKind("grokking_delay", "grokking", "grokking_delay", "grokking-like delay vs (alpha, lambda)",
                   _m.grokking_delay_measure, "grokking_delay", reads_prior=False,
                   extra_outputs={"summary": "results/{sweep}/phenomena/grokking_delay_fit.csv"}),
    PhenomenonKind("tradeoff", "tradeoff", "tradeoff", "rate vs generalisation",
                   _m.tradeoff_measure, "tradeoff", reads_prior=False),
    PhenomenonKind("depth_escape", "depth", "depth_escape", "depth: saddle escape and final error",
                   _m.depth_escape_measure, "depth_escape",
                   extra_outputs={"fits": "results/{sweep}/phenomena/depth_escape_fit.csv"}),
    PhenomenonKind("universality", "universality", "universality", "real designs vs isotropic and spectrum DMFT",
                   _m.universality_measure, "universality", reads_prior=False),
    PhenomenonKind("sgd_noise", "sgd", "sgd_noise", "mini-batch noise vs solution",
                   _m.sgd_noise_measure, "sgd_noise", reads_prior=False),
    PhenomenonKind("step_size", "step_size", "step_size", "step size vs solution",
                   _m.step_size_measure, "step_size", time_axis="constant_per_point"),
)

PHENOMENON_KINDS = {row.name: row for row in _ROWS}
assert len(PHENOMENON_KINDS) == len(_ROWS), "two rows of the phenomena table share a name"

# Which phenomenon figures each named sweep draws, in table order.
PHENOMENA: dict = {}
for _row in _ROWS:
    PHENOMENA.setdefault(_row.sweep, []).append(_row.name)


def phenomenon_figures(name: str, sweep: dict) -> list:
    """The phenomenon figures sweep ``name`` (its resolved config ``sweep``) draws: with the DMFT
    on, those of the table for the named sweeps, and the universality figure for a sweep over
    designs (any name)."""
    if not sweep["dmft"]["enabled"]:
        return []
    if not is_default(sweep.get("design")):
        return ["universality"]
    return list(PHENOMENA.get(name, []))
