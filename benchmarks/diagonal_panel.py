"""Diagonal-design validation panel: the coordinate-wise DMFT (docs/dmft.md "Diagonal designs")
vs seed-averaged simulations of the same designs.

Usage: python benchmarks/diagonal_panel.py [--d 2000] [--seeds 24] [--n-paths 20000] [--steps 200]
       [--designs pl0.3 pl0.6 pl1.0 tl] [--deltas 0.5 1.5] [--out panel.json]

Panel: designs gaussian_powerlaw with rotation none at exponents 0.3, 0.6, 1.0 (``pl<exponent>``)
and two_level (fraction 0.2 at ratio 10, ``tl``); δ ∈ {0.5, 1.5}; per (design, δ) one data group
with members σ ∈ {0, 0.1} (b = 1) and, at δ > 1, σ = 0.1 with batch fraction b = 0.3 (SGD);
α = 0.5, ρ = 0.2, λ = 0, network uv. The step is 0.8 × the project's stability bound
(``model.schedule.stability_bound`` at the group's smallest b, with the teacher tail of the
simulations' draws) divided by the design's largest scale s_max (the bound of a diagonal design,
docs/dmft.md "Diagonal designs"); 200 steps, 25 recorded steps (0 and log-spaced). Cost on the
shared 2-core machine: about 25 min, nearly all of it the simulations (24 seeds × d = 2000).

Simulations: ``sim.simulate.simulate_members`` on ``model.problem.draw_instance(d, seed, 0, design)``
(rows z ⊙ √s/√d), seeds in calls of 4; E_pred = Σ_i s_i (β − β*)_i²/(2d) is computed here from the
recorded β (``record_beta``), since ``gd_stack`` does not yet pass the design's scales to the
``e_pred`` recorder (see docs/dmft.md). DMFT: ``solve_dmft(..., design=design)``, 8 replicas.

Error accounting as the isotropic GD panel of docs/dmft.md: per curve (point × observable), the
relative deviation |sim − DMFT|/DMFT and z = (sim − DMFT)/√(se_sim² + se_DMFT²) (seed standard
error of the mean, ddof 1; replica se) at every recorded time where the DMFT value is above its
noise floor (mean ≥ 3 × replica std); a curve passes if |z| < 4.5 at all those times.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from dln_kernels.backend import get_namespace
from dln_kernels.dmft.solver import solve_dmft
from dln_kernels.model.designs import diagonal_scales, resolve_design
from dln_kernels.model.priors import DEFAULT_PRIOR
from dln_kernels.model.problem import draw_instance
from dln_kernels.model.schedule import stability_bound
from dln_kernels.sim.simulate import simulate_members

ALPHA, RHO = 0.5, 0.2
DESIGNS = {
    "pl0.3": {"kind": "gaussian_powerlaw", "rotation": "none", "exponent": 0.3},
    "pl0.6": {"kind": "gaussian_powerlaw", "rotation": "none", "exponent": 0.6},
    "pl1.0": {"kind": "gaussian_powerlaw", "rotation": "none", "exponent": 1.0},
    "tl": {"kind": "two_level", "fraction": 0.2, "ratio": 10.0},
}


def members_of(delta: float) -> dict:
    """The group's members (b,) by axis: σ ∈ {0, 0.1} at b = 1, plus σ = 0.1 at b = 0.3 for δ ≥ 1."""
    sig, bf = [0.0, 0.1], [1.0, 1.0]
    if delta >= 1:
        sig, bf = sig + [0.1], bf + [0.3]
    k = len(sig)
    return {"rho": np.full(k, RHO), "sigma": np.array(sig), "alpha": np.full(k, ALPHA),
            "weight_decay": np.zeros(k), "batch_fraction": np.array(bf)}


def design_step(design: dict, delta: float, b_min: float, n_draws: float, factor: float = 0.8) -> float:
    """factor × stability_bound / s_max (the largest coordinate scale sets the curvature)."""
    s_max = float(np.max(diagonal_scales(design)))
    return factor * stability_bound("dln", ALPHA, delta, 0.0, DEFAULT_PRIOR, batch_fraction=b_min,
                                    n_draws=n_draws) / s_max


def simulate_design(design: dict, delta: float, members: dict, seeds, dt: float, n_steps: int, record,
                    per_call: int = 4) -> dict:
    """Simulations of one data group per seed: {"e_train", "e_test", "e_pred"} (seeds, b, R),
    E_pred from the recorded β with the design's scales (and E_test recomputed as a check)."""
    xp = get_namespace("numpy")
    d = design["d"]
    s = diagonal_scales(design)
    out = {k: [] for k in ("e_train", "e_test", "e_pred")}
    for c0 in range(0, len(seeds), per_call):
        insts = [draw_instance(d, int(sd), 0, design) for sd in seeds[c0 : c0 + per_call]]
        res = simulate_members(xp, insts, [members] * len(insts), model="dln", delta=delta, prior=DEFAULT_PRIOR,
                               dt_schedule=np.full(n_steps, dt), record_steps=np.asarray(record), record_beta=True)
        bstar = np.stack([np.stack([inst.teacher(DEFAULT_PRIOR, r) for r in members["rho"]]) for inst in insts])
        diff = res["beta"] - bstar[:, :, None, :]  # (G, b, R, d)
        e_test = np.sum(diff * diff, axis=-1) / (2 * d)
        assert np.allclose(e_test, res["e_test"], rtol=1e-10, atol=0), "E_test from beta disagrees with the recorder"
        out["e_train"].append(res["e_train"])
        out["e_test"].append(res["e_test"])
        out["e_pred"].append(np.sum(s * diff * diff, axis=-1) / (2 * d))
    return {k: np.concatenate(v) for k, v in out.items()}


