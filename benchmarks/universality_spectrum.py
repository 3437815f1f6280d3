"""What the spectrum explains: the universality comparison (docs/phenomena.md g) with three
predictions per design — the isotropic DMFT, the diagonal DMFT with the design's own spectrum
(``solve_dmft(design=designs.design_spectrum(design))``, docs/dmft.md "Diagonal designs"), and
the simulation.

Usage: python benchmarks/universality_spectrum.py [--seeds 8] [--n-paths 3456] [--out out.json]

The sweep ``universality_spectrum`` of config.yaml (designs as there, plus the diagonal power law
``powerlaw_d432_diagonal``, rotation none, as the control for which the diagonal theory is
exact), α ∈ {0.1, 0.5}, δ ∈ {0.5, 2}, ρ = 0.2, σ = 0, dt = 0.0004 (below the stability bound of
every spectrum's DMFT: standardized patches, λ_max/mean = 359, allow 0.000425 at α = 0.5,
δ = 0.5), 1000 steps (t = 0.4), simulations with ``--seeds`` seeds (base seed 0), DMFT 8
replicas. For a rotated or data design the diagonal DMFT of its spectrum is *not* its theory (a
DLN is not rotation invariant: the teacher is sparse in the coordinate basis, the covariance's
eigenbasis is not it); it measures how much of the gap a diagonal design with the same spectrum
would produce. Per (design, α, δ) and observable at t = 0.4: the gap of the isotropic DMFT,
ln(sim/iso), and the share of it the spectrum explains, ln(spec/iso)/ln(sim/iso)
(``measure.phenomena.spectrum_share``: 1 all of it, 0 none, < 0 the wrong way); the same for the
errors over their values at t = 0 (``from_start``: the draw of β* and X that sets E(0) drops out).
A DMFT value below its noise floor (or a divergence) is reported as such.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from dln_kernels.backend import get_namespace
from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.measure.phenomena import spectrum_share
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
ALPHAS, DELTAS, RHO, DT, N_STEPS, N_BATCHES = (0.1, 0.5), (0.5, 2.0), 0.2, 0.0004, 1000, 8
KEYS = ("e_train", "e_test")
POINTS = [(a, dl) for dl in DELTAS for a in ALPHAS]  # the DMFT's points, δ-major


def simulate(des: dict, delta: float, seeds) -> dict:
    """{key: (seeds, α, 2)} at t = 0 and the last step, one data group per seed with members α."""
    xp = get_namespace("numpy")
    insts = [draw_instance(des["d"], s, 0, des) for s in seeds]
    mem = {"rho": np.full(2, RHO), "sigma": np.zeros(2), "alpha": np.array(ALPHAS), "weight_decay": np.zeros(2)}
    res = simulate_members(xp, insts, [mem] * len(insts), model="dln", delta=delta, prior=DEFAULT_PRIOR,
                           dt_schedule=np.full(N_STEPS, DT), record_steps=np.array([0, N_STEPS]))
    return {k: res[k] for k in KEYS}


def dmft(n_paths: int, spectrum=None) -> dict | None:
    """{(α, δ, key): (E(0), E(t_last) or NaN below its floor, its replica s.e.)}; None if it diverges."""
    pts = {"alpha": [p[0] for p in POINTS], "delta": [p[1] for p in POINTS], "rho": RHO, "sigma": 0.0}
    try:
        res = solve_dmft(pts, n_steps=N_STEPS, dt=DT, record_steps=[0, N_STEPS], design=spectrum, n_paths=n_paths,
                         n_batches=N_BATCHES, seed=0, progress=False)
    except DivergenceError:
        return None
    out = {}
    for i, (alpha, delta) in enumerate(POINTS):
        for k in KEYS:
            last = math.nan if res[f"{k}_below_floor"][i, -1] else float(res[k][i, -1])
            out[(alpha, delta, k)] = (float(res[k][i, 0]), last, float(res[f"{k}_se"][i, -1]))
    return out


def rows_of(des, delta, sim, iso, spec, lam) -> list:
    """The table rows of one design at one δ (both α, both keys)."""
    rows = []
    for j, alpha in enumerate(ALPHAS):
        for key in KEYS:
            s0, s1 = sim[key][:, j, 0], sim[key][:, j, -1]
            m, se = float(s1.mean()), float(s1.std(ddof=1) / math.sqrt(s1.size))
            ratio = s1 / s0
            r_m, r_se = float(ratio.mean()), float(ratio.std(ddof=1) / math.sqrt(ratio.size))
            i0, i1, i_se = iso[(alpha, delta, key)]
            p0, p1, p_se = (math.nan,) * 3 if spec is None else spec[(alpha, delta, key)]
            errs = (se, 0.0, 0.0) if spec is iso else (se, i_se, p_se)  # flat: the spectrum DMFT is the isotropic one
            gap, _, share, share_se = spectrum_share(m, i1, p1, errs)
            gap0, _, share0, share0_se = spectrum_share(r_m, i1 / i0, p1 / p0, (r_se, 0.0, 0.0))
            rows.append({"design": des["name"], "lambda_max": lam, "alpha": alpha, "delta": delta, "key": key,
                         "sim": m, "sim_se": se, "iso": i1, "spec": p1, "diverged": spec is None, "gap": gap,
                         "share": share, "share_se": share_se, "gap_from_start": gap0,
                         "share_from_start": share0, "share_from_start_se": share0_se})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--n-paths", type=int, default=3456)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    iso = dmft(a.n_paths)
    rows = []
    for spec in DESIGNS:
        des = D.resolve_design(spec, spec.get("d", 432))
        flat = D.flat_spectrum(des)
        spec_th = iso if flat else dmft(a.n_paths, D.design_spectrum(des))
        for delta in DELTAS:
            if D.pool_rows(des) is not None and round(delta * des["d"]) > D.pool_rows(des):
                continue
            rows += rows_of(des, delta, simulate(des, delta, range(a.seeds)), iso, spec_th, D.spectrum_max(des))
        print(des["name"], f"{time.perf_counter() - t0:.0f} s", flush=True)
    print_rows(rows)
    print(f"{time.perf_counter() - t0:.0f} s in all")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


def print_rows(rows) -> None:
    """The rows as a Markdown table."""
    print("| design | λ_max | α | δ | key | sim (± se) | isotropic DMFT | spectrum DMFT | gap | share (± se) | "
          "share from t = 0 (± se) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sp = "diverges" if r["diverged"] else ("below floor" if math.isnan(r["spec"]) else f"{r['spec']:.4g}")
        share = lambda v, e: "—" if math.isnan(v) else f"{v:+.2f} ± {e:.2f}"  # noqa: E731
        print(f"| {r['design']} | {r['lambda_max']:.3g} | {r['alpha']:g} | {r['delta']:g} | {r['key']} | "
              f"{r['sim']:.4g} ± {r['sim_se']:.2g} | {r['iso']:.4g} | {sp} | {r['gap']:+.3f} | "
              f"{share(r['share'], r['share_se'])} | {share(r['share_from_start'], r['share_from_start_se'])} |")


if __name__ == "__main__":
    main()
