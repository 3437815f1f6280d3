"""Figures of simulation sweeps, as pure functions of the aggregated Dataset (testable)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from dln_kernels.measure.curves import point_times, record_dim  # noqa: E402
from dln_kernels.registry import AXES, GRID_AXES  # noqa: E402

# Axes a figure fixes at their first value (α and δ are drawn): every other grid axis, by name,
# except the depth when a sweep has several: each depth is its own panel (column or row).
OTHER_AXES = tuple(a for a in GRID_AXES if a not in ("alpha", "delta"))
PANEL_AXES = ("delta", "depth")  # one panel per combination of their values (depth: if several)
LABELS = {"e_train": r"$E_\mathrm{train}$", "e_test": r"$E_\mathrm{test}$"}


def _drawn(ds, axis) -> bool:
    return axis in ("alpha", "delta") or (axis == "depth" and axis in ds.dims and ds.sizes[axis] > 1)


def _fixed_slice(ds):
    """Select the first value of the axes that are not drawn (ρ, σ, λ; the depth if it has one
    value; the batch fraction at its largest value, full-batch GD where the sweep has it); return
    the slice and a text naming what was fixed."""
    sel = {a: ds[a].values[-1 if a == "batch_fraction" else 0] for a in OTHER_AXES if a in ds.dims and not _drawn(ds, a)}
    text = ", ".join(f"{AXES[a].symbol}={v:g}" for a, v in sel.items())
    return ds.sel(sel), text


def panels(sub) -> list:
    """The panels of a figure: (title, selection by name) per value of δ, and per depth L when
    the slice has several depths."""
    axes = [a for a in PANEL_AXES if a in sub.dims and _drawn(sub, a)]
    out = [((), {})]
    for a in axes:
        out = [(t + (f"{AXES[a].symbol} = {v:g}",), {**sel, a: v}) for t, sel in out for v in sub[a].values]
    return [(", ".join(t), sel) for t, sel in out]


def alpha_colours(alphas):
    """One colour per α on a log-scaled sequential palette (small α dark, large α light)."""
    pal = sns.color_palette("viridis", as_cmap=True)
    la = np.log10(np.asarray(alphas, dtype=float))
    span = (la - la.min()) / (np.ptp(la) or 1.0)
    return [pal(0.05 + 0.85 * s) for s in span]


def theory_curve(theory, var, sub, alpha, panel):
    """A theory curve at the slice's fixed axes (ρ, σ, λ) and the panel's selection (δ, L), NaN
    where the theory marks it below its noise floor."""
    sel = {k: sub[k].item() for k in OTHER_AXES if k in theory.dims and sub[k].size == 1}
    sel.update(panel)
    th = theory[var].sel(alpha=alpha, **sel).values.astype(float)
    mask_name = f"{var}_below_floor"
    if mask_name in theory:
        th = np.where(theory[mask_name].sel(alpha=alpha, **sel).values, np.nan, th)
    return th


def learning_curves(ds, *, theory=None):
    """E_train and E_test vs time (log–log), one column per δ, one colour per α.

    Lines: mean over seeds; bands: min–max over seeds. ``theory`` (optional Dataset on the same
    dims without ``seed``) is drawn dashed in the same colours.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    sub, fixed = _fixed_slice(ds)
    cols = panels(sub)
    colours = alpha_colours(sub["alpha"].values)
    fig, axes = plt.subplots(2, len(cols), figsize=(3.6 * len(cols) + 1.2, 6.4), sharex=True, squeeze=False)
    for j, (title, panel) in enumerate(cols):
        for i, var in enumerate(("e_train", "e_test")):
            ax = axes[i, j]
            for a, col in zip(sub["alpha"].values, colours):
                t = point_times(sub, {"alpha": a, **panel})  # per point under an alpha_rule schedule
                keep = t > 0  # log time axis
                y = sub[var].sel(alpha=a, **panel)
                mean, lo, hi = (y.mean("seed").values, y.min("seed").values, y.max("seed").values)
                ax.plot(t[keep], mean[keep], color=col, lw=1.8, label=f"α={a:g}")
                ax.fill_between(t[keep], lo[keep], hi[keep], color=col, alpha=0.2, lw=0)
                if theory is not None and var in theory:
                    th = theory_curve(theory, var, sub, a, panel)
                    ax.plot(t[keep], th[keep], color="black", lw=2.4, ls="-", alpha=0.35)
                    ax.plot(t[keep], th[keep], color=col, lw=1.2, ls="--")
            ax.set_xscale("log")
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(title)
            if i == 1:
                ax.set_xlabel("time t")
            if j == 0:
                ax.set_ylabel(LABELS[var])
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.02, 0.0), frameon=False, title="init. scale")
    what = "; dashed: DMFT" if theory is not None else ""
    fig.suptitle(f"Learning curves (mean and min–max over {ds.sizes['seed']} seeds{what}; {fixed})", y=0.995)
    fig.tight_layout()
    return fig


