"""Reading a curve's time axis from an aggregated Dataset (simulations.nc, dmft.nc).

With one shared step schedule the record dim is ``time``; with per-point steps it is ``step`` and
``time`` is a coordinate over the grid axes and step (docs/file_formats.md, "Time axis").
"""

from __future__ import annotations

import numpy as np


def record_dim(ds) -> str:
    """The dim of the recorded steps: ``time`` when every point shares its steps, ``step`` when the
    points have their own step sizes (then ``time`` is a coordinate over the grid axes and step)."""
    return "step" if "step" in ds.dims else "time"


def point_times(ds, point: dict) -> np.ndarray:
    """Recorded times (T,) of the point ``point`` {axis: value} (axes ``time`` does not depend on,
    e.g. the seed, are ignored; with a shared time axis every point gets the same array)."""
    t = ds["time"]
    return np.asarray(t.sel({k: v for k, v in point.items() if k in t.dims and k != "time"}).values, dtype=float)