def curve_stats(sim, th, th_se, below) -> dict:
    """Per curve: median / worst relative deviation, median / max |z|, fraction |z| < 2, passed
    (|z| < 4.5 at every time not below the DMFT floor), number of such times."""
    m = sim.mean(0)
    se = sim.std(0, ddof=1) / np.sqrt(sim.shape[0])
    ok = ~below
    if not ok.any():
        return dict(n_ok=0, passed=True)
    z = (m - th) / np.hypot(se, th_se)
    rel = np.abs(m - th) / np.abs(th)
    return dict(median=float(np.median(rel[ok])), worst=float(rel[ok].max()), median_z=float(np.median(np.abs(z[ok]))),
                max_z=float(np.abs(z[ok]).max()), within2=float(np.mean(np.abs(z[ok]) < 2)),
                passed=bool(np.all(np.abs(z[ok]) < 4.5)), n_ok=int(ok.sum()),
                final_sim=float(m[-1]), final_sim_se=float(se[-1]), final_dmft=float(th[-1]), final_dmft_se=float(th_se[-1]))


def dmft_curves(res: dict) -> dict:
    """{key: (mean, se, below_floor)} (P, R) of e_train, e_test, e_pred from a solve's replicas."""
    out = {}
    for key in ("e_train", "e_test", "e_pred"):
        eb = res[f"{key}_batches"]
        m, sd = eb.mean(1), eb.std(1, ddof=1)
        out[key] = (m, sd / np.sqrt(eb.shape[1]), m < 3.0 * sd)
    return out


def run_group(name: str, spec: dict, d: int, delta: float, seeds, n_paths: int, n_steps: int, record) -> list:
    design = resolve_design(spec, d)
    mem = members_of(delta)
    dt = design_step(design, delta, float(mem["batch_fraction"].min()), RHO * max(d * len(seeds), n_paths))
    t0 = time.perf_counter()
    sim = simulate_design(design, delta, mem, list(seeds), dt, n_steps, record)
    t_sim = time.perf_counter() - t0
    pts = [{"alpha": ALPHA, "delta": delta, "rho": RHO, "sigma": float(sg), "batch_fraction": float(b), "dt": dt}
           for sg, b in zip(mem["sigma"], mem["batch_fraction"])]
    t0 = time.perf_counter()
    res = solve_dmft(pts, n_steps=n_steps, record_steps=record, design=design, n_paths=n_paths, seed=11,
                     progress=False)
    t_dmft = time.perf_counter() - t0
    th = dmft_curves(res)
    rows = []
    for j, p in enumerate(pts):
        for key in ("e_train", "e_test", "e_pred"):
            m, se, below = (a[j] for a in th[key])
            rows.append({"design": name, "delta": delta, "sigma": p["sigma"], "b": p["batch_fraction"], "dt": dt,
                         "t_max": dt * n_steps, "s_max": float(np.max(diagonal_scales(design))), "key": key,
                         **curve_stats(sim[key][:, j, :], m, se, below)})
    print(f"{name} delta={delta}: dt={dt:.3g}, sim {t_sim:.0f} s, DMFT {t_dmft:.0f} s", flush=True)
    return rows


def table(rows: list) -> str:
    head = ("| design | δ | σ | b | t_max | key | passed (4.5 se) | median rel. dev. (worst) | median \\|z\\| (max) "
            "| final sim (± se) | final DMFT (± se) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if r["n_ok"] == 0:
            continue
        lines.append(f"| {r['design']} | {r['delta']:g} | {r['sigma']:g} | {r['b']:g} | {r['t_max']:.3g} | {r['key']} "
                     f"| {'yes' if r['passed'] else 'NO'} ({r['n_ok']} times) | {r['median']:.3f} ({r['worst']:.3f}) "
                     f"| {r['median_z']:.2f} ({r['max_z']:.2f}) | {r['final_sim']:.4g} ± {r['final_sim_se']:.2g} "
                     f"| {r['final_dmft']:.4g} ± {r['final_dmft_se']:.2g} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=24)
    ap.add_argument("--n-paths", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS))
    ap.add_argument("--deltas", nargs="+", type=float, default=[0.5, 1.5])
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    record = np.unique(np.concatenate([[0], np.geomspace(1, a.steps, 25).round().astype(int)]))
    t0 = time.perf_counter()
    rows = []
    for name in a.designs:
        for delta in a.deltas:
            rows += run_group(name, DESIGNS[name], a.d, delta, range(a.seeds), a.n_paths, a.steps, record)
    print(table(rows))
    ok = [r for r in rows if r["n_ok"]]
    print(f"{sum(r['passed'] for r in ok)} of {len(ok)} curves pass; {time.perf_counter() - t0:.0f} s in all")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
