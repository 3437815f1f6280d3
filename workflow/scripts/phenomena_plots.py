"""Phenomenon figures and their measurement tables, as pure functions of the aggregated
simulation and DMFT Datasets (definitions and thresholds: docs/phenomena.md).

Every function returns (figure, pandas.DataFrame of the measured numbers).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dln_kernels.analysis import crossing_time, late_decay_rate  # noqa: E402
from dln_kernels.phenomena import (  # noqa: E402
    crossing_time_se,
    grokking_times,
    incremental_step_prediction,
    incremental_steps,
    lazy_time_prediction,
    line_fit,
    search_slope,
)
from dln_kernels.priors import second_moment  # noqa: E402

SEARCH_FRACTION = 0.5  # end of the search phase: E_train ≤ ½ E_train(0)
SEARCH_FIT_MAX_ALPHA = 1e-3  # leading order needs ln(1/α) ≫ 1: fit α ≤ 0.001 (ln(1/α) ≥ 6.9) only
SLOPE_FRACTIONS = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
LAZY_FRACTION = 0.5


def _theme():
    sns.set_theme(style="whitegrid", context="notebook")


def _one(ds, **sel):
    """The curve(s) at the selection with ρ, σ (and λ unless given) at their first value."""
    for a in ("rho", "sigma", "weight_decay"):
        if a in ds.dims and a not in sel:
            sel[a] = ds[a].values[0]
    return ds.sel(sel)


def _masked(th, var, **sel):
    sub = _one(th, **sel)
    y = sub[var].values.astype(float)
    if f"{var}_below_floor" in th:
        y = np.where(sub[f"{var}_below_floor"].values, np.nan, y)
    return y


def _sweep_dt(ds):
    t, k = ds["time"].values, ds["step"].values
    return float(t[-1] / k[-1])


def _fmt(x, se):
    return f"{x:.3f} ± {se:.3f}" if np.isfinite(se) else f"{x:.3f}"


def _seed_slopes(t, curves, x, fraction, transform=lambda v: v):
    """Per seed: crossing times of each curve (rows over x) and their line fit; mean ± s.e."""
    times, slopes = [], []
    for seed_curves in curves:
        ts = np.array([crossing_time(t, e, fraction * e[0]) for e in seed_curves])
        times.append(ts)
        slopes.append(line_fit(x, transform(ts))["slope"])
    times, slopes = np.array(times), np.array(slopes)
    n = np.isfinite(slopes).sum()
    se = np.nanstd(slopes, ddof=1) / math.sqrt(n) if n > 1 else np.nan
    return times, float(np.nanmean(slopes)), float(se)


def _train_crossings(sims, dmft, alphas, delta, t, fraction):
    """At one δ: DMFT E_train curves and their se (per α), the DMFT times of E_train = fraction·
    E_train(0) with their se, and the simulations' E_train curves (seed, α, time)."""
    e_th = np.array([_one(dmft, alpha=a, delta=delta)["e_train"].values for a in alphas])
    se_th = np.array([_one(dmft, alpha=a, delta=delta)["e_train_se"].values for a in alphas])
    t_th = np.array([crossing_time(t, e, fraction * e[0]) for e in e_th])
    t_th_se = np.array([crossing_time_se(t, e, s, fraction * e[0]) for e, s in zip(e_th, se_th)])
    curves = np.array([[_one(sims, alpha=a, delta=delta, seed=s)["e_train"].values for a in alphas]
                       for s in sims["seed"].values])
    return e_th, se_th, t_th, t_th_se, curves


