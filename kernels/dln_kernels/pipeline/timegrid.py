"""A sweep's steps, resolved once: the step schedule, the number of steps, the recorded steps and
their times (:class:`TimeGrid`), shared by every point or per point (``alpha_rule``,
``dt_scale``). Simulation and DMFT jobs read the same grid, so both integrate the same discrete
algorithm (docs/theory.md §1)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dln_kernels.model.schedule import (DEFAULT_SCHEDULE, check_schedule, is_per_point, n_steps_for, output_steps, rule_dt,
                                        shared_dt_schedule, stability_bound, step_times)
from dln_kernels.registry import AXES, implicit


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
