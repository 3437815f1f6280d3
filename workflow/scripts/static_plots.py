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

from dln_kernels.priors import second_moment  # noqa: E402
from dln_kernels.static import donoho_tanner_rho, l1_interpolator, min_l2_interpolator  # noqa: E402

GB = {"kind": "gauss_bernoulli"}
SYMBOL = {"alpha": "α", "delta": "δ", "rho": "ρ", "sigma": "σ", "weight_decay": "λ"}


def _style():
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def _pick(ds, **fixed):
    """Select the given coordinate values (nearest), the first value for the other fixed axes."""
    sel = {}
    for ax, val in fixed.items():
        if ax not in ds.dims:
            continue
        sel[ax] = ds[ax].values[0] if val is None else val
    return ds.sel(sel, method="nearest"), sel


def _title(sel):
    return ", ".join(f"{SYMBOL.get(k, k)}={float(v):g}" for k, v in sel.items())


def _masked_e_test(ds):
    e = ds["e_test_final"]
    if "converged" in ds:
        e = e.where(ds["converged"].astype(bool))
    return e


def _final_sims(sims):
    """Seed mean and standard error of e_test at the last recorded time."""
    last = sims["e_test"].isel(time=-1)
    n = last.sizes.get("seed", 1)
    mean = last.mean("seed") if "seed" in last.dims else last
    se = (last.std("seed", ddof=1) / np.sqrt(n)) if ("seed" in last.dims and n > 1) else 0 * mean
    return mean, se


def _norm(*arrays):
    vals = np.concatenate([np.ravel(np.asarray(a, float)) for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size == 0:
        return LogNorm(1e-6, 1.0)
    lo = max(vals.min(), vals.max() * 1e-8)
    return LogNorm(lo, vals.max())


def fig_alpha_delta(static, sims=None, *, rho=None, sigma=None, weight_decay=None):
    """(a) Long-time E_test over (log α, δ), theory as a colour map; simulation seed means as
    circles on the same colour scale (a circle that disappears into the background agrees)."""
    _style()
    sub, sel = _pick(static, rho=rho, sigma=sigma, weight_decay=weight_decay)
    e = _masked_e_test(sub).transpose("delta", "alpha")
    sim_mean = None
    if sims is not None:
        s_sub, _ = _pick(sims, **{k: float(v) for k, v in sel.items()})
        sim_mean, _ = _final_sims(s_sub)
    norm = _norm(e.values, [] if sim_mean is None else sim_mean.values)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    mesh = ax.pcolormesh(sub["alpha"].values, sub["delta"].values, e.values, norm=norm, cmap="viridis", shading="nearest")
    if sim_mean is not None:
        m = sim_mean.transpose("delta", "alpha")
        A, D = np.meshgrid(m["alpha"].values, m["delta"].values)
        ok = np.isfinite(m.values) & (m.values > 0)
        ax.scatter(A[ok], D[ok], c=m.values[ok], norm=norm, cmap="viridis", s=70, edgecolors="white", linewidths=1.2,
                   label="simulation (seed mean, last time)")
        ax.legend(loc="lower right", frameon=True)
    ax.set_xscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel("sample ratio δ = n/d")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(r"long-time $E_\mathrm{test} = \|\beta_\infty-\beta^*\|^2/(2d)$")
    ax.set_title(f"Long-time test error ({_title(sel)})")
    return fig


def fig_delta_rho(static, sims=None, *, alpha=None, sigma=None, weight_decay=None, prior=None, tol=1e-3,
                  sim_tol=1e-2):
    """(b) (δ, ρ) recovery diagram at one α.

    Background: theory relative error 2E_test/E[B²] (log colour). Black line: theory boundary at
    this α, the contour where the relative error reaches ``tol`` (see docs/static.md: at α > 0 the
    error is never exactly 0). Dashed red: Donoho–Tanner (ℓ1, α → 0), ρ = δ·ρ_DT(δ) in k/d.
    Markers: fraction of seeds whose final relative error ‖β − β*‖²/‖β*‖² ≈ 2E_test/E[B²] is below
    ``sim_tol`` (the finite-d recovery fraction), on a grey scale from 0 (white) to 1 (black).
    """
    _style()
    prior = prior or GB
    sub, sel = _pick(static, alpha=alpha, sigma=sigma, weight_decay=weight_decay)
    e = _masked_e_test(sub).transpose("rho", "delta")
    rho = sub["rho"].values
    eb2 = second_moment(prior, np.asarray(rho, dtype=float))[:, None]
    rel = np.where(eb2 > 0, 2 * e.values / np.where(eb2 > 0, eb2, 1), np.nan)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    norm = _norm(rel)
    mesh = ax.pcolormesh(sub["delta"].values, rho, rel, norm=norm, cmap="magma", shading="nearest")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(r"theory relative error $2E_\mathrm{test}/E[B^2]$")
    if np.nanmin(rel) < tol < np.nanmax(rel):
        ax.contour(sub["delta"].values, rho, np.log10(rel), levels=[np.log10(tol)], colors="black", linewidths=1.8, linestyles="solid")
        ax.plot([], [], color="black", lw=1.8, label=f"theory boundary at this α (rel. error {tol:g})")
    dgrid = np.linspace(max(1e-3, float(sub["delta"].min())), min(0.999, float(sub["delta"].max())), 200)
    ax.plot(dgrid, donoho_tanner_rho(dgrid, per="d"), "--", color="tab:red", lw=2, label="Donoho–Tanner (ℓ1)")
    if sims is not None:
        s_sub, _ = _pick(sims, **{k: float(v) for k, v in sel.items()})
        last = s_sub["e_test"].isel(time=-1)
        eb2_s = xr_like_second_moment(last, prior)
        rec = (2 * last / eb2_s < sim_tol).mean("seed") if "seed" in last.dims else (2 * last / eb2_s < sim_tol)
        rec = rec.transpose("rho", "delta")
        Dg, Rg = np.meshgrid(rec["delta"].values, rec["rho"].values)
        # ravel: a (1, 4) array of values would be read by matplotlib as one RGBA colour
        sc = ax.scatter(Dg.ravel(), Rg.ravel(), c=rec.values.ravel(), cmap="Greys", vmin=0, vmax=1, s=60,
                        edgecolors="tab:blue", linewidths=1.0)
        cb2 = fig.colorbar(sc, ax=ax, pad=0.01)
        cb2.set_label(f"simulations: recovery fraction (rel. error < {sim_tol:g})")
    ax.set_xlabel("sample ratio δ = n/d")
    ax.set_ylabel("sparsity ρ = k/d")
    ax.set_xlim(float(sub["delta"].min()), float(sub["delta"].max()))
    ax.set_ylim(float(rho.min()), float(rho.max()))
    ax.legend(loc="upper left", frameon=True)
    ax.set_title(f"Recovery diagram ({_title(sel)})")
    return fig


def xr_like_second_moment(da, prior):
    """E[B²] broadcast over the ρ coordinate of ``da``."""
    vals = second_moment(prior, da["rho"].values)
    return da["rho"].copy(data=vals)


def fig_error_vs_alpha(static, sims=None, *, delta=None, rho=None, sigma=None, prior=None):
    """(c) Long-time E_test against α at fixed δ (λ = 0), with the min-ℓ2 (α → ∞) and ℓ1 (α → 0)
    asymptotes as horizontal lines and simulation seed means ± standard error as markers."""
    _style()
    prior = prior or GB
    sub, sel = _pick(static, delta=delta, rho=rho, sigma=sigma, weight_decay=0.0)
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
        s_sub, _ = _pick(sims, **{k: float(v) for k, v in sel.items()})
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
