"""Mini-batch SGD validation panel: DMFT (theory.md §5.2) vs seed-averaged simulations.

Usage: python benchmarks/sgd_panel.py [--d 2000] [--seeds 6] [--n-paths 10000] [--out panel.json]
       [--deltas 2] [--alphas 0.1] [--bs 0.1 0.3] [--sigmas 0 0.1] [--wds 0 0.05] [--no-linear]
       (a subset of the panel: the products of the given values; the paired effect needs b = 1 in --bs)

Panel: b ∈ {0.1, 0.3, 1}, α ∈ {0.1, 1}, δ ∈ {0.5, 2}, σ ∈ {0, 0.1}, λ ∈ {0, 0.05}, ρ = 0.2,
dt = 0.05, 400 steps (t ≤ 20), 25 log-spaced times. The runs of a seed share X, ξ, β* and the
selection uniforms (common random numbers), so the paired SGD effect E(b) − E(1) is measured
with its own (small) seed error. Error accounting as the GD panel of docs/dmft.md: per curve,
the relative deviation |sim − DMFT|/DMFT and z = (sim − DMFT)/√(se_sim² + se_DMFT²) at every
time where the DMFT value is above its noise floor (``*_below_floor``); a curve passes if
|z| < 4.5 everywhere there. Also the linear model (d = ``--d``) against the N = ∞ recursion.

Convergence in N (theory.md §5 Checks 6–7: the N-path solver's E_train has a *bias* ∝ 1/n per
replica of n paths, larger for small b, which the replica spread does not see): the DMFT is also
solved with half the paths; since bias(n) ∝ 1/n, E(n/2) − E(n) estimates the bias of E(n).
Times where that estimate exceeds ``--n-tol`` (10 %) of the value, or where the replica floor
flags the value, are masked ("not converged in N"). Both masks are reported.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.model.priors import DEFAULT_PRIOR, second_moment
from dln_kernels.model.schedule import output_steps
from dln_kernels.dmft.sgd_linear import sgd_linear_exact
from dln_kernels.sim.simulate import simulate_grid

BS = [0.1, 0.3, 1.0]
ALPHAS = [0.1, 1.0]
DELTAS = [0.5, 2.0]
SIGMAS = [0.0, 0.1]
WDS = [0.0, 0.05]
RHO, DT, N_STEPS = 0.2, 0.05, 400
GB = DEFAULT_PRIOR


def curve_stats(sim, th, th_se, below):
    """(median rel. dev., worst rel. dev., median |z|, fraction |z| < 2, passed, n_ok) of one curve."""
    m = sim.mean(0)
    se = sim.std(0, ddof=1) / np.sqrt(sim.shape[0])
    ok = ~below
    z = (m - th) / np.hypot(se, th_se)
    rel = np.abs(m - th) / np.abs(th)
    if not ok.any():
        return dict(n_ok=0)
    return dict(median=float(np.median(rel[ok])), worst=float(rel[ok].max()), median_z=float(np.median(np.abs(z[ok]))),
                max_z=float(np.abs(z[ok]).max()), within2=float(np.mean(np.abs(z[ok]) < 2)),
                passed=bool(np.all(np.abs(z[ok]) < 4.5)), n_ok=int(ok.sum()),
                failed_at=[int(i) for i in np.nonzero(ok & (np.abs(z) >= 4.5))[0]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--n-paths", type=int, default=10000)
    ap.add_argument("--deltas", type=float, nargs="*", default=DELTAS)
    ap.add_argument("--alphas", type=float, nargs="*", default=ALPHAS)
    ap.add_argument("--bs", type=float, nargs="*", default=BS)
    ap.add_argument("--sigmas", type=float, nargs="*", default=SIGMAS)
    ap.add_argument("--wds", type=float, nargs="*", default=WDS)
    ap.add_argument("--no-linear", action="store_true", help="skip the linear model against the N = inf recursion")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--out", default=None)
    ap.add_argument("--n-tol", type=float, default=0.1)
    args = ap.parse_args()
    for full, sub in ((BS, args.bs), (ALPHAS, args.alphas), (SIGMAS, args.sigmas), (WDS, args.wds)):
        full[:] = sorted(sub)  # a subset of the panel (the tables below read these lists)
    rec = output_steps(N_STEPS, 25)
    rows, paired, linear = [], [], []
    t0 = time.perf_counter()
    for delta in args.deltas:
        sim = simulate_grid(model="dln", d=args.d, delta=delta, rho=[RHO], sigma=SIGMAS, alpha=ALPHAS, weight_decay=WDS,
                            seeds=range(args.seeds), dt=DT, n_steps=N_STEPS, record_steps=rec, batch_fraction=BS,
                            backend=args.backend)
        t_sim = time.perf_counter() - t0
        pts = [dict(delta=delta, rho=RHO, sigma=s, alpha=a, weight_decay=w, dt=DT, batch_fraction=b)
               for s, a, w, b in itertools.product(SIGMAS, ALPHAS, WDS, BS)]
        out = solve_dmft(pts, n_steps=N_STEPS, record_steps=rec, n_paths=args.n_paths, n_batches=8, seed=11,
                         progress=False, backend=args.backend, memory_budget_bytes=16e9)
        half = solve_dmft(pts, n_steps=N_STEPS, record_steps=rec, n_paths=args.n_paths // 2, n_batches=8, seed=12,
                          progress=False, backend=args.backend, memory_budget_bytes=16e9)
        for key in ("e_train", "e_test"):  # bias(n) ≈ E(n/2) − E(n) (bias ∝ 1/n); mask unresolved N-dependence
            bias = half[key] - out[key]
            out[key + "_n_bias"] = bias
            out[key + "_replica_flag"] = out[key + "_below_floor"].copy()
            out[key + "_below_floor"] = out[key + "_below_floor"] | (bias > args.n_tol * out[key])
        print(f"delta={delta}: simulations {t_sim:.0f} s, DMFT {time.perf_counter() - t0 - t_sim:.0f} s", flush=True)
        t0 = time.perf_counter()
        i = 0
        idx = {}
        for si, ai, wi, bi in itertools.product(*(range(len(v)) for v in (SIGMAS, ALPHAS, WDS, BS))):
            p = pts[i]
            idx[(si, ai, wi, bi)] = i
            for key in ("e_train", "e_test"):
                s = sim[key][:, 0, si, ai, wi, bi, :]
                st = curve_stats(s, out[key][i], out[key + "_se"][i], out[key + "_below_floor"][i])
                j = int(np.argmax(np.abs(s.mean(0) - out[key][i]) / np.hypot(s.std(0, ddof=1) / np.sqrt(s.shape[0]),
                                                                              out[key + "_se"][i])
                                  * ~out[key + "_below_floor"][i]))  # the worst unmasked time
                rows.append(dict(point=p, key=key, **st, worst_time=float(rec[j] * DT), worst_dmft=float(out[key][i, j]),
                                 worst_sim=float(s.mean(0)[j]), worst_n_bias=float(out[key + "_n_bias"][i, j]),
                                 floor_final=float(out[key + "_floor"][i, -1]), final=float(out[key][i, -1]),
                                 n_bias_final=float(out[key + "_n_bias"][i, -1]),
                                 replica_flagged=int(out[key + "_replica_flag"][i].sum()),
                                 flagged=int(out[key + "_below_floor"][i].sum())))
            i += 1
        # paired SGD effect E(b) − E(1) (common random numbers in the simulations; the DMFT points
        # share their random streams too, so the difference of replica means has its own se)
        for si, ai, wi in itertools.product(*(range(len(v)) for v in (SIGMAS, ALPHAS, WDS))):
            if BS[-1] != 1.0:  # no GD reference in this subset
                break
            j1 = idx[(si, ai, wi, len(BS) - 1)]
            for bi in range(len(BS) - 1):
                j = idx[(si, ai, wi, bi)]
                for key in ("e_test", "e_train"):
                    s = sim[key][:, 0, si, ai, wi, bi, :] - sim[key][:, 0, si, ai, wi, -1, :]
                    diff_b = out[key + "_batches"][j] - out[key + "_batches"][j1]
                    th = diff_b.mean(0)
                    th_se = diff_b.std(0, ddof=1) / np.sqrt(diff_b.shape[0])
                    below = out[key + "_below_floor"][j] | out[key + "_below_floor"][j1]
                    m = s.mean(0)
                    se = s.std(0, ddof=1) / np.sqrt(s.shape[0])
                    tot = np.hypot(se, th_se)
                    ok = ~below & (tot > 0)  # k = 0: both runs start equal
                    z = (m - th) / np.where(tot > 0, tot, 1.0)
                    paired.append(dict(point=pts[j], key=key, median_z=float(np.median(np.abs(z[ok]))) if ok.any() else None,
                                       effect_final=float(th[-1]), effect_final_sim=float(m[-1]),
                                       effect_final_se=float(np.hypot(se[-1], th_se[-1]))))
        # linear model: simulation vs the exact N = ∞ recursion (same dt, σ, λ; b in BS)
        for sig, wd in itertools.product(SIGMAS, WDS):
            if args.no_linear:
                break
            lin = simulate_grid(model="linear", d=args.d, delta=delta, rho=[RHO], sigma=[sig], alpha=[1.0],
                                weight_decay=[wd], seeds=range(args.seeds), dt=DT, n_steps=N_STEPS, record_steps=rec,
                                batch_fraction=BS, backend=args.backend)
            ex = sgd_linear_exact(n_steps=N_STEPS, dt=DT, delta=delta, batch_fraction=BS, sigma=sig, weight_decay=wd,
                                  second_moment=second_moment(GB, RHO))
            for bi, b in enumerate(BS):
                for key in ("e_train", "e_test"):
                    s = lin[key][:, 0, 0, 0, 0, bi, :]
                    st = curve_stats(s, ex[key][bi, rec], 0.0 * rec, np.zeros(rec.size, bool))
                    linear.append(dict(point=dict(delta=delta, sigma=sig, weight_decay=wd, batch_fraction=b), key=key, **st))
    result = dict(d=args.d, seeds=args.seeds, n_paths=args.n_paths, dt=DT, n_steps=N_STEPS, rows=rows, paired=paired,
                  linear=linear)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print_tables(result)


def print_tables(result):
    print(f"\nDLN panel (d={result['d']}, {result['seeds']} seeds, N={result['n_paths']}):")
    print("| δ | b | key | curves | passed (4.5 se) | median rel. dev. (range) | median |z| (max) | within 2 se | "
          "masked times: replica floor / + N-convergence (of 25 per curve) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [r for r in result["rows"] if r.get("n_ok", 0)]
    for delta in sorted({r["point"]["delta"] for r in rows}):
        for b in BS:
            for key in ("e_test", "e_train"):
                sel = [r for r in rows if r["point"]["delta"] == delta and r["point"]["batch_fraction"] == b and r["key"] == key]
                if not sel:
                    continue
                med = [r["median"] for r in sel]
                mz = [r["median_z"] for r in sel]
                print(f"| {delta} | {b} | {key} | {len(sel)} | {sum(r['passed'] for r in sel)} | "
                      f"{np.median(med):.3f} ({min(med):.3f}–{max(med):.3f}) | {np.median(mz):.2f} ({max(mz):.2f}) | "
                      f"{np.mean([r['within2'] for r in sel]):.2f} | "
                      f"{np.mean([r.get('replica_flagged', 0) for r in sel]):.1f} / {np.mean([r.get('flagged', 0) for r in sel]):.1f} |")
    print("\nPaired effect E(b) − E(1): median |z| per curve")
    for key in ("e_test", "e_train"):
        sel = [p for p in result["paired"] if p["key"] == key and p["median_z"] is not None]
        if sel:
            mz = [p["median_z"] for p in sel]
            print(f"  {key}: {len(sel)} curves, median of median |z| {np.median(mz):.2f}, max {max(mz):.2f}")
    print("\nWorst unmasked time of each curve with max |z| > 3:")
    for r in rows:
        if r["max_z"] > 3:
            p = r["point"]
            print(f"  δ={p['delta']:g} b={p['batch_fraction']:g} α={p['alpha']:g} σ={p['sigma']:g} λ={p['weight_decay']:g} "
                  f"{r['key']}: t={r['worst_time']:.3g} DMFT {r['worst_dmft']:.4g} sim {r['worst_sim']:.4g} "
                  f"(rel. {abs(r['worst_sim'] - r['worst_dmft']) / r['worst_dmft']:.3f}, |z| {r['max_z']:.2f}), "
                  f"E(N/2) − E(N) = {r['worst_n_bias']:.3g}; passed {r['passed']}")
    print("\nLinear model vs N = ∞ recursion (no DMFT error):")
    for key in ("e_test", "e_train"):
        sel = [r for r in result["linear"] if r["key"] == key and r.get("n_ok", 0)]
        if not sel:
            continue
        mz = [r["median_z"] for r in sel]
        print(f"  {key}: {len(sel)} curves, passed {sum(r['passed'] for r in sel)}, median rel. dev. "
              f"{np.median([r['median'] for r in sel]):.4f}, median |z| {np.median(mz):.2f} (max {max(mz):.2f})")


if __name__ == "__main__":
    main()
