"""What the spectrum explains: the universality comparison (docs/phenomena.md g) with three
predictions per design — the isotropic DMFT, the diagonal DMFT with the design's own spectrum
(``solve_dmft(design=designs.design_spectrum(design))``, docs/dmft.md "Diagonal designs"), and
the simulation.

Usage: python benchmarks/universality_spectrum.py [--seeds 8] [--n-paths 4808] [--out out.json]

The sweep ``universality`` of config.yaml (designs as there, plus the diagonal power law
``powerlaw_d432_diagonal``, rotation none, as the control for which the diagonal theory is
exact), α ∈ {0.1, 0.5}, δ ∈ {0.5, 2}, ρ = 0.2, σ = 0, dt = 0.02, 600 steps (t = 12), simulations
with ``--seeds`` seeds (base seed 0), DMFT 8 replicas. For a rotated or data design the
diagonal DMFT of its spectrum is *not* its theory (a DLN is not rotation invariant: the teacher is
sparse in the coordinate basis, the covariance's eigenbasis is not it); it measures how much of
the gap a diagonal design with the same spectrum would produce. Per (design, α, δ) and
observable at t = 12: the gap of the isotropic DMFT, log(sim/iso), and the share of it the
spectrum explains, log(spec/iso)/log(sim/iso) (1: all of it; 0: none; < 0: the wrong way).
A diagonal DMFT that diverges at dt = 0.02 (the coordinate with the top scale is beyond its
stability bound, which a rotated design spreads over many coordinates) is reported as such.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from dln_kernels.backend import get_namespace
from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.model import designs as D
from dln_kernels.model.dln_state import DivergenceError
from dln_kernels.model.priors import DEFAULT_PRIOR
from dln_kernels.model.problem import draw_instance
from dln_kernels.sim.simulate import simulate_members

DESIGNS = [
    {"kind": "gaussian", "name": "gaussian_d432", "d": 432},
    {"kind": "image_patches", "name": "patches_zca", "patch": 12, "stride": 4, "whiten": "zca"},
    {"kind": "image_patches", "name": "patches_standardize", "patch": 12, "stride": 4, "whiten": "standardize"},
    {"kind": "gaussian_powerlaw", "name": "powerlaw_d432", "d": 432, "exponent": 1.0},
    {"kind": "gaussian_powerlaw", "name": "powerlaw_d432_diagonal", "d": 432, "exponent": 1.0, "rotation": "none"},
    {"kind": "digits", "name": "digits_zca", "whiten": "zca"},
    {"kind": "digits", "name": "digits_standardize", "whiten": "standardize"},
    {"kind": "gaussian", "name": "gaussian_d61", "d": 61},
]
ALPHAS, DELTAS, RHO, DT, N_STEPS = (0.1, 0.5), (0.5, 2.0), 0.2, 0.02, 600
KEYS = ("e_train", "e_test")


def simulate(des: dict, delta: float, seeds) -> dict:
    """{key: (seeds, α, R=1)} at the last step, one data group per seed with members α."""
    xp = get_namespace("numpy")
    insts = [draw_instance(des["d"], s, 0, des) for s in seeds]
    mem = {"rho": np.full(2, RHO), "sigma": np.zeros(2), "alpha": np.array(ALPHAS), "weight_decay": np.zeros(2)}
    res = simulate_members(xp, insts, [mem] * len(insts), model="dln", delta=delta, prior=DEFAULT_PRIOR,
                           dt_schedule=np.full(N_STEPS, DT), record_steps=np.array([N_STEPS]))
    return {k: res[k][:, :, -1] for k in KEYS}


def dmft(delta: float, n_paths: int, design=None) -> dict | None:
    pts = {"alpha": list(ALPHAS), "delta": delta, "rho": RHO, "sigma": 0.0, "dt": DT}
    try:
        res = solve_dmft(pts, n_steps=N_STEPS, record_steps=[N_STEPS], design=design, n_paths=n_paths,
                         n_batches=8, seed=0, progress=False)
    except DivergenceError:
        return None
    return {k: (res[k][:, -1], res[f"{k}_batches"][:, :, -1].std(1, ddof=1) / math.sqrt(8)) for k in KEYS}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--n-paths", type=int, default=4808)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    iso = {delta: dmft(delta, a.n_paths) for delta in DELTAS}
    rows = []
    for spec in DESIGNS:
        des = D.resolve_design(spec, spec.get("d", 432))
        spectrum = D.design_spectrum(des)
        flat = bool(np.allclose(spectrum, 1.0, rtol=0, atol=1e-8))
        for delta in DELTAS:
            if D.pool_rows(des) is not None and round(delta * des["d"]) > D.pool_rows(des):
                continue
            sim = simulate(des, delta, range(a.seeds))
            spec_th = iso[delta] if flat else dmft(delta, a.n_paths, spectrum)
            for j, alpha in enumerate(ALPHAS):
                for key in KEYS:
                    s = sim[key][:, j]
                    m, se = float(s.mean()), float(s.std(ddof=1) / math.sqrt(s.size))
                    i_m = float(iso[delta][key][0][j])
                    row = {"design": des["name"], "alpha": alpha, "delta": delta, "key": key, "sim": m, "sim_se": se,
                           "iso": i_m, "lambda_max": float(spectrum.max()), "flat": flat}
                    if spec_th is None:
                        row.update(spec=None, share=None, gap=math.log(m / i_m))
                    else:
                        sp = float(spec_th[key][0][j])
                        gap = math.log(m / i_m)
                        row.update(spec=sp, spec_se=float(spec_th[key][1][j]), gap=gap,
                                   share=(math.log(sp / i_m) / gap) if abs(gap) > 1e-12 else None)
                    rows.append(row)
            print(des["name"], delta, f"{time.perf_counter() - t0:.0f} s", flush=True)
    print("| design | λ_max | α | δ | key | sim (± se) | isotropic DMFT | spectrum DMFT | gap log(sim/iso) | share explained |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sp = "diverges" if r["spec"] is None else f"{r['spec']:.4g}"
        share = "—" if r["share"] is None else f"{r['share']:+.2f}"
        print(f"| {r['design']} | {r['lambda_max']:.3g} | {r['alpha']:g} | {r['delta']:g} | {r['key']} | "
              f"{r['sim']:.4g} ± {r['sim_se']:.2g} | {r['iso']:.4g} | {sp} | {r['gap']:+.2f} | {share} |")
    print(f"{time.perf_counter() - t0:.0f} s in all")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
