"""DMFT phase-diagram figures, drawn from the tables of ``dln_kernels.measure.phase_diagram`` (testable:
pure functions of DataFrames, no file I/O).

- :func:`dmft_phase_diagram`: final E_test over the two varied axes — DMFT, long-time theory,
  simulations on one log colour scale — and the DMFT − simulation z-score;
- :func:`dmft_phase_times`: DMFT (top row) and simulation (bottom row) E_test maps at several times.

Cells where the DMFT lies below its noise floor are hatched (///), cells where it had not settled
by the last time are marked with a dot (DMFT panels only); the long-time theory's non-converged
points are blank.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm, TwoSlopeNorm  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from dln_kernels.measure.phase_diagram import Z_AGREE, log_spaced  # noqa: E402
from dln_kernels.registry import AXES  # noqa: E402

AXIS_LABELS = {name: axis.axis_label() for name, axis in AXES.items()}  # from the registry
E_TEST = r"$E_\mathrm{test} = \|\beta-\beta^*\|^2/(2d)$"
CMAP = "viridis"  # sequential, perceptually uniform, readable in grey
Z_CMAP = "vlag"  # diverging around 0 (seaborn): blue DMFT below the simulations, red above
Z_CLIP = 4.0


def _edges(values, log: bool) -> np.ndarray:
    """Cell edges around sorted centres: midpoints (geometric midpoints on a log axis)."""
    v = np.log(values) if log else np.asarray(values, dtype=float)
    if v.size == 1:
        mid = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        inner = 0.5 * (v[1:] + v[:-1])
        mid = np.concatenate([[2 * v[0] - inner[0]], inner, [2 * v[-1] - inner[-1]]])
    return np.exp(mid) if log else mid


def _grid(table, column):
    """(x values, y values, (ny, nx) array of ``column``) of a phase table with its axes in attrs."""
    x, y = table.attrs["axes"]
    wide = table.pivot(index=y, columns=x, values=column).sort_index().sort_index(axis=1)
    return wide.columns.to_numpy(float), wide.index.to_numpy(float), wide.to_numpy()


def _log_norm(*arrays) -> LogNorm:
    """One log colour scale over the positive finite values, at most 6 decades deep."""
    vals = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size == 0:
        return LogNorm(1e-6, 1.0)
    return LogNorm(max(vals.min(), vals.max() * 1e-6), vals.max())


def _draw(ax, table, column, norm, cmap, *, flags=True, below=None, unsettled=None, ylabel=True):
    """One heat map of ``column`` over the table's axes; hatch/dot the flagged cells."""
    x, y = table.attrs["axes"]
    xs, ys, vals = _grid(table, column)
    xlog, ylog = log_spaced(xs), log_spaced(ys)
    xe, ye = _edges(xs, xlog), _edges(ys, ylog)
    v = np.asarray(vals, dtype=float)
    if isinstance(norm, LogNorm):  # zeros and values under the scale in the lowest colour
        v = np.where(np.isfinite(v), np.maximum(v, norm.vmin), np.nan)
    mesh = ax.pcolormesh(xe, ye, v, norm=norm, cmap=cmap, shading="flat")
    if flags:
        below = _grid(table, "dmft_below_floor")[2].astype(bool) if below is None else below
        unsettled = ~_grid(table, "dmft_settled")[2].astype(bool) if unsettled is None else unsettled
        for i in range(len(ys)):
            for j in range(len(xs)):
                if below[i, j]:
                    ax.add_patch(Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i], fill=False,
                                           hatch="///", edgecolor="0.45", lw=0))
                if unsettled[i, j]:
                    ax.plot(xs[j], ys[i], "o", ms=4, color="white", mec="0.2", mew=0.8)
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    # ticks at the grid values (the cells' centres), in plain numbers
    ax.set_xticks(xs, [f"{v:g}" for v in xs], minor=False)
    ax.set_yticks(ys, [f"{v:g}" for v in ys], minor=False)
    ax.minorticks_off()
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y) if ylabel else "")
    return mesh


def _fixed_text(table) -> str:
    return ", ".join(f"{AXES[a].symbol} = {v:g}" for a, v in table.attrs.get("fixed", {}).items()
                     if a in AXES and not (a == "batch_fraction" and v == 1) and not (a == "depth" and v == 2))


def _legend(fig):
    handles = [Patch(facecolor="white", hatch="///", edgecolor="0.45", label="DMFT below its noise floor"),
               plt.Line2D([], [], ls="", marker="o", ms=4, color="white", mec="0.2",
                          label="DMFT not settled (changed > 2 % from t_final/4 to t_final)")]
    fig.legend(handles=handles, loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 0.0))


