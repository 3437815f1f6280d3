"""Figures of the long-time (static) theory, as pure functions of xarray Datasets (testable).

Inputs:

- ``static``: dims (alpha, delta, rho, sigma, weight_decay), variable ``e_test_final``
  (E_test = ‖β_∞ − β*‖²/(2d), d → ∞); optional ``converged`` (points with False are masked).
- ``sims`` (optional): dims (alpha, delta, rho, sigma, weight_decay, seed, time), variable
  ``e_test``; the last time is taken as "long time".

Each function returns a matplotlib Figure and never writes files.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from dln_kernels.measure.curves import record_dim  # noqa: E402
from dln_kernels.model.priors import DEFAULT_PRIOR, second_moment  # noqa: E402
from dln_kernels.registry import AXES  # noqa: E402
from dln_kernels.static.solver import donoho_tanner_rho, l1_interpolator, min_l2_interpolator  # noqa: E402

GB = DEFAULT_PRIOR
SYMBOL = {a.name: a.symbol for a in AXES.values()}


def _style():
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


# Axes the gradient-flow theory does not read (registry stages): the simulations are taken at
# full-batch GD and the schedule's own step, whatever a static file written before them holds.
_SIM_ONLY = {"batch_fraction": None, "dt_scale": None}


def _pick(ds, **fixed):
    """Select the given coordinate values, the first value for the other fixed axes.

    A requested value must be on the grid (to 1e-9 relative): silently taking the nearest one
    would put simulations of one (σ, λ) next to the theory of another.
    """
    sel = {}
    for ax, val in fixed.items():
        if ax not in ds.dims:
            continue
        coord = np.asarray(ds[ax].values, dtype=float)
        if val is None:  # the batch fraction: the largest (full-batch GD where the sweep has it)
            sel[ax] = coord[-1] if ax == "batch_fraction" else coord[0]
            continue
        hit = np.nonzero(np.isclose(coord, float(val), rtol=1e-9, atol=1e-12))[0]
        if hit.size == 0:
            raise ValueError(f"{ax}={float(val):g} is not on the grid {coord.tolist()}")
        sel[ax] = coord[hit[0]]
    return ds.sel(sel), sel


def _title(sel):
    return ", ".join(f"{SYMBOL.get(k, k)}={float(v):g}" for k, v in sel.items())


def _masked_e_test(ds):
    e = ds["e_test_final"]
    if "converged" in ds:
        e = e.where(ds["converged"].astype(bool))
    return e


def _final_sims(sims):
    """Seed mean and standard error of e_test at the last recorded time."""
    last = sims["e_test"].isel({record_dim(sims): -1})
    n = last.sizes.get("seed", 1)
    mean = last.mean("seed") if "seed" in last.dims else last
    se = (last.std("seed", ddof=1) / np.sqrt(n)) if ("seed" in last.dims and n > 1) else 0 * mean
    return mean, se


def _norm(*arrays):
    """Log colour scale over the positive values, at most 8 decades deep."""
    vals = np.concatenate([np.ravel(np.asarray(a, float)) for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size == 0:
        return LogNorm(1e-6, 1.0)
    lo = max(vals.min(), vals.max() * 1e-8)
    return LogNorm(lo, vals.max())


def _floored(values, norm):
    """Values for a log colour map: exact zeros (e.g. noiseless least squares at δ > 1, which
    recovers β* exactly) and values under the scale are drawn in the lowest colour instead of
    vanishing from a log map; NaN (not converged) stays blank."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v), np.maximum(v, norm.vmin), np.nan)


def _has_under(values, norm):
    v = np.asarray(values, dtype=float)
    return bool(np.any(np.isfinite(v) & (v < norm.vmin)))