def phase_diagram(ds):
    """Heatmap of final E_test (mean over seeds) over α × δ, log colour scale, values annotated."""
    sns.set_theme(style="white", context="notebook")
    sub, fixed = _fixed_slice(ds)
    rows = panels(sub)  # one row per δ (and per depth L when there are several)
    final = sub["e_test"].isel({record_dim(sub): -1}).mean("seed")
    vals = np.array([final.sel(panel).transpose("alpha").values for _, panel in rows])
    pos = vals[vals > 0]
    # Clip the colour scale 8 decades below the largest value: rounding-level errors (1e-30)
    # would otherwise squeeze every physically different cell into one colour.
    norm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-8), vmax=pos.max(), clip=True) if pos.size else None
    fig, ax = plt.subplots(figsize=(1.3 * len(final["alpha"]) + 3, 0.9 * len(rows) + 2))
    sns.heatmap(
        vals, ax=ax, cmap="mako", norm=norm, annot=True, fmt=".1e", annot_kws={"fontsize": 8},
        xticklabels=[f"{a:g}" for a in final["alpha"].values],
        yticklabels=[title.replace("δ = ", "") if "," not in title else title for title, _ in rows],
        cbar_kws={"label": "final $E_\\mathrm{test}$ (mean over seeds; clipped 8 decades down)"},
    )
    ax.invert_yaxis()  # δ grows upwards
    ax.tick_params(axis="y", rotation=0)
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel("sample ratio δ = n/d" + (" and depth L" if _drawn(sub, "depth") else ""))
    if record_dim(ds) == "time":
        ax.set_title(f"Final test error at t = {float(ds['time'].values[-1]):g} ({fixed})")
    else:  # per-point steps: every run ends after the same number of steps at its own time
        ax.set_title(f"Final test error after {int(ds['step'].values[-1])} steps, each point at its own t ({fixed})")
    fig.tight_layout()
    return fig


def theory_deviation(ds, theory):
    """Relative deviation (simulation mean − theory)/theory over time, per δ (columns) and α (colours).

    Bands: ± the combined standard error (seed standard error of the mean and the theory's
    Monte-Carlo standard error), relative to the theory. Points where the theory is below its noise
    floor are left out.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    sub, fixed = _fixed_slice(ds)
    cols = panels(sub)
    colours = alpha_colours(sub["alpha"].values)
    n_seed = sub.sizes["seed"]
    fig, axes = plt.subplots(2, len(cols), figsize=(3.6 * len(cols) + 1.2, 6.0), sharex=True, sharey="row", squeeze=False)
    for j, (title, panel) in enumerate(cols):
        for i, var in enumerate(("e_train", "e_test")):
            ax = axes[i, j]
            for a, col in zip(sub["alpha"].values, colours):
                t = point_times(sub, {"alpha": a, **panel})
                keep = t > 0
                y = sub[var].sel(alpha=a, **panel)
                mean = y.mean("seed").values
                se = y.std("seed", ddof=1).values / np.sqrt(n_seed) if n_seed > 1 else np.zeros_like(mean)
                th = theory_curve(theory, var, sub, a, panel)
                sel = {k: sub[k].item() for k in OTHER_AXES if k in theory.dims and sub[k].size == 1}
                th_se = (theory[f"{var}_se"].sel(alpha=a, **panel, **sel).values if f"{var}_se" in theory else 0.0)
                rel = 100 * (mean - th) / th
                band = 100 * np.sqrt(se**2 + th_se**2) / th
                ax.plot(t[keep], rel[keep], color=col, lw=1.6, label=f"α={a:g}")
                ax.fill_between(t[keep], (rel - band)[keep], (rel + band)[keep], color=col, alpha=0.18, lw=0)
            ax.axhline(0, color="0.3", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("symlog", linthresh=10)
            if i == 0:
                ax.set_title(title)
            if i == 1:
                ax.set_xlabel("time t")
            if j == 0:
                ax.set_ylabel(f"{LABELS[var]}: (sim − DMFT)/DMFT [%]")
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.02, 0.0), frameon=False, title="init. scale")
    fig.suptitle(f"Simulation vs DMFT, relative deviation with ±1 standard error ({fixed})", y=0.995)
    fig.tight_layout()
    return fig
