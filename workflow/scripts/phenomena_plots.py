"""Phenomenon figures, drawn from the measurements of ``dln_kernels.measure.phenomena`` on the
aggregated simulation and DMFT Datasets (definitions and thresholds: docs/phenomena.md).

Every function is called as ``NAME(m, sims, dmft, prior)`` with ``m`` the measurement of its row of
the phenomena table (``dln_kernels.measure.phenomenon_kinds``: ``row.measure``, whose ``"table"`` is
the figure's CSV) and returns the figure; the numbers are computed in
``dln_kernels.measure.phenomena``, this module only draws them.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from dln_kernels.measure.predictions import depth_search_time, incremental_step_prediction  # noqa: E402
from dln_kernels.measure.phenomena import (  # noqa: E402
    LAZY_FRACTION,
    CONVERGED_FRACTION,
    DEPTH_FIT_MAX_ALPHA,
    SEARCH_FIT_MAX_ALPHA,
    SEARCH_FRACTION,
    SIM_TAIL,
    grokking_model,
    lazy_time_theory,
    masked_curve,
    search_slope_theory,
    seed_curves,
    seed_geometric_mean,
)


def _theme():
    sns.set_theme(style="whitegrid", context="notebook")


def _fmt(x, se):
    return f"{x:.3f} ± {se:.3f}" if np.isfinite(se) else f"{x:.3f}"


# ----------------------------------------------------------------------------------------------
# a. search phase
# ----------------------------------------------------------------------------------------------
def search_phase(m, sims, dmft, prior):
    _theme()
    L, fit, rho, sigma, dt, table = m["L"], m["fit"], m["rho"], m["sigma"], m["dt"], m["table"]
    cols = sns.color_palette("deep", len(m["per_delta"]))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    for col, d in zip(cols, m["per_delta"]):
        delta, t_th, t_th_se, t_sim, f_th, pred = (d[k] for k in ("delta", "t_dmft", "t_dmft_se", "t_sim", "fit_dmft",
                                                                  "slope_leading_order"))
        # --- panel a: t_search vs ln(1/α)
        ax.errorbar(L, t_th, yerr=t_th_se, fmt="o", color=col, ms=7, label=f"δ={delta:g} DMFT")
        ax.errorbar(L + 0.12, t_sim.mean(0), yerr=t_sim.std(0, ddof=1), fmt="s", mfc="white", color=col,
                    ms=6, label=f"δ={delta:g} simulation (mean ± sd, {t_sim.shape[0]} seeds)")
        xx = np.linspace(0, L.max() * 1.05, 50)
        ax.plot(xx[xx >= L[fit].min() - 0.5], (f_th["slope"] * xx + f_th["intercept"])[xx >= L[fit].min() - 0.5],
                color=col, lw=1.5, label=f"δ={delta:g} DMFT fit: slope {_fmt(f_th['slope'], f_th['slope_se'])}")
        x0, y0 = L[fit].mean(), np.nanmean(t_th[fit])
        ax.plot(xx, y0 + pred * (xx - x0), color=col, ls="--", lw=1.5, label=f"δ={delta:g} leading order: slope {pred:.3f}")
        # --- panel b: fitted slope vs the drop fraction
        tab = table[table.delta == delta]
        bx.errorbar(tab.fraction, tab.slope_dmft, yerr=tab.slope_dmft_se, fmt="o", color=col, label=f"δ={delta:g} DMFT")
        bx.errorbar(tab.fraction + 0.008, tab.slope_sim, yerr=tab.slope_sim_se, fmt="s", mfc="white", color=col,
                    label=f"δ={delta:g} simulation")
        ff = np.linspace(0.3, 0.97, 60)
        bx.plot(ff, search_slope_theory(sims, prior, delta, ff, dt), color=col, ls="--", label=f"δ={delta:g} leading order")
    ax.set_xlabel("ln(1/α)")
    ax.set_ylabel(f"end of search phase t (E_train = {SEARCH_FRACTION:g}·E_train(0))")
    ax.set_title(f"Search phase (fit over α ≤ {SEARCH_FIT_MAX_ALPHA:g})")
    ax.legend(fontsize=7.5, loc="upper left")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    bx.axvline(SEARCH_FRACTION, color="0.5", lw=0.8)
    bx.set_xlabel("drop fraction f (time at which E_train = f·E_train(0))")
    bx.set_ylabel("slope d t_f / d ln(1/α)")
    bx.invert_xaxis()
    bx.set_title("Slope vs drop depth: first order in the drop (f → 1)")
    bx.legend(fontsize=7.5)
    fig.suptitle(f"Search phase vs ln(1/α) (ρ={rho:g}, σ={sigma:g}, dt={dt:.3g} at the fitted α)", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# b. lazy time
# ----------------------------------------------------------------------------------------------
def lazy_time(m, sims, dmft, prior):
    _theme()
    alphas = m["alpha"]
    cols = sns.color_palette("deep", len(m["per_delta"]))
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    for col, d in zip(cols, m["per_delta"]):
        delta, t_th, t_sim, f_th = d["delta"], d["t_dmft"], d["t_sim"], d["fit_dmft"]
        ax.errorbar(alphas, t_th, yerr=d["t_dmft_se"], fmt="o", color=col, ms=7,
                    label=f"δ={delta:g} DMFT: slope {_fmt(f_th['slope'], f_th['slope_se'])}")
        ax.errorbar(alphas * 1.03, np.exp(np.log(t_sim).mean(0)), yerr=t_sim.std(0, ddof=1), fmt="s", mfc="white",
                    color=col, label=f"δ={delta:g} simulation: slope {_fmt(d['slope_sim'], d['slope_sim_se'])}")
        aa = np.geomspace(alphas.min() * 0.9, alphas.max() * 1.1, 12)
        ax.plot(aa, lazy_time_theory(sims, prior, delta, aa, LAZY_FRACTION), color=col, ls="--", lw=1.3,
                label=f"δ={delta:g} linear regression, step dt·α² (slope {d['fit_pred']['slope']:.3f})")
    aa = np.geomspace(alphas.min(), alphas.max(), 10)
    ref = np.nanmean(m["per_delta"][-1]["t_dmft"]) * (aa / np.exp(np.log(alphas).mean())) ** -2.0
    ax.plot(aa, ref * 1.6, color="0.3", lw=1, ls=":", label="slope −2 (guide)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel(f"lazy time (E_train = {LAZY_FRACTION:g}·E_train(0))")
    steps = f"dt={m['dt']:g}" if np.ndim(m["dt"]) == 0 else f"dt={np.min(m['dt']):.2g}–{np.max(m['dt']):.2g} per α"
    ax.set_title(f"Lazy time vs α (ρ={m['rho']:g}, σ={m['sigma']:g}, {steps})")
    ax.legend(fontsize=7.5)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# c. incremental learning
# ----------------------------------------------------------------------------------------------
def incremental(m, sims, dmft, prior):
    _theme()
    t, dt, levels = sims["time"].values, m["dt"], m["levels"]
    cols = sns.color_palette("viridis", len(m["per_alpha"]) + 1)[: len(m["per_alpha"])]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    keep = t > 0
    for col, r in zip(cols, m["per_alpha"]):
        a, e_th, st = r["alpha"], r["e_dmft"], r["steps_dmft"]
        ax.plot(t[keep], r["e_sim"].mean(0)[keep], color=col, lw=1.6, label=f"α={a:g} simulation (seed mean)")
        ax.plot(t[keep], e_th[keep], color=col, lw=1.4, ls="--", label=f"α={a:g} DMFT")
        ok = np.isfinite(st["step_times"])
        ax.plot(st["step_times"][ok], np.interp(st["step_times"][ok], t, e_th), "v", color=col, ms=9, mec="k")
        for j in range(st["heights"].size):
            p = st["plateaus"]
            ax.hlines(st["heights"][j], p.start_times[j], p.end_times[j], color=col, lw=5, alpha=0.35)
        bx.plot(1 / levels, r["t_step_dmft"], "o", color=col, ms=8, label=f"α={a:g} DMFT")
        bx.errorbar(1 / levels * 1.02, r["t_step_sim_mean"], yerr=r["t_step_sim_sd"], fmt="s", mfc="white", color=col,
                    label=f"α={a:g} simulation")
        lv = np.linspace(levels.min() * 0.9, levels.max() * 1.1, 50)
        bx.plot(1 / lv, incremental_step_prediction(lv, a, dt), color=col, ls="--", lw=1.2,
                label=f"α={a:g} theory (ln(1/α) = {math.log(1 / a):.1f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    e0 = m["e_train0"]
    ax.set_ylim(1e-4 * e0, 2 * e0)  # the steps; the final exponential descent leaves the panel
    ax.set_xlabel("time t")
    ax.set_ylabel("E_train")
    ax.set_title("E_train with detected plateaus (bars) and steps (▼, DMFT)")
    ax.legend(fontsize=7, loc="lower left")
    bx.set_xlabel("1 / |level|")
    bx.set_ylabel("step time (E_train = ½ of the plateau before it)")
    bx.set_title("Step times vs 1/|level|")
    bx.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Incremental learning (levels {', '.join(f'{v:g}' for v in levels)}; "
                 f"δ={m['delta']:g}, ρ={m['rho']:g}, dt={dt:g})", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# d. grokking-like delay
# ----------------------------------------------------------------------------------------------
def grokking_curves(m, sims, dmft, prior):
    _theme()
    t = sims["time"].values
    keep = t > 0
    delta = float(sims["delta"].values[0])
    alphas, lams = sims["alpha"].values, sims["weight_decay"].values
    tab = m["table"]
    cols = sns.color_palette("rocket", len(lams) + 1)[: len(lams)]
    fig, axes = plt.subplots(2, len(alphas), figsize=(4.4 * len(alphas) + 1.5, 7.2), sharex=True, sharey="row", squeeze=False)
    for j, a in enumerate(alphas):
        for i, var in enumerate(("e_train", "e_test")):
            ax = axes[i, j]
            for col, lam in zip(cols, lams):
                y = seed_curves(sims, var, alpha=a, delta=delta, weight_decay=lam)
                ax.plot(t[keep], y.mean(0)[keep], color=col, lw=1.6, label=f"λ={lam:g} simulation")
                ax.plot(t[keep], masked_curve(dmft, var, alpha=a, delta=delta, weight_decay=lam)[keep], color=col,
                        ls="--", lw=1.2, label=f"λ={lam:g} DMFT")
                r = tab[(tab.alpha == a) & (tab.weight_decay == lam)].iloc[0]
                if var == "e_test" and np.isfinite(r.t_test_dmft):
                    ax.axvline(r.t_test_dmft, color=col, lw=0.8, ls=":")
                    ax.plot(r.t_test_dmft, 0.5 * r.plateau_dmft, "v", color=col, ms=8, mec="k")
            ax.set_xscale("log")
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(f"α = {a:g}")
            else:
                ax.set_xlabel("time t")
            if j == 0:
                ax.set_ylabel("E_train" if var == "e_train" else "E_test")
    axes[1, -1].legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.02, 0.9), frameon=False)
    fig.suptitle(f"Grokking-like delay: lazy fit of the training data, late drop of the test error "
                 f"(▼: measured t_test; δ={delta:g}, ρ={float(sims['rho'].values[0]):g})", y=1.0)
    fig.tight_layout()
    return fig


def grokking_delay(m, sims, dmft, prior):
    _theme()
    tab, summary = m["table"], m["summary"]
    fit_th, fit_sim = (summary.set_index("source").loc[s] for s in ("dmft", "simulation"))
    lams = np.sort(tab.weight_decay.unique())
    cols = sns.color_palette("rocket", len(lams) + 1)[: len(lams)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    for col, lam in zip(cols, lams):
        s = tab[tab.weight_decay == lam].sort_values("alpha")
        ax.plot(np.log(s.alpha), lam * s.t_test_dmft, "o-", color=col, label=f"λ={lam:g} DMFT")
        ax.errorbar(np.log(s.alpha) + 0.01, lam * s.t_test_sim_mean, yerr=lam * s.t_test_sim_sd, fmt="s", mfc="white",
                    color=col, label=f"λ={lam:g} simulation")
    la = np.linspace(np.log(tab.alpha.min()) - 0.05, np.log(tab.alpha.max()) + 0.05, 10)
    y0 = np.nanmean(tab.weight_decay * tab.t_test_dmft) - np.mean(np.log(tab.alpha))  # anchor of the guide
    ax.plot(la, la + y0, color="0.3", ls="--", lw=1.3, label="hypothesis: slope 1 (t ≈ ln(α/α_c)/λ)")
    ax.set_xlabel("ln α")
    ax.set_ylabel("λ · t_test")
    ax.set_title("λ·t_test vs ln α")
    ax.legend(fontsize=7.5)
    x = tab.hypothesis_ln_alpha_over_lambda.values
    for col, lam in zip(cols, lams):
        s = tab[tab.weight_decay == lam]
        bx.plot(s.hypothesis_ln_alpha_over_lambda, s.t_test_dmft, "o", color=col, label=f"λ={lam:g} DMFT")
        bx.errorbar(s.hypothesis_ln_alpha_over_lambda, s.t_test_sim_mean, yerr=s.t_test_sim_sd, fmt="s", mfc="white",
                    color=col, label=f"λ={lam:g} simulation")
    bx.plot(x, grokking_model(fit_th, tab.alpha, tab.weight_decay), "+", color="k", ms=10,
            label=(f"fit A·ln α/λ + B/λ + C (DMFT): A = {fit_th['A']:.2f} ± {fit_th['A_se']:.2f}, "
                   f"B = {fit_th['B']:.2f}, C = {fit_th['C']:.1f}"))
    xx = np.linspace(0, x.max() * 1.05, 10)
    bx.plot(xx, xx, color="0.5", ls=":", label="t = ln(α)/λ")
    bx.set_xlabel("ln(α)/λ")
    bx.set_ylabel("t_test (E_test = ½ of its lazy plateau)")
    bx.set_title(f"Delay vs (α, λ); simulation fit: A = {fit_sim['A']:.2f} ± {fit_sim['A_se']:.2f}")
    bx.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# e. convergence rate vs generalisation
# ----------------------------------------------------------------------------------------------
def tradeoff(m, sims, dmft, prior):
    _theme()
    t, tab = sims["time"].values, m["table"]
    cols = sns.color_palette("viridis", len(m["per_alpha"]))
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(19, 5.6))
    for col, r in zip(cols, m["per_alpha"]):
        e_th, w = r["e_dmft"], r["window"]
        ax.semilogy(t, seed_geometric_mean(r["e_sim"]), color=col, lw=1.6, label=f"α={r['alpha']:g}")
        ax.semilogy(t, e_th, color=col, ls="--", lw=1.2)
        if w.any():
            ax.semilogy(t[w], e_th[w], color=col, lw=4, alpha=0.35)
    ax.set_ylim(max(1e-30, np.nanmin(tab.final_e_test_dmft) * 1e-28), None)
    ax.set_xlabel("time t")
    ax.set_ylabel("E_train")
    ax.set_title("E_train (solid: simulation, geometric seed mean;\ndashed: DMFT above its noise floor, "
                 "thick: the DMFT rate window)", fontsize=10)
    ax.legend(fontsize=7.5, ncol=2)
    for panel, ycol, yerr, lab_th, lab_sim, title in (
        (bx, "rate_dmft_spectral", None, "DMFT: spectral edge at the final state (floor-free)",
         "late_rate_sim", f"Late-time rate (simulation: last {SIM_TAIL:.0%} of t ≤ {t[-1]:g})"),
        (cx, "window_rate_dmft", "window_rate_dmft_se", "DMFT decay_rate (before its noise floor)",
         "window_rate_sim", "Rate on the DMFT's reliable window (same window for both)"),
    ):
        for col, r in zip(cols, tab.itertuples()):
            y = getattr(r, ycol)
            if np.isfinite(y):
                panel.errorbar(r.final_e_test_dmft, y, yerr=getattr(r, yerr) if yerr else None, fmt="o" if yerr else "D",
                               color=col, ms=8, mfc=col if yerr else "white", mew=2)
            panel.errorbar(r.final_e_test_sim_mean, getattr(r, lab_sim + "_mean"), xerr=r.final_e_test_sim_se,
                           yerr=getattr(r, lab_sim + "_sd"), fmt="s", mfc="white", color=col, ms=7)
            panel.annotate(f"α={r.alpha:g}", (r.final_e_test_sim_mean, getattr(r, lab_sim + "_mean")),
                           textcoords="offset points", xytext=(6, 6), fontsize=8)
        panel.plot([], [], "D" if yerr is None else "o", mfc="white" if yerr is None else "0.3", color="0.3", label=lab_th)
        panel.plot([], [], "s", mfc="white", color="0.3", label="simulation (rate: mean ± sd; E_test: ± s.e. over seeds)")
        panel.set_xscale("log")
        panel.set_yscale("log")
        panel.set_xlabel(f"final E_test (t = {t[-1]:g})")
        panel.set_ylabel("rate of E_train  (E_train ∝ exp(−rate·t))")
        panel.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        panel.set_title(title, fontsize=10)
        panel.legend(fontsize=7.5, loc="lower right")
    fig.suptitle(f"Convergence rate vs generalisation at δ={m['delta']:g}, ρ={m['rho']:g}, "
                 "parametric in α: small α generalises better and converges more slowly", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# f. depth-L networks: saddle escape and final error
# ----------------------------------------------------------------------------------------------
def depth_escape(m, sims, dmft, prior):
    _theme()
    tab, fits = m["table"], m["fits"].set_index("depth")
    t_max = float(sims["time"].values[-1])
    depths = sorted(tab.depth.unique())
    cols = dict(zip(depths, sns.color_palette("deep", len(depths))))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13.5, 6.6))
    for L in depths:
        d, col, fit = tab[tab.depth == L], cols[L], fits.loc[L]
        # --- a: end of the search phase; crossings beyond t_max drawn as lower bounds at t_max
        ok = np.isfinite(d.t_half_dmft)
        ax.errorbar(d.alpha[ok], d.t_half_dmft[ok], yerr=d.t_half_dmft_se[ok], fmt="o", ms=7, color=col,
                    label=f"L={L} DMFT, slope {_fmt(fit.slope, fit.slope_se)} "
                          f"(theory {fit.slope_leading_order:.3g}{', in ln(1/α)' if L == 2 else ''})")
        ax.scatter(d.alpha[~ok], np.full((~ok).sum(), t_max), marker="^", s=60, color=col)
        oks = np.isfinite(d.t_half_sim_mean)
        ax.errorbar(d.alpha[oks] * 1.04, d.t_half_sim_mean[oks], yerr=d.t_half_sim_se[oks], fmt="s", mfc="white",
                    color=col, ms=6, label=f"L={L} simulation (mean ± se)")
        aa = np.geomspace(d.alpha.min() * 0.8, d.alpha.max() * 1.2, 60)
        ax.plot(aa, depth_search_time(aa, L, m["delta"], m["rho"], m["sigma"], prior, m["dt"], SEARCH_FRACTION),
                color=col, ls="--", lw=1.4, label=f"L={L} theory " + ("τ·ln(1/α)/2" if L == 2 else
                                                                       f"τ/({L * (L - 2)}·α^{L - 2})"))
        # --- b: E_test at t_max against the static theory; open markers: not yet converged
        conv = d.converged.values
        for mask, face in ((conv, col), (~conv, "white")):
            bx.errorbar(d.alpha[mask], d.final_e_test_dmft[mask], yerr=d.final_e_test_dmft_se[mask], fmt="o",
                        color=col, mfc=face, ms=7)
        bx.errorbar(d.alpha * 1.04, d.final_e_test_sim_mean, yerr=d.final_e_test_sim_se, fmt="s", mfc="white",
                    color=col, ms=5, alpha=0.8)
        grid, e_static = m["static_curves"][L]
        bx.plot(grid, e_static, color=col, lw=1.6, label=f"L={L} static theory (min ΣQ_L)")
    ax.scatter([], [], marker="^", color="0.4", label=f"DMFT: none by t_max = {t_max:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel(f"end of search phase t (E_train = {SEARCH_FRACTION:g}·E_train(0))")
    ax.set_title(f"Saddle escape: ln(1/α) at L = 2, α^−(L−2) at L ≥ 3 (fit over α ≤ {DEPTH_FIT_MAX_ALPHA:g})")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    bx.errorbar([], [], fmt="o", color="0.4", label=f"DMFT (filled: E_train ≤ {CONVERGED_FRACTION:g}·E_train(0))")
    bx.errorbar([], [], fmt="s", mfc="white", color="0.4", label="simulation at t_max (mean ± se)")
    bx.set_xscale("log")
    bx.set_xlabel("initialisation scale α")
    bx.set_ylabel("E_test at t_max")
    bx.set_title("Final test error against the long-time theory of each depth")
    bx.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    for axis in (ax, bx):  # the sweep's α values as plain tick labels
        axis.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sorted(tab.alpha.unique())))
        axis.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    fig.suptitle(f"Depth-L networks β = u^L − v^L (δ={m['delta']:g}, ρ={m['rho']:g}, σ={m['sigma']:g}, "
                 f"dt={m['dt']:g})", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# g. Gaussian universality
# ----------------------------------------------------------------------------------------------
def universality(m, sims, dmft, prior):
    """Per design (columns): E_train and E_test of the simulations (seed mean ± 1 s.e., solid)
    against the isotropic DMFT (dashed) and the DMFT of the design's own spectrum (dotted), one
    colour per (α, δ); last column: per design and (α, δ) the share of the gap at the last time
    that the spectrum explains, ln(spec/iso)/ln(sim/iso), ± 1 s.e., of the errors (dots) and, for
    E_test, of the errors over their values at t = 0 (diamonds); filled: a gap larger than 2 s.e.
    of the simulation, open: a gap within the seed noise. A DMFT without spectra (``dmft.spectra:
    false``: no spectrum DMFT at all) draws the simulations and the isotropic DMFT only."""
    _theme()
    tab, t, curves = m["table"], m["t"], m["curves"]
    designs = list(dict.fromkeys(tab.design))
    points = list(dict.fromkeys(zip(tab.alpha, tab.delta)))
    cols = dict(zip(points, sns.color_palette("deep", len(points))))
    n = len(designs)
    spectra = any(v[3] is not None for v in curves.values())
    fig, axes = plt.subplots(2, n + int(spectra), figsize=(2.9 * n + 5.0 * spectra, 7.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * n + [1.9] * int(spectra)})
    for j, design in enumerate(designs):
        for i, var in enumerate(("e_train", "e_test")):
            _universality_curves(axes[i, j], design, var, curves, cols, t)
            if j == 0:
                axes[i, j].set_ylabel(_LABEL[var])
        rows = tab[tab.design == design]
        d, flat = rows.d.iloc[0], bool(rows.flat_spectrum.iloc[0])
        note = "" if not spectra else ("\nflat spectrum: spectrum DMFT = isotropic" if flat else "\nspectrum DMFT dotted")
        axes[0, j].set_title(f"{design}" + (f" (d={d:g})" if np.isfinite(d) else "") + note, fontsize=9)
    if spectra:
        for i, var in enumerate(("e_train", "e_test")):
            _universality_shares(axes[i, -1], tab[tab.observable == var], designs, cols, var, t[-1])
    _universality_legend(fig, cols, spectra)
    fig.suptitle("Simulations on real and anisotropic designs (solid: seed mean ± 1 s.e.) against the isotropic DMFT "
                 + ("(dashed) and the DMFT of each design's own covariance spectrum (dotted), same (α, δ, ρ, σ); "
                    f"right: the share of the gap at t = {t[-1]:g} that the spectrum explains" if spectra else
                    "(dashed), same (α, δ, ρ, σ)"), y=1.0, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


_LABEL = {"e_train": "E_train", "e_test": "E_test"}
SHARE_RANGE = (-1.0, 2.5)  # the share axis; values beyond are drawn at its edge as arrows


def _universality_curves(ax, design, var, curves, cols, t):
    """One design's curves of ``var``: per (α, δ) the simulation with its ±1 s.e. band, the
    isotropic DMFT and the spectrum DMFT (where it differs from the isotropic one)."""
    tt = np.where(t > 0, t, np.nan)
    for (alpha, delta), col in cols.items():
        mean, se, iso, spec = curves[(design, alpha, delta, var)]
        ax.plot(tt, mean, color=col, lw=1.6)
        ax.fill_between(tt, np.maximum(mean - se, 0.5 * mean), mean + se, color=col, alpha=0.12, lw=0)
        ax.plot(tt, iso, color=col, ls="--", lw=1.1)
        if spec is not None and not np.array_equal(spec, iso, equal_nan=True):
            ax.plot(tt, spec, color=col, ls=":", lw=2.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time t")


def _universality_legend(fig, cols, spectra=True):
    """Colours ((α, δ)), line styles (the predictions drawn) and share markers, once, below."""
    handles = [matplotlib.lines.Line2D([], [], color=col, lw=6, alpha=0.7, label=f"α={alpha:g}, δ={delta:g}")
               for (alpha, delta), col in cols.items()]
    styles = (("-", 1.6, "simulation"), ("--", 1.1, "isotropic DMFT"), (":", 2.2, "spectrum DMFT"))[: 2 + int(spectra)]
    handles += [matplotlib.lines.Line2D([], [], color="0.2", ls=ls, lw=lw, label=what) for ls, lw, what in styles]
    if not spectra:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        return
    handles += [matplotlib.lines.Line2D([], [], marker="o", color="0.3", ls="none", label="share of the gap"),
                matplotlib.lines.Line2D([], [], marker="D", color="0.3", ls="none", label="E_test: share of the gap in E_test(t)/E_test(0)"),
                matplotlib.lines.Line2D([], [], marker="o", mfc="white", color="0.3", ls="none",
                                        label="open: gap within 2 s.e. (seed noise)"),
                matplotlib.lines.Line2D([], [], marker="x", color="0.3", ls="none", label="x: a DMFT value below its floor")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)


def _universality_shares(ax, sub, designs, cols, var, t_last):
    """Share of the gap ln(spec/iso)/ln(sim/iso) at the last time, one row per design, per (α, δ)
    a dot (the errors) and, for E_test, a diamond (the errors over their values at t = 0, which
    leaves out the draw of β*) with ± 1 s.e.; lines at 0 (the spectrum explains none of the gap)
    and 1 (all of it)."""
    ax.axvline(0, color="0.4", lw=1, ls="--")
    ax.axvline(1, color="k", lw=1)
    offsets = np.linspace(-0.25, 0.25, max(len(cols), 1))
    for k, design in enumerate(designs):
        rows = sub[sub.design == design]
        if bool(rows.flat_spectrum.iloc[0]):
            ax.text(0.05, k, "flat spectrum: 0", va="center", fontsize=8, color="0.35")
            continue
        for off, ((alpha, delta), col) in zip(offsets, cols.items()):
            r = rows[(rows.alpha == alpha) & (rows.delta == delta)].iloc[0]
            _share_dot(ax, r.share, r.share_se, abs(r.gap) > 2 * r.gap_se, k + off - 0.04, col, "o")
            if var == "e_test":  # E_train(0) itself depends on which β* meet the top scales: no cleaner there
                _share_dot(ax, r.share_from_start, r.share_from_start_se,
                           abs(r.gap_from_start) > 2 * r.gap_from_start_se, k + off + 0.04, col, "D")
    ax.set_yticks(range(len(designs)))
    ax.set_yticklabels(designs, fontsize=8)
    ax.set_ylim(len(designs) - 0.5, -0.5)
    ax.set_xlim(*SHARE_RANGE)
    ax.set_xlabel(f"share of the gap explained by the spectrum, {_LABEL[var]} at t = {t_last:g}", fontsize=8)
    ax.set_title(f"{_LABEL[var]}: ln(spectrum DMFT / iso) / ln(sim / iso)\n0: none of the gap, 1: all of it",
                 fontsize=9)


def _share_dot(ax, share, se, resolved, y, col, marker):
    """One share with its ± 1 s.e.; filled where the gap exceeds 2 s.e. of the simulation's log
    (``resolved``), an arrow at the axis' edge where it lies beyond, a cross at the left edge where
    it is NaN (a DMFT value below its noise floor)."""
    if not np.isfinite(share):
        ax.plot(SHARE_RANGE[0] + 0.08, y, "x", color=col, ms=5, mew=1.2)
        return
    x = float(np.clip(share, *SHARE_RANGE))
    if x != share:  # beyond the axis: an arrow at the edge, the value beside it
        ax.plot(x, y, ">" if x > 0 else "<", color=col, ms=7)
        ax.text(x - 0.08 if x > 0 else x + 0.08, y, f"{share:.1f}", ha="right" if x > 0 else "left",
                va="center", fontsize=6, color=col)
        return
    ax.errorbar(x, y, xerr=se if np.isfinite(se) else 0.0, fmt=marker, color=col, mfc=col if resolved else "white",
                ms=5.5, elinewidth=1, capsize=0)


def sgd_noise(m, sims, dmft, prior):
    """Final E_test vs α per batch fraction (simulation and DMFT), and α_eff/α."""
    _theme()
    tab = m["table"]
    bs = sorted(tab.batch_fraction.unique())
    cols = sns.color_palette("rocket", len(bs) + 1)[: len(bs)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    for col, b in zip(cols, bs):
        t = tab[tab.batch_fraction == b]
        ax.errorbar(t.alpha, t.final_e_test_sim_mean, yerr=t.final_e_test_sim_se, fmt="s", mfc="white", color=col, ms=7,
                    label=f"b={b:g} simulation (± s.e.)")
        th = np.where(t.dmft_below_floor, np.nan, t.final_e_test_dmft)  # masked: floor or not converged in N
        ax.errorbar(t.alpha, th, yerr=t.final_e_test_dmft_se, fmt="-", color=col, lw=1.6, label=f"b={b:g} DMFT")
        if b != m["b_ref"]:
            bx.plot(t.alpha, t.alpha_eff_ratio_sim, "s", mfc="white", color=col, ms=7, label=f"b={b:g} simulation")
            bx.plot(t.alpha, t.alpha_eff_ratio_dmft, "o-", color=col, lw=1.4, label=f"b={b:g} DMFT")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel(f"E_test at t = {m['t_final']:g}")
    ax.set_title("final test error vs α for each batch fraction b", fontsize=10)
    ax.legend(fontsize=7.5)
    bx.axhline(1.0, color="0.5", lw=0.8)
    bx.set_xscale("log")
    ratios = np.concatenate([tab.alpha_eff_ratio_sim.values, tab.alpha_eff_ratio_dmft.values])
    if np.any(np.isfinite(ratios) & (ratios > 0)):
        bx.set_yscale("log")
    else:  # no SGD value inside the range of the GD curve: nothing to place on a log axis
        bx.text(0.5, 0.5, "no α_eff: SGD ends outside the range of the GD curve", transform=bx.transAxes,
                ha="center", fontsize=9)
    bx.set_xlabel("initialisation scale α")
    bx.set_ylabel(f"α_eff / α  (GD at α_eff, b = {m['b_ref']:g}, ends at the same E_test)")
    bx.set_title("effective initialisation of SGD (< 1: noise acts like a smaller α)", fontsize=10)
    bx.legend(fontsize=7.5)
    fig.suptitle(f"Mini-batch noise vs solution at δ={m['delta']:g}, ρ={m['rho']:g}", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# a + b. search phase, lazy phase and the crossover in one sweep
# ----------------------------------------------------------------------------------------------
def timescales(m, sims, dmft, prior):
    """Top: t_1/2 vs α (log–log) per δ, DMFT and simulations against the search-phase and the
    lazy-phase leading orders; bottom: the DMFT's E_train/E_train(0) vs t for every α."""
    _theme()
    alphas = m["alpha"]
    n = len(m["per_delta"])
    fig, axes = plt.subplots(2, n, figsize=(6.2 * n, 9.0), squeeze=False)
    colours = sns.color_palette("viridis", len(alphas))
    for j, d in enumerate(m["per_delta"]):
        ax, bx = axes[0, j], axes[1, j]
        ax.errorbar(alphas, d["t_dmft"], yerr=d["t_dmft_se"], fmt="o", color="C0", ms=7, label="DMFT (± replica se)")
        ax.errorbar(alphas * 1.08, d["t_sim_mean"], yerr=d["t_sim_se"], fmt="s", mfc="white", color="C1", ms=6,
                    label=f"simulation (mean ± se, {d['t_sim'].shape[0]} seeds)")
        ax.plot(alphas, d["search"], color="C2", ls="--", lw=1.6,
                label=f"search phase: {d['search_slope']:.3f}·ln(1/α) + c (slope predicted)")
        ax.plot(alphas, d["lazy"], color="C3", ls=":", lw=2.0, label="lazy phase: linear regression, step dt·α²")
        if np.isfinite(d["alpha_cross"]):
            ax.axvline(d["alpha_cross"], color="0.4", lw=0.8)
            ax.text(d["alpha_cross"] * 1.1, ax.get_ylim()[0] * 1.5 if ax.get_ylim()[0] > 0 else 1e-3,
                    f"α× ≈ {d['alpha_cross']:.2g}", fontsize=8, color="0.3")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("initialisation scale α")
        ax.set_ylabel(f"t½: E_train = {SEARCH_FRACTION:g}·E_train(0)")
        ax.set_title(f"δ = {d['delta']:g}: search phase ∝ ln(1/α), lazy phase ∝ 1/α²")
        ax.legend(fontsize=7.5, loc="lower left")
        for a, col, t, e in zip(alphas, colours, d["times"], d["e_dmft"]):
            keep = t > 0
            bx.plot(t[keep], e[keep], color=col, lw=1.5, label=f"α={a:g}")
        bx.set_xscale("log")
        bx.set_yscale("log")
        bx.axhline(SEARCH_FRACTION, color="0.5", lw=0.8, ls="--")
        bx.set_xlabel("time t (each α with its own step dt(α))")
        bx.set_ylabel("DMFT E_train / E_train(0)")
        bx.set_title("DMFT learning curves (below-floor part omitted)")
    axes[1, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(f"Timescales from the search phase to the lazy phase (ρ={m['rho']:g}, σ={m['sigma']:g}; "
                 f"dt = min(c/(α² + b), cap·bound) per α)", y=1.0)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# i. step size vs solution: the effective initialisation of discrete GD / SGD
# ----------------------------------------------------------------------------------------------
def step_size(m, sims, dmft, prior):
    """Top, one panel per α: final E_test vs dt/bound per batch fraction b — simulations (seed
    mean; error bars: paired se of the change from the smallest step), DMFT (± replica se), the
    static theory at α and at α_eff. Middle: the change from the smallest step relative to its
    E_test, at the end and at the smallest step's end time, against the static prediction.
    Bottom: α_eff/α vs dt/bound, simulations and DMFT."""
    _theme()
    tab = m["table"]
    alphas = sorted(tab.alpha.unique())
    bs = sorted(tab.batch_fraction.unique())
    cols = dict(zip(bs, sns.color_palette("deep", len(bs))))
    fig, axes = plt.subplots(3, len(alphas), figsize=(5.0 * len(alphas), 12.4), squeeze=False)
    for j, a in enumerate(alphas):
        ax, cx, bx = axes[0, j], axes[1, j], axes[2, j]
        lims = [np.inf, -np.inf]  # the simulations' and the static theory's range of the middle panel
        for k, b in enumerate(bs):
            t = tab[(tab.alpha == a) & (tab.batch_fraction == b)].sort_values("dt_over_bound")
            x, c = t.dt_over_bound.values, cols[b]
            off = 0.006 * (k - (len(bs) - 1) / 2)  # keep the two b's error bars apart
            ax.errorbar(x + off, t.e_test_sim, yerr=t.change_sim_se, fmt="s", mfc="white", color=c, ms=6, capsize=2,
                        label=f"b={b:g} simulation (level se {np.nanmean(t.e_test_sim_se):.4f})")
            ax.errorbar(x - off, t.e_test_dmft, yerr=t.e_test_dmft_se, fmt="o-", color=c, ms=4, lw=1.3,
                        label=f"b={b:g} DMFT")
            ax.plot(x, t.e_test_static_alpha_eff, ls=":", color=c, lw=2.0, label=f"b={b:g} static at α_eff (sim)")
            flag = t.dmft_below_floor.values.astype(bool)  # noise floor or N-path bias (dmft.n_convergence)
            if flag.any():
                ax.plot((x - off)[flag], t.e_test_dmft.values[flag], "x", color="k", ms=8,
                        label=None if any(h.get_label().startswith("DMFT masked") for h in ax.lines) else
                        "DMFT masked (floor / N-path bias)")
            ref = t.e_test_sim.values[0]
            cx.errorbar(x + off, 100 * t.change_sim / ref, yerr=100 * t.change_sim_se / ref, fmt="s", mfc="white",
                        color=c, ms=6, capsize=2, label=f"b={b:g} simulation, at the end")
            cx.errorbar(x + 2 * off, 100 * t.change_same_t_sim / ref, yerr=100 * t.change_same_t_sim_se / ref, fmt="^",
                        color=c, ms=5, capsize=2, alpha=0.7, label=f"b={b:g} simulation, at t of the smallest step")
            cx.plot(x - off, 100 * t.change_dmft / t.e_test_dmft.values[0], "o-", color=c, ms=4, lw=1.1,
                    label=f"b={b:g} DMFT, at the end")
            cx.plot(x, 100 * t.static_change_from_min / t.e_test_static_alpha_eff.values[0], ls=":", color=c, lw=2.0,
                    label=f"b={b:g} static at α_eff")
            shown = np.concatenate([100 * (t.change_sim + sgn * t.change_sim_se) / ref for sgn in (-1, 1)]
                                   + [100 * (t.change_same_t_sim + sgn * t.change_same_t_sim_se) / ref for sgn in (-1, 1)]
                                   + [100 * t.static_change_from_min / t.e_test_static_alpha_eff.values[0]])
            lims = [min(lims[0], np.nanmin(shown)), max(lims[1], np.nanmax(shown))]
            bx.errorbar(x + off, t.alpha_eff_ratio_sim, yerr=t.alpha_eff_ratio_sim_se, fmt="s", mfc="white", color=c,
                        ms=6, label=f"b={b:g} simulation")
            bx.plot(x - off, t.alpha_eff_ratio_dmft, "o-", color=c, ms=4, lw=1.3, label=f"b={b:g} DMFT")
        st = tab[tab.alpha == a].e_test_static_alpha.values[0]
        ax.axhline(st, color="0.3", ls="--", lw=1.2, label="static at α (gradient flow)")
        ax.set_xlabel("dt / stability bound of the point")
        ax.set_ylabel("final E_test")
        ax.set_title(f"α = {a:g}", fontsize=10)
        cx.axhline(0.0, color="0.5", lw=0.8)
        pad = 0.25 * (lims[1] - lims[0]) + 0.2
        cx.set_ylim(lims[0] - pad, lims[1] + pad)  # the simulations' scale: DMFT values beyond it are in the table
        dm = tab[tab.alpha == a]
        rel = 100 * dm.change_dmft / dm.groupby("batch_fraction").e_test_dmft.transform("first")  # as drawn
        if np.any((rel < lims[0] - pad) | (rel > lims[1] + pad)):
            cx.text(0.98, 0.98, "DMFT leaves the panel (see table)", transform=cx.transAxes, fontsize=7, color="0.3",
                    ha="right", va="top")
        cx.set_xlabel("dt / stability bound of the point")
        cx.set_ylabel("change of E_test from the smallest step (%)")
        cx.set_title(f"paired change along dt, α = {a:g}", fontsize=10)
        bx.axhline(1.0, color="0.5", lw=0.8)
        bx.set_xlabel("dt / stability bound of the point")
        bx.set_ylabel("α_eff / α  (√ geometric mean of c_i / α)")
        bx.set_title(f"effective scale, α = {a:g}", fontsize=10)
    for i in range(3):
        axes[i, 0].legend(fontsize=6.5)
    fig.suptitle(f"Step size vs solution at δ={m['delta']:g}, ρ={m['rho']:g}: error bars of the simulations are the "
                 "paired se of E_test(dt) − E_test(smallest dt) (same seeds, data and selections)", y=1.0, fontsize=10)
    fig.tight_layout()
    return fig