# ----------------------------------------------------------------------------------------------
# a. search phase
# ----------------------------------------------------------------------------------------------
def search_phase(sims, dmft, prior):
    _theme()
    t, dt = sims["time"].values, _sweep_dt(sims)
    alphas = sims["alpha"].values
    L = np.log(1 / alphas)
    fit = alphas <= SEARCH_FIT_MAX_ALPHA
    rho = float(sims["rho"].values[0])
    sigma = float(sims["sigma"].values[0])
    cols = sns.color_palette("deep", len(sims["delta"]))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    rows = []
    for col, delta in zip(cols, sims["delta"].values):
        # --- panel a: t_search vs ln(1/α)
        e_th, se_th, t_th, t_th_se, curves = _train_crossings(sims, dmft, alphas, delta, t, SEARCH_FRACTION)
        t_sim, _, _ = _seed_slopes(t, curves[:, fit], L[fit], SEARCH_FRACTION)
        t_sim_all = np.array([[crossing_time(t, e, SEARCH_FRACTION * e[0]) for e in sc] for sc in curves])
        f_th = line_fit(L[fit], t_th[fit], np.maximum(t_th_se[fit], 1e-3))
        pred = search_slope(SEARCH_FRACTION, delta, rho, sigma, prior, dt)
        ax.errorbar(L, t_th, yerr=t_th_se, fmt="o", color=col, ms=7, label=f"δ={delta:g} DMFT")
        ax.errorbar(L + 0.12, t_sim_all.mean(0), yerr=t_sim_all.std(0, ddof=1), fmt="s", mfc="white", color=col,
                    ms=6, label=f"δ={delta:g} simulation (mean ± sd, {curves.shape[0]} seeds)")
        xx = np.linspace(0, L.max() * 1.05, 50)
        ax.plot(xx[xx >= L[fit].min() - 0.5], (f_th["slope"] * xx + f_th["intercept"])[xx >= L[fit].min() - 0.5],
                color=col, lw=1.5, label=f"δ={delta:g} DMFT fit: slope {_fmt(f_th['slope'], f_th['slope_se'])}")
        x0, y0 = L[fit].mean(), np.nanmean(t_th[fit])
        ax.plot(xx, y0 + pred * (xx - x0), color=col, ls="--", lw=1.5, label=f"δ={delta:g} leading order: slope {pred:.3f}")
        # --- panel b: fitted slope vs the drop fraction
        fr = np.array(SLOPE_FRACTIONS)
        for f in fr:
            tt = np.array([crossing_time(t, e, f * e[0]) for e in e_th])
            tt_se = np.array([crossing_time_se(t, e, s, f * e[0]) for e, s in zip(e_th, se_th)])
            ft = line_fit(L[fit], tt[fit], np.maximum(tt_se[fit], 1e-3))
            _, s_sim, s_sim_se = _seed_slopes(t, curves[:, fit], L[fit], f)
            p = search_slope(f, delta, rho, sigma, prior, dt)
            rows.append({"delta": delta, "fraction": f, "slope_dmft": ft["slope"], "slope_dmft_se": ft["slope_se"],
                         "slope_sim": s_sim, "slope_sim_se": s_sim_se, "slope_leading_order": p,
                         "rel_dev_dmft": ft["slope"] / p - 1})
        tab = pd.DataFrame([r for r in rows if r["delta"] == delta])
        bx.errorbar(tab.fraction, tab.slope_dmft, yerr=tab.slope_dmft_se, fmt="o", color=col, label=f"δ={delta:g} DMFT")
        bx.errorbar(tab.fraction + 0.008, tab.slope_sim, yerr=tab.slope_sim_se, fmt="s", mfc="white", color=col,
                    label=f"δ={delta:g} simulation")
        ff = np.linspace(0.3, 0.97, 60)
        bx.plot(ff, [search_slope(f, delta, rho, sigma, prior, dt) for f in ff], color=col, ls="--",
                label=f"δ={delta:g} leading order")
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
    fig.suptitle(f"Search phase vs ln(1/α) (ρ={rho:g}, σ={sigma:g}, dt={dt:g})", y=1.0)
    fig.tight_layout()
    return fig, pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# b. lazy time
# ----------------------------------------------------------------------------------------------
def lazy_time(sims, dmft, prior):
    _theme()
    t, dt = sims["time"].values, _sweep_dt(sims)
    alphas = sims["alpha"].values
    rho, sigma = float(sims["rho"].values[0]), float(sims["sigma"].values[0])
    cols = sns.color_palette("deep", len(sims["delta"]))
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    rows = []
    for col, delta in zip(cols, sims["delta"].values):
        e_th, se_th, t_th, t_th_se, curves = _train_crossings(sims, dmft, alphas, delta, t, LAZY_FRACTION)
        t_sim, s_sim, s_sim_se = _seed_slopes(t, curves, np.log(alphas), LAZY_FRACTION, np.log)
        n_steps = int(round(t[-1] / dt))
        pred = lazy_time_prediction(alphas, delta, second_moment(prior, rho), dt, sigma, LAZY_FRACTION, n_steps)
        f_th = line_fit(np.log(alphas), np.log(t_th), t_th_se / t_th)
        f_pred = line_fit(np.log(alphas), np.log(pred))
        ax.errorbar(alphas, t_th, yerr=t_th_se, fmt="o", color=col, ms=7,
                    label=f"δ={delta:g} DMFT: slope {_fmt(f_th['slope'], f_th['slope_se'])}")
        ax.errorbar(alphas * 1.03, np.exp(np.log(t_sim).mean(0)), yerr=t_sim.std(0, ddof=1), fmt="s", mfc="white",
                    color=col, label=f"δ={delta:g} simulation: slope {_fmt(s_sim, s_sim_se)}")
        aa = np.geomspace(alphas.min() * 0.9, alphas.max() * 1.1, 12)
        ax.plot(aa, lazy_time_prediction(aa, delta, second_moment(prior, rho), dt, sigma, LAZY_FRACTION, n_steps), color=col,
                ls="--", lw=1.3, label=f"δ={delta:g} linear regression, step dt·α² (slope {f_pred['slope']:.3f})")
        for a, x, xs, p, ts in zip(alphas, t_th, t_th_se, pred, t_sim.T):
            rows.append({"delta": delta, "alpha": a, "t_lazy_dmft": x, "t_lazy_dmft_se": xs,
                         "t_lazy_sim_mean": ts.mean(), "t_lazy_sim_sd": ts.std(ddof=1), "t_lazy_linear_pred": p})
        rows.append({"delta": delta, "alpha": np.nan, "slope_dmft": f_th["slope"], "slope_dmft_se": f_th["slope_se"],
                     "slope_sim": s_sim, "slope_sim_se": s_sim_se, "slope_pred": f_pred["slope"]})
    aa = np.geomspace(alphas.min(), alphas.max(), 10)
    ref = np.nanmean(t_th) * (aa / np.exp(np.log(alphas).mean())) ** -2.0
    ax.plot(aa, ref * 1.6, color="0.3", lw=1, ls=":", label="slope −2 (guide)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("initialisation scale α")
    ax.set_ylabel(f"lazy time (E_train = {LAZY_FRACTION:g}·E_train(0))")
    ax.set_title(f"Lazy time vs α (ρ={rho:g}, σ={sigma:g}, dt={dt:g})")
    ax.legend(fontsize=7.5)
    fig.tight_layout()
    return fig, pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# c. incremental learning
# ----------------------------------------------------------------------------------------------
def incremental(sims, dmft, prior):
    _theme()
    t, dt = sims["time"].values, _sweep_dt(sims)
    alphas = np.sort(sims["alpha"].values)
    delta = float(sims["delta"].values[0])
    levels = np.sort(np.unique(np.abs(np.asarray(prior["values"], float))))[::-1]  # learned first: largest
    n_lv = levels.size
    cols = sns.color_palette("viridis", len(alphas) + 1)[: len(alphas)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    rows = []
    keep = t > 0
    for col, a in zip(cols, alphas):
        e_th = _masked(dmft, "e_train", alpha=a, delta=delta)
        e_sim = np.array([_one(sims, alpha=a, delta=delta, seed=s)["e_train"].values for s in sims["seed"].values])
        ax.plot(t[keep], e_sim.mean(0)[keep], color=col, lw=1.6, label=f"α={a:g} simulation (seed mean)")
        ax.plot(t[keep], e_th[keep], color=col, lw=1.4, ls="--", label=f"α={a:g} DMFT")
        st = incremental_steps(t, np.nan_to_num(e_th, nan=0.0), n_steps=n_lv)
        ok = np.isfinite(st["step_times"])
        ax.plot(st["step_times"][ok], np.interp(st["step_times"][ok], t, e_th), "v", color=col, ms=9, mec="k")
        for j in range(st["heights"].size):
            p = st["plateaus"]
            ax.hlines(st["heights"][j], p.start_times[j], p.end_times[j], color=col, lw=5, alpha=0.35)
        sim_steps = np.full((e_sim.shape[0], n_lv), np.nan)
        for s, e in enumerate(e_sim):
            ss = incremental_steps(t, e, n_steps=n_lv)["step_times"]
            sim_steps[s, : ss.size] = ss
        pred = incremental_step_prediction(levels, a, dt)
        th_steps = np.full(n_lv, np.nan)
        th_steps[: st["step_times"].size] = st["step_times"]
        bx.plot(1 / levels, th_steps, "o", color=col, ms=8, label=f"α={a:g} DMFT")
        sm = np.nanmean(sim_steps, 0)
        sd = np.nanstd(sim_steps, 0, ddof=1) if sim_steps.shape[0] > 1 else np.zeros(n_lv)
        bx.errorbar(1 / levels * 1.02, sm, yerr=sd, fmt="s", mfc="white", color=col, label=f"α={a:g} simulation")
        lv = np.linspace(levels.min() * 0.9, levels.max() * 1.1, 50)
        bx.plot(1 / lv, incremental_step_prediction(lv, a, dt), color=col, ls="--", lw=1.2,
                label=f"α={a:g} theory (ln(1/α) = {math.log(1 / a):.1f})")
        f_th = line_fit(dt / np.log1p(dt * levels), th_steps)
        for j, lvl in enumerate(levels):
            rows.append({"alpha": a, "level": lvl, "t_step_dmft": th_steps[j], "t_step_sim_mean": sm[j],
                         "t_step_sim_sd": sd[j], "t_step_theory": pred[j], "rel_dev_dmft": th_steps[j] / pred[j] - 1})
        rows.append({"alpha": a, "level": np.nan, "slope_vs_inverse_rate": f_th["slope"],
                     "slope_se": f_th["slope_se"], "ln_inv_alpha": math.log(1 / a)})
    ax.set_xscale("log")
    ax.set_yscale("log")
    e0 = float(_one(dmft, alpha=alphas[0], delta=delta)["e_train"].values[0])
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
                 f"δ={delta:g}, ρ={float(sims['rho'].values[0]):g}, dt={dt:g})", y=1.0)
    fig.tight_layout()
    return fig, pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# d. grokking-like delay
# ----------------------------------------------------------------------------------------------
def _grok_table(sims, dmft):
    t = sims["time"].values
    delta = float(sims["delta"].values[0])
    rows = []
    for a in sims["alpha"].values:
        for lam in sims["weight_decay"].values:
            th = grokking_times(t, _one(dmft, alpha=a, delta=delta, weight_decay=lam)["e_train"].values,
                                _one(dmft, alpha=a, delta=delta, weight_decay=lam)["e_test"].values)
            sim = [grokking_times(t, _one(sims, alpha=a, delta=delta, weight_decay=lam, seed=s)["e_train"].values,
                                  _one(sims, alpha=a, delta=delta, weight_decay=lam, seed=s)["e_test"].values)
                   for s in sims["seed"].values]
            ts = np.array([g["t_test"] for g in sim])
            rows.append({"alpha": a, "weight_decay": lam, "t_train_dmft": th["t_train"], "t_test_dmft": th["t_test"],
                         "delay_dmft": th["delay"], "plateau_dmft": th["plateau"],
                         "t_test_sim_mean": np.nanmean(ts), "t_test_sim_sd": np.nanstd(ts, ddof=1),
                         "delay_sim_mean": np.nanmean([g["delay"] for g in sim]),
                         "hypothesis_ln_alpha_over_lambda": math.log(a) / lam})
    return pd.DataFrame(rows)


def grokking_fit(tab, col="t_test_dmft"):
    """t_test = A·ln(α)/λ + B/λ + C by least squares: A = 1 is the hypothesis (weights shrink as
    α e^{−λt}); B = −ln α_c sets the scale α_c at which the dynamics turns rich; C is a
    λ-independent lag (the duration of the rich descent itself). Returns A, B, C and their s.e."""
    ok = np.isfinite(tab[col].values)
    a, lam, y = tab.alpha.values[ok], tab.weight_decay.values[ok], tab[col].values[ok]
    A = np.vstack([np.log(a) / lam, 1 / lam, np.ones_like(y)]).T
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(y) - 3, 1)
    cov = np.linalg.inv(A.T @ A) * (resid @ resid) / dof
    se = np.sqrt(np.diag(cov))
    return {"A": coef[0], "A_se": se[0], "B": coef[1], "B_se": se[1], "C": coef[2], "C_se": se[2],
            "rms_resid": float(np.sqrt(np.mean(resid**2))), "n": int(len(y))}


def grokking_curves(sims, dmft):
    _theme()
    t = sims["time"].values
    keep = t > 0
    delta = float(sims["delta"].values[0])
    alphas, lams = sims["alpha"].values, sims["weight_decay"].values
    tab = _grok_table(sims, dmft)
    cols = sns.color_palette("rocket", len(lams) + 1)[: len(lams)]
    fig, axes = plt.subplots(2, len(alphas), figsize=(4.4 * len(alphas) + 1.5, 7.2), sharex=True, sharey="row", squeeze=False)
    for j, a in enumerate(alphas):
        for i, var in enumerate(("e_train", "e_test")):
            ax = axes[i, j]
            for col, lam in zip(cols, lams):
                y = np.array([_one(sims, alpha=a, delta=delta, weight_decay=lam, seed=s)[var].values for s in sims["seed"].values])
                ax.plot(t[keep], y.mean(0)[keep], color=col, lw=1.6, label=f"λ={lam:g} simulation")
                ax.plot(t[keep], _masked(dmft, var, alpha=a, delta=delta, weight_decay=lam)[keep], color=col,
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
    return fig, tab


def grokking_delay(sims, dmft):
    _theme()
    tab = _grok_table(sims, dmft)
    fit_th, fit_sim = grokking_fit(tab, "t_test_dmft"), grokking_fit(tab, "t_test_sim_mean")
    lams = np.sort(tab.weight_decay.unique())
    cols = sns.color_palette("rocket", len(lams) + 1)[: len(lams)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    for col, lam in zip(cols, lams):
        s = tab[tab.weight_decay == lam].sort_values("alpha")
        ax.plot(np.log(s.alpha), lam * s.t_test_dmft, "o-", color=col, label=f"λ={lam:g} DMFT")
        ax.errorbar(np.log(s.alpha) + 0.01, lam * s.t_test_sim_mean, yerr=lam * s.t_test_sim_sd, fmt="s", mfc="white",
                    color=col, label=f"λ={lam:g} simulation")
    la = np.linspace(np.log(tab.alpha.min()) - 0.05, np.log(tab.alpha.max()) + 0.05, 10)
    y0 = np.nanmean(tab.weight_decay * tab.t_test_dmft) - np.mean(np.log(tab.alpha))
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
    pred = fit_th["A"] * np.log(tab.alpha) / tab.weight_decay + fit_th["B"] / tab.weight_decay + fit_th["C"]
    bx.plot(x, pred, "+", color="k", ms=10,
            label=(f"fit A·ln α/λ + B/λ + C (DMFT): A = {fit_th['A']:.2f} ± {fit_th['A_se']:.2f}, "
                   f"B = {fit_th['B']:.2f}, C = {fit_th['C']:.1f}"))
    xx = np.linspace(0, x.max() * 1.05, 10)
    bx.plot(xx, xx, color="0.5", ls=":", label="t = ln(α)/λ")
    bx.set_xlabel("ln(α)/λ")
    bx.set_ylabel("t_test (E_test = ½ of its lazy plateau)")
    bx.set_title(f"Delay vs (α, λ); simulation fit: A = {fit_sim['A']:.2f} ± {fit_sim['A_se']:.2f}")
    bx.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    summary = pd.DataFrame([{"source": "dmft", **fit_th}, {"source": "simulation", **fit_sim}])
    return fig, tab, summary


# ----------------------------------------------------------------------------------------------
# e. convergence rate vs generalisation
# ----------------------------------------------------------------------------------------------
SIM_TAIL = 0.3  # late-rate window: last 30 % of the valid time span
SIM_VALID = 1e-24  # simulation E_train below this is float64 round-off, not dynamics


def dmft_window(t, below_floor, late_fraction=0.5, min_points=4):
    """The window of ``dln_kernels.dmft.decay_rate``: the last ``late_fraction`` of the recorded
    times before the first one flagged below the noise floor (boolean mask over t)."""
    bad = np.flatnonzero(below_floor)
    end = bad[0] if bad.size else t.size
    w = np.zeros(t.size, bool)
    if end < min_points:
        return w
    lo = t[end - 1] - late_fraction * (t[end - 1] - t[0])
    w[:end] = t[:end] >= lo
    if w.sum() < min_points:
        w[:] = False
        w[end - min_points : end] = True
    return w


def tradeoff(sims, dmft):
    _theme()
    t = sims["time"].values
    delta = float(sims["delta"].values[0])
    alphas = sims["alpha"].values
    cols = sns.color_palette("viridis", len(alphas))
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(19, 5.6))
    rows = []
    for col, a in zip(cols, alphas):
        e_sim = np.array([_one(sims, alpha=a, delta=delta, seed=s)["e_train"].values for s in sims["seed"].values])
        te_sim = np.array([_one(sims, alpha=a, delta=delta, seed=s)["e_test"].values[-1] for s in sims["seed"].values])
        fits = [late_decay_rate(t, e, valid=e > SIM_VALID, tail_fraction=SIM_TAIL) for e in e_sim]
        r_sim = np.array([f.rate for f in fits])
        th = _one(dmft, alpha=a, delta=delta)
        w = dmft_window(t, th["e_train_below_floor"].values)
        r_sim_w = np.array([late_decay_rate(t, e, valid=w, tail_fraction=1.0).rate for e in e_sim])
        e_th = _masked(dmft, "e_train", alpha=a, delta=delta)
        ax.semilogy(t, np.exp(np.log(np.maximum(e_sim, 1e-300)).mean(0)), color=col, lw=1.6, label=f"α={a:g}")
        ax.semilogy(t, e_th, color=col, ls="--", lw=1.2)
        if w.any():
            ax.semilogy(t[w], e_th[w], color=col, lw=4, alpha=0.35)
        r_th, r_th_se = float(th["decay_rate"].values), float(th["decay_rate_se"].values)
        r_sp = float(th["decay_rate_spectral"].values) if "decay_rate_spectral" in th else np.nan
        te_th = float(th["e_test"].values[-1])
        rows.append({"alpha": a, "final_e_test_dmft": te_th, "final_e_test_sim_mean": te_sim.mean(),
                     "final_e_test_sim_sd": te_sim.std(ddof=1), "final_e_test_sim_se": te_sim.std(ddof=1) / math.sqrt(te_sim.size),
                     "late_rate_sim_mean": np.nanmean(r_sim), "late_rate_sim_sd": np.nanstd(r_sim, ddof=1),
                     "late_window_sim": f"{fits[0].t_start:.3g}-{fits[0].t_end:.3g}",
                     "sim_fit_r2_min": np.nanmin([f.r_squared for f in fits]),
                     "rate_dmft_spectral": r_sp,
                     "window_rate_dmft": r_th, "window_rate_dmft_se": r_th_se,
                     "window_rate_sim_mean": np.nanmean(r_sim_w), "window_rate_sim_sd": np.nanstd(r_sim_w, ddof=1),
                     "dmft_window": f"{t[w][0]:.3g}-{t[w][-1]:.3g}" if w.any() else ""})
    tab = pd.DataFrame(rows)
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
    fig.suptitle(f"Convergence rate vs generalisation at δ={delta:g}, ρ={float(sims['rho'].values[0]):g}, "
                 "parametric in α: small α generalises better and converges more slowly", y=1.0)
    fig.tight_layout()
    return fig, tab