def fig_alpha_delta(static, sims=None, *, rho=None, sigma=None, weight_decay=None, depth=None):
    """(a) Long-time E_test over (log α, δ), theory as a colour map; simulation seed means as
    circles on the same colour scale (a circle that disappears into the background agrees)."""
    _style()
    sub, sel = _pick(static, rho=rho, sigma=sigma, weight_decay=weight_decay, depth=depth, **_SIM_ONLY)
    e = _masked_e_test(sub).transpose("delta", "alpha")
    sim_mean = None
    if sims is not None:
        s_sub, _ = _pick(sims, **{**_SIM_ONLY, **{k: float(v) for k, v in sel.items()}})
        sim_mean, _ = _final_sims(s_sub)
    norm = _norm(e.values, [] if sim_mean is None else sim_mean.values)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    mesh = ax.pcolormesh(sub["alpha"].values, sub["delta"].values, _floored(e.values, norm), norm=norm,
                         cmap="viridis", shading="nearest")
    if sim_mean is not None:
        m = sim_mean.transpose("delta", "alpha")
        A, D = np.meshgrid(m["alpha"].values, m["delta"].values)
        ok = np.isfinite(m.values)
        ax.scatter(A[ok], D[ok], c=_floored(m.values[ok], norm), norm=norm, cmap="viridis", s=70,
                   edgecolors="white", linewidths=1.2, label="simulation (seed mean, last time)")
        ax.legend(loc="lower right", frameon=True)
    ax.set_xscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel("sample ratio δ = n/d")
    under = _has_under(e.values, norm) or (sim_mean is not None and _has_under(sim_mean.values, norm))
    cb = fig.colorbar(mesh, ax=ax, extend="min" if under else "neither")
    cb.set_label(r"long-time $E_\mathrm{test} = \|\beta_\infty-\beta^*\|^2/(2d)$"
                 + (f" (≤ {norm.vmin:.0e} incl. 0 in the lowest colour)" if under else ""))
    ax.set_title(f"Long-time test error ({_title(sel)})")
    return fig


def fig_delta_rho(static, sims=None, *, alpha=None, sigma=None, weight_decay=None, depth=None, prior=None, threshold=1e-2):
    """(b) (δ, ρ) recovery diagram at one α, on one colour scale: the recovery fraction.

    "Recovered" means relative error ‖β − β*‖²/‖β*‖² = 2E_test/E[B²] below ``threshold``.
    Background: the d → ∞ theory at this α, which recovers (1, dark) or not (0, light): the
    transition is sharp at d = ∞. Black line: its boundary (the contour rel. error = threshold;
    at α > 0 the error is never exactly 0, docs/static.md). Thin grey contours: the theory's
    relative error, one per two decades. Dashed red: Donoho–Tanner (ℓ1, α → 0), ρ = δ·ρ_DT(δ)
    in k/d, from its own formula. Squares: the fraction of simulation seeds that recover (finite
    d, so fractions between 0 and 1 near the boundary), on the same scale.
    """
    _style()
    prior = prior or GB
    sub, sel = _pick(static, alpha=alpha, sigma=sigma, weight_decay=weight_decay, depth=depth, **_SIM_ONLY)
    e = _masked_e_test(sub).transpose("rho", "delta")
    rho, deltas = sub["rho"].values, sub["delta"].values
    eb2 = second_moment(prior, np.asarray(rho, dtype=float))[:, None]
    rel = np.where(eb2 > 0, 2 * e.values / np.where(eb2 > 0, eb2, 1), np.nan)
    recovered = np.where(np.isfinite(rel), (rel < threshold).astype(float), np.nan)
    cmap = sns.color_palette("Blues", as_cmap=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    mesh = ax.pcolormesh(deltas, rho, recovered, cmap=cmap, vmin=0, vmax=1, shading="nearest", alpha=0.6)
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(f"recovery fraction (rel. error < {threshold:g})")
    cb.solids.set_alpha(1.0)
    logrel = np.log10(np.where(rel > 0, rel, np.nan))
    if np.nanmin(rel) < threshold < np.nanmax(rel):
        ax.contour(deltas, rho, logrel, levels=[np.log10(threshold)], colors="black", linewidths=2.0,
                   linestyles="solid")
        ax.plot([], [], color="black", lw=2.0, label=f"theory boundary at α = {float(sel.get('alpha', np.nan)):g}")
    levels = [lv for lv in range(-10, 0, 2)
              if np.nanmin(logrel) < lv < np.nanmax(logrel) and not np.isclose(lv, np.log10(threshold))]
    if levels:
        cs = ax.contour(deltas, rho, logrel, levels=levels, colors="0.35", linewidths=0.7, linestyles="solid")
        ax.clabel(cs, fmt=lambda v: f"1e{int(v)}", fontsize=7)
        ax.plot([], [], color="0.35", lw=0.7, label="theory rel. error (contours)")
    dgrid = np.linspace(max(1e-3, float(deltas.min())), min(0.999, float(deltas.max())), 200)
    ax.plot(dgrid, donoho_tanner_rho(dgrid, per="d"), "--", color="tab:red", lw=2, label="Donoho–Tanner (ℓ1)")
    if sims is not None:
        s_sub, _ = _pick(sims, **{**_SIM_ONLY, **{k: float(v) for k, v in sel.items()}})
        last = s_sub["e_test"].isel({record_dim(s_sub): -1})
        eb2_s = xr_like_second_moment(last, prior)
        hit = 2 * last / eb2_s < threshold
        frac = (hit.mean("seed") if "seed" in last.dims else hit.astype(float)).transpose("rho", "delta")
        Dg, Rg = np.meshgrid(frac["delta"].values, frac["rho"].values)
        # ravel: a (1, N) array of values would be read by matplotlib as one RGBA colour
        ax.scatter(Dg.ravel(), Rg.ravel(), c=frac.values.ravel(), cmap=cmap, vmin=0, vmax=1, s=110, marker="s",
                   edgecolors="tab:orange", linewidths=1.8, label="simulations (fraction of seeds)")
    ax.set_xlabel("sample ratio δ = n/d")
    ax.set_ylabel("sparsity ρ = k/d")
    ax.set_xlim(float(deltas.min()), float(deltas.max()))
    ax.set_ylim(float(rho.min()), float(rho.max()))
    ax.legend(loc="upper left", frameon=True, fontsize=8)
    ax.set_title(f"Recovery diagram ({_title(sel)})")
    return fig


def xr_like_second_moment(da, prior):
    """E[B²] broadcast over the ρ coordinate of ``da``."""
    vals = second_moment(prior, da["rho"].values)
    return da["rho"].copy(data=vals)


def fig_error_vs_alpha(static, sims=None, *, delta=None, rho=None, sigma=None, depth=None, prior=None):
    """(c) Long-time E_test against α at fixed δ (λ = 0), with the min-ℓ2 (α → ∞) and ℓ1 (α → 0)
    asymptotes as horizontal lines and simulation seed means ± standard error as markers."""
    _style()
    prior = prior or GB
    sub, sel = _pick(static, delta=delta, rho=rho, sigma=sigma, weight_decay=0.0, depth=depth, **_SIM_ONLY)
    e = _masked_e_test(sub)
    de, rh, si = (float(sel[k]) for k in ("delta", "rho", "sigma"))
    fig, ax = plt.subplots(figsize=(6.0, 4.2), constrained_layout=True)
    ax.plot(sub["alpha"].values, e.values, color="tab:blue", lw=2, label="static theory (d → ∞)")
    if de < 1:
        l2 = float(min_l2_interpolator(de, rh, si, prior=prior))
        l1 = float(l1_interpolator(de, rh, si, prior=prior)["e_test"][0])
        ax.axhline(l2, color="tab:orange", ls="--", lw=1.5, label=f"min-ℓ2 interpolator ({l2:.3g})")
        if l1 > 0:
            ax.axhline(l1, color="tab:green", ls=":", lw=2, label=f"min-ℓ1 interpolator ({l1:.3g})")
        else:
            ax.text(0.02, 0.04, "min-ℓ1 interpolator: exact recovery (E_test = 0)", transform=ax.transAxes, color="tab:green")
    if sims is not None:
        s_sub, _ = _pick(sims, **{**_SIM_ONLY, **{k: float(v) for k, v in sel.items()}})
        m, se = _final_sims(s_sub)
        ax.errorbar(m["alpha"].values, m.values, yerr=se.values, fmt="o", color="black", ms=5, capsize=3,
                    label="simulation (seed mean ± s.e., last time)")
    ax.set_xscale("log")
    vals = np.asarray(e.values, float)
    if np.nanmin(vals) > 0 and np.nanmax(vals) / np.nanmin(vals) > 30:
        ax.set_yscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel(r"long-time $E_\mathrm{test}$")
    ax.legend(frameon=True)
    ax.set_title(f"Final test error vs α ({_title(sel)})")
    return fig