def dmft_phase_diagram(table, summary=None):
    """Four heat maps over the phase table's axes: DMFT final E_test, long-time theory, simulation
    seed mean (one shared log colour scale) and the z-score (DMFT − sim)/√(se_DMFT² + se_sim²)."""
    sns.set_theme(context="notebook", style="white")
    norm = _log_norm(table["dmft_e_test"], table["static_e_test"], table["sim_e_test"])
    fig, axes = plt.subplots(1, 4, figsize=(19.5, 4.6), constrained_layout=True)
    t_end = float(table["t_final"].max())
    panels = (
        ("dmft_e_test", f"DMFT (d → ∞), t = {t_end:g}", True),
        ("static_e_test", "long-time theory (gradient flow, t → ∞)", False),
        ("sim_e_test", f"simulations, mean of {int(table['n_seeds'].max())} seeds, t = {t_end:g}", False),
    )
    for k, (ax, (col, title, flags)) in enumerate(zip(axes, panels)):
        mesh = _draw(ax, table, col, norm, CMAP, flags=flags, ylabel=k == 0)
        ax.set_title(title, fontsize=11)
    cb = fig.colorbar(mesh, ax=axes[:3], shrink=0.9, pad=0.01)
    cb.set_label("final " + E_TEST)
    z = table["z_dmft_sim"].clip(-Z_CLIP, Z_CLIP)
    # no flag markers here: the cells carry their z-score as text
    mesh = _draw(axes[3], table.assign(z_clipped=z), "z_clipped", TwoSlopeNorm(0.0, -Z_CLIP, Z_CLIP), Z_CMAP,
                 flags=False, ylabel=False)
    _, _, zv = _grid(table, "z_dmft_sim")
    xs, ys, _ = _grid(table, "dmft_e_test")
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            if np.isfinite(zv[i, j]):
                axes[3].text(xv, yv, f"{zv[i, j]:+.1f}", ha="center", va="center", fontsize=7, color="0.1")
    axes[3].set_title("(DMFT − sim) / combined standard error", fontsize=11)
    cb = fig.colorbar(mesh, ax=axes[3], shrink=0.9, pad=0.02, extend="both")
    cb.set_label(f"z-score (clipped at ±{Z_CLIP:g})")
    head = f"Final test error: DMFT, long-time theory and simulations ({_fixed_text(table)})"
    if summary:
        head += (f"\nsettled DMFT points above the floor: {summary['n_trusted']}/{summary['n_points']}; "
                 f"median |z| vs simulations {summary['median_abs_z_sim']:.2f} "
                 f"({100 * summary['frac_abs_z_sim_le_2']:.0f} % within {Z_AGREE:g}); "
                 f"median |DMFT − theory|/theory {100 * summary['median_rel_dev_static']:.1f} %")
    fig.suptitle(head, fontsize=12)
    _legend(fig)
    return fig


def dmft_phase_times(times_table):
    """E_test over the phase table's axes at each snapshot time: DMFT (top) and simulation seed
    mean (bottom), one shared log colour scale; the DMFT below its floor hatched."""
    sns.set_theme(context="notebook", style="white")
    snaps = sorted(times_table["snapshot"].unique())
    norm = _log_norm(times_table["dmft_e_test"], times_table["sim_e_test"])
    fig, axes = plt.subplots(2, len(snaps), figsize=(4.4 * len(snaps) + 1.2, 8.0), squeeze=False, constrained_layout=True)
    for j, s in enumerate(snaps):
        part = times_table[times_table["snapshot"] == s].copy()
        part.attrs = times_table.attrs
        below = _grid(part, "dmft_below_floor")[2].astype(bool)
        none = np.zeros_like(below)
        t_used = part["time"].to_numpy(float)
        when = f"t = {t_used[0]:.3g}" if np.ptp(t_used) <= 1e-9 * t_used.max() else f"t ≈ {float(part['t_target'].iloc[0]):.3g}"
        mesh = _draw(axes[0, j], part, "dmft_e_test", norm, CMAP, below=below, unsettled=none, ylabel=j == 0)
        axes[0, j].set_title(f"DMFT, {when}", fontsize=11)
        _draw(axes[1, j], part, "sim_e_test", norm, CMAP, below=none, unsettled=none, ylabel=j == 0)
        axes[1, j].set_title(f"simulations (seed mean), {when}", fontsize=11)
    cb = fig.colorbar(mesh, ax=axes, shrink=0.8, pad=0.01)
    cb.set_label(E_TEST)
    fig.suptitle(f"Test error over time: DMFT (top) and simulations (bottom) ({_fixed_text(times_table)})", fontsize=12)
    fig.legend(handles=[Patch(facecolor="white", hatch="///", edgecolor="0.45", label="DMFT below its noise floor")],
               loc="upper center", frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig
