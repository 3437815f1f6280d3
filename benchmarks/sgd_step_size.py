"""Step size vs solution: final E_test vs dt for GD and mini-batch SGD, against the effective
initialisation of Even et al. 2023 (docs/phenomena.md, section i).

Usage: python benchmarks/sgd_step_size.py [--d 500] [--seeds 4] [--t 40] [--n-paths 8000]

In ``uv`` GD (λ = 0) each step multiplies c_i = u_i² − v_i² by (1 − dt² g_{k,i}²), so a run ends
like gradient flow started from the coordinate-dependent scale c_i = α²·Π_k (1 − dt² g_{k,i}²).
For each (b, α, dt): the simulations' final E_test (seed mean ± se) and E_train, the measured
c_i (``simulate_grid(save_scale=True)``) summarised by α_eff = √(geometric mean of c_i) and the
mean gain −ln(c_i/α²) (``phenomena_measure.effective_scale_summary``), the static
(gradient-flow) theory at α and at α_eff, and the DMFT of the same discrete algorithm where its
horizon T = t/dt is affordable (≤ ``--max-dmft-steps``).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.measure.phenomena import effective_scale_summary
from dln_kernels.model.priors import DEFAULT_PRIOR
from dln_kernels.model.schedule import stability_bound
from dln_kernels.sim.simulate import simulate_grid
from dln_kernels.static.solver import solve_static

GB = DEFAULT_PRIOR
DELTA, RHO = 0.5, 0.2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--t", type=float, default=40.0)
    ap.add_argument("--n-paths", type=int, default=8000)
    ap.add_argument("--max-dmft-steps", type=int, default=900)
    ap.add_argument("--alphas", type=float, nargs="*", default=[0.3, 1.0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for b in (1.0, 0.3):
        for alpha in args.alphas:
            bound = stability_bound("dln", alpha, DELTA, 0.0, GB, batch_fraction=b)
            for frac in (0.05, 0.3, 0.6, 0.85, 1.0):
                dt = round(frac * bound, 4)
                n_steps = int(round(args.t / dt))
                sim = simulate_grid(model="dln", d=args.d, delta=DELTA, rho=[RHO], sigma=[0.0], alpha=[alpha],
                                    weight_decay=[0.0], seeds=range(args.seeds), dt=dt, n_steps=n_steps,
                                    record_steps=[0, n_steps], batch_fraction=[b], save_scale=True)
                te = sim["e_test"][:, 0, 0, 0, 0, 0, -1]
                tr = sim["e_train"][:, 0, 0, 0, 0, 0, -1]
                sc = effective_scale_summary(sim["scale_final"], alpha)
                st = solve_static(np.array([alpha, sc["alpha_eff"]]), DELTA, RHO)
                row = dict(batch_fraction=b, alpha=alpha, dt=dt, dt_over_bound=frac, n_steps=n_steps,
                           e_test_sim=float(te.mean()), e_test_sim_se=float(te.std(ddof=1) / math.sqrt(te.size)),
                           e_train_sim=float(tr.mean()), **sc,
                           e_test_static_alpha=float(st["e_test"][0]), e_test_static_alpha_eff=float(st["e_test"][1]))
                if n_steps <= args.max_dmft_steps:
                    out = solve_dmft([dict(delta=DELTA, rho=RHO, alpha=alpha, dt=dt, batch_fraction=b)], n_steps=n_steps,
                                     record_steps=[0, n_steps], n_paths=args.n_paths, n_batches=8, seed=3, progress=False)
                    row.update(e_test_dmft=float(out["e_test"][0, -1]), e_test_dmft_se=float(out["e_test_se"][0, -1]),
                               alpha_eff_dmft=float(out["alpha_eff"][0]))
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    print("\n| b | α | dt (/bound) | E_test sim | E_test DMFT | static(α) | static(α_eff) | α_eff/α sim (DMFT) | mean gain | E_train sim |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dm = f"{r['e_test_dmft']:.4f} ± {r['e_test_dmft_se']:.4f}" if "e_test_dmft" in r else "–"
        print(f"| {r['batch_fraction']:g} | {r['alpha']:g} | {r['dt']:g} ({r['dt_over_bound']:.2f}) | "
              f"{r['e_test_sim']:.4f} ± {r['e_test_sim_se']:.4f} | {dm} | {r['e_test_static_alpha']:.4f} | "
              f"{r['e_test_static_alpha_eff']:.4f} | {r['alpha_eff'] / r['alpha']:.3f}"
              + (f" ({r['alpha_eff_dmft'] / r['alpha']:.3f})" if "alpha_eff_dmft" in r else "")
              + f" | {r['gain_mean']:.3f} | "
              f"{r['e_train_sim']:.1e} |")


if __name__ == "__main__":
    main()
