"""DMFT solver for gradient descent of the diagonal linear network (and of the linear model).

The equations (see ``docs/dmft.md``) are those of the theory reference, section 2, for the
*discrete* algorithm with constant step ``dt``: states k = 0 … n_steps, so T = n_steps + 1 time
points. The solver is one causal forward sweep over k (no fixed-point iteration); the
single-coordinate process is sampled with N Monte-Carlo paths per parameter point.

At step k (all rows < k of every matrix are final):

1. paths: Δ_k = u_k v_k − β* (linear model: β_k − β*); tangent x_k = v_k δu_k + u_k δv_k.
   Paths and tangents are stored in the exact coordinates (a, b) = (u + v, u − v) of
   :mod:`dln_kernels.dln_state` (Δ = (a − b)(a + b)/4 − β*, x = (a δa − b δb)/2), so a path can
   change sign after any length of search phase at any α ≥ alpha_min(dtype).
   Depth-L ``pm`` network (theory.md §6): Δ_k = u_k^L − v_k^L − β*, x_k = L u^{L−1} δu −
   L v^{L−1} δv, paths stored as (u, v) with the multiplicative update and its linearisation
   (``dln_state.PMState``), exact for α ≥ alpha_min(dtype, "pm", L);
2. G[k, l] = ⟨x_k ε_l⟩ (l < k), a path average;
3. K[k, :k] = −(1/δ) G[k, :k] K[:k, :k], K[k, k] = 1   (forward substitution of (I + G/δ)K = I);
4. row k of L_M, a lower-triangular factor of M = σ²𝟙𝟙ᵀ + C_Δ, by Gram–Schmidt (two passes) of
   the path-space vector a_k = (σ, Δ_k/√N), whose Gram matrix is exactly M: L_M[k, j] = ⟨a_k, q_j⟩.
   This is the Cholesky row update done on the vectors instead of on M (no squared condition
   number; a Cholesky row update from M diverged for small α, where Δ_k changes by O(α² dt) per
   step). A remainder below ``pivot_tol``·|a_k| marks a dependent (semidefinite) row: no new
   direction, L_M[k, k] = 0. Row k of C_Δ is then L_M[k] L_Mᵀ − σ² (diagonal: ⟨Δ_k²⟩ directly);
5. w_k = L_M[k, :] z (a Gaussian process with covariance M), s_k = w_k/√δ − Δ_k, and
   g_k = Σ_{l≤k} K[k, l] s_l  — this is η_k − Σ_l K[k, l] Δ_l with η = L z, L = K L_M/√δ,
   so L Lᵀ = K M Kᵀ/δ = C_r/δ without ever factorising C_r;
6. δg_k = ε_k − Σ_{l≤k} K[k, l] x_l, then the GD update of (u, v) and of its tangent.

Afterwards C_r = (K L_M)(K L_M)ᵀ; E_train(k) = C_r[k, k]/2, E_test(k) = C_Δ[k, k]/2.

Mini-batch SGD (theory.md §5.2, per-point ``batch_fraction`` b < 1): the selection noise adds the
diagonal D_k = ((1 − b)/b)·C_r[k, k], computed in step 4 from c_k = ‖(K L_M)[k, :]‖² +
Σ_{l<k} K[k, l]² D_l (= C_r[k, k], causal); step 5 uses w̃_k = L_M[k, :] z + √D_k z'_k with an
extra noise row z' (orthonormal, orthogonal to z and to β* where the replica has ≥ 2T + 1 paths),
so Cov(η) = K(M + D)Kᵀ/δ; afterwards C_r = (K L_M)(K L_M)ᵀ + (I − K) D (I − K)ᵀ. Points with
b = 1 have D = 0 and are solved by exactly the operations of full-batch GD.

Monte-Carlo error: the N paths of a point are split into ``n_batches`` independent replicas
(each a complete, self-consistent solve with N/n_batches paths, run side by side); the estimate is
the replica mean and the standard error is the replica standard deviation / √n_batches.

Variance reduction (``variance_reduction=True``): the noise z and the probes ε of a replica are
N×T matrices with exactly orthonormal columns (scaled so that ⟨z_k z_l⟩ = δ_kl over the paths),
and β* is stratified (exact counts of zeros / discrete values, Gaussian values on quantile strata).

Arrays on the backend are of the run dtype throughout (a float32 solve is float32 arithmetic);
only the array API standard is used, so NumPy, CuPy and ``array_api_strict`` run the same code.

Memory (bytes, per call, ``itemsize`` = 8 for float64):

    itemsize · P · (5 · N · T  +  6 · B · T²)

for P points, N paths per point, B batches and T = n_steps + 1: five N×T path histories
(Gram–Schmidt basis q, tangent x, s, z, ε; six with the SGD noise rows z' when b < 1) and six T×T matrices per replica (C_Δ, G, K, L_M and
two work matrices). Time is O(N T²) per point: eight passes over an N×k history at step k. Points are processed in chunks that fit ``memory_budget_bytes``; a single point that
does not fit raises ``MemoryError`` naming the budget.
"""

from __future__ import annotations

import logging
import math
import time as _time

import numpy as np

from . import dln_state
from .backend import get_namespace, resolve_dtype, to_device, to_numpy, xp_dtype
from .priors import second_moment, validate_prior
from .spectral_rate import edge_rate

logger = logging.getLogger("dln_kernels.dmft")

MODELS = ("dln", "linear")
POINT_KEYS = ("alpha", "delta", "rho", "sigma", "weight_decay", "dt", "batch_fraction")
POINT_DEFAULTS = {"alpha": 1.0, "rho": 1.0, "sigma": 0.0, "weight_decay": 0.0, "batch_fraction": 1.0}
N_HISTORIES = 5
N_MATRICES = 6


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def normalize_points(points, dt=None) -> dict:
    """Parameter points as a dict of float64 arrays of equal length P.

    ``points`` is a list of dicts, or a dict of scalars / equal-length lists (broadcast). Keys:
    alpha, delta, rho, sigma, weight_decay (alias ``lam``), dt, batch_fraction (mini-batch SGD,
    theory.md §5). ``delta`` is required; ``dt`` may come from the keyword; the others default to
    alpha = 1, rho = 1, sigma = 0, weight_decay = 0, batch_fraction = 1 (full-batch GD).
    Raises ValueError naming the key and value for a batch_fraction outside (0, 1].
    """
    if isinstance(points, dict):
        items = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in points.items()}
        p = max(v.size for v in items.values()) if items else 1
        rows = [{k: float(v[i] if v.size > 1 else v[0]) for k, v in items.items()} for i in range(p)]
    else:
        rows = [dict(r) for r in points]
    if not rows:
        raise ValueError("points: need at least one parameter point")
    out = {k: [] for k in POINT_KEYS}
    for i, r in enumerate(rows):
        if "lam" in r:
            r.setdefault("weight_decay", r.pop("lam"))
        unknown = set(r) - set(POINT_KEYS)
        if unknown:
            raise ValueError(f"points[{i}]: unknown keys {sorted(unknown)}; expected {POINT_KEYS}")
        if "delta" not in r:
            raise ValueError(f"points[{i}]: 'delta' is required")
        if "dt" not in r:
            if dt is None:
                raise ValueError(f"points[{i}]: no 'dt' and no dt= keyword")
            r["dt"] = dt
        for k in POINT_KEYS:
            out[k].append(float(r.get(k, POINT_DEFAULTS.get(k, np.nan))))
    out = {k: np.asarray(v) for k, v in out.items()}
    if np.any(out["delta"] <= 0) or np.any(out["dt"] <= 0):
        raise ValueError("points: delta and dt must be positive")
    if np.any((out["rho"] < 0) | (out["rho"] > 1)):
        raise ValueError("points: rho must lie in [0, 1]")
    bad = out["batch_fraction"][~((out["batch_fraction"] > 0) & (out["batch_fraction"] <= 1))]
    if bad.size:
        raise ValueError(f"points: batch_fraction {bad[0]:g} is outside (0, 1]")
    return out


def memory_bytes(n_points: int, n_paths: int, n_steps: int, n_batches: int = 8, dtype: str = "float64",
                 sgd: bool = False) -> int:
    """Bytes the solver holds for ``n_points`` points (see the module docstring); ``sgd``: with
    the extra noise rows of batch fractions b < 1."""
    T = n_steps + 1
    item = np.dtype(resolve_dtype(dtype)).itemsize
    return int(item * n_points * ((N_HISTORIES + int(sgd)) * n_paths * T + N_MATRICES * n_batches * T * T))


# ----------------------------------------------------------------------------------------------
# random inputs (host side, then moved to the backend)
# ----------------------------------------------------------------------------------------------
def _stratified_teacher(prior: dict, rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of β* with exact component counts and Gaussian values on quantile strata."""
    from scipy.special import ndtri

    if prior["kind"] == "gauss_bernoulli":
        weights = np.array([1.0 - rho, rho])
    else:
        weights = np.concatenate([[1.0 - rho], rho * np.asarray(prior["probs"], dtype=float)])
    raw = weights * n
    counts = np.floor(raw).astype(int)
    short = n - counts.sum()
    if short > 0:  # largest remainders, ties broken at random
        order = np.lexsort((rng.random(len(raw)), -(raw - counts)))
        counts[order[:short]] += 1
    vals = [np.zeros(counts[0])]
    if prior["kind"] == "gauss_bernoulli":
        m = counts[1]
        vals.append(ndtri((np.arange(m) + rng.random(m)) / max(m, 1)))
    else:
        for c, v in zip(counts[1:], prior["values"]):
            vals.append(np.full(c, float(v)))
    out = np.concatenate(vals)
    return out[rng.permutation(n)]


def _iid_teacher(prior: dict, rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
    on = rng.random(n) < rho
    if prior["kind"] == "gauss_bernoulli":
        vals = rng.standard_normal(n)
    else:
        vals = rng.choice(np.asarray(prior["values"], float), size=n, p=np.asarray(prior["probs"], float))
    return np.where(on, vals, 0.0)


def _noise_matrix(n: int, T: int, rng: np.random.Generator, orthogonal: bool, rademacher: bool) -> np.ndarray:
    """T×n matrix whose rows are the per-time noises of n paths.

    orthogonal: rows exactly orthogonal with squared norm n (so path averages ⟨z_k z_l⟩ = δ_kl);
    needs n ≥ T; built as √n · Q from a QR factorisation of an n×T Gaussian matrix (the rows of
    Q are then a uniformly random orthonormal frame). Otherwise i.i.d. N(0,1) or ±1 entries.
    """
    if orthogonal:
        if n < T:
            raise ValueError(
                f"variance_reduction needs at least T = {T} paths per batch for orthogonal noise "
                f"rows, got {n}; lower n_batches, raise n_paths or set variance_reduction=False"
            )
        q, r = np.linalg.qr(rng.standard_normal((n, T)))
        q *= np.sign(np.diag(r))  # Haar-distributed frame
        return np.ascontiguousarray(q.T) * math.sqrt(n)
    if rademacher:
        return rng.choice(np.array([-1.0, 1.0]), size=(T, n))
    return rng.standard_normal((T, n))


def _selection_noise(Z: np.ndarray, beta_star: np.ndarray, rng: np.random.Generator, orthogonal: bool) -> np.ndarray:
    """T×n SGD noise rows z' (theory.md §5.2, step 5): independent of z.

    orthogonal: rows orthonormal (squared norm n) and, where n ≥ 2T + 1, orthogonal to the rows
    of ``Z`` and to the teacher vector too (the empirical cross-correlations vanish exactly;
    needed to resolve small SGD effects, theory.md §5 Checks 8); else rows i.i.d. N(0, 1).
    """
    T, n = Z.shape
    if not orthogonal:
        return rng.standard_normal((T, n))
    if n < 2 * T + 1:
        return _noise_matrix(n, T, rng, True, rademacher=False)
    basis = np.concatenate([Z.T / math.sqrt(n), (beta_star / max(np.linalg.norm(beta_star), 1e-300))[:, None]], axis=1)
    q0, _ = np.linalg.qr(basis)  # orthonormal span of z's rows and β*
    g = rng.standard_normal((n, T))
    for _ in range(2):  # project out that span (twice: numerically orthogonal)
        g = g - q0 @ (q0.T @ g)
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))
    return np.ascontiguousarray(q.T) * math.sqrt(n)


# ----------------------------------------------------------------------------------------------
# core sweep for one chunk of systems (points × batches)
# ----------------------------------------------------------------------------------------------
def _sweep(xp, dtype, model, par, beta_star, Z, E, T, pivot_tol, progress_every, label, net=None, Zp=None):
    """Run the forward sweep for S independent systems. Arrays are on the backend.

    par: dict of (S,) arrays alpha, delta, sigma, weight_decay, dt (and batch_fraction when
    ``Zp`` is given). beta_star (S, n); Z, E (S, T, n). ``net``: the DLN state kernels
    (``dln_state.network_state``; default uv). ``Zp`` (S, T, n): the SGD noise rows z' (theory.md
    §5.2), None for full-batch GD.
    Returns dict of (S, T, T) matrices C_delta, G, K, LM, the (S, n) final Gauss–Newton
    metric ``w`` of the paths (uv: u² + v²; pm: L²(u^{2L−2} + v^{2L−2}); linear: 1) and, with
    ``Zp``, the (S, T) selection-noise diagonal ``D``.
    """
    if net is None:
        net = dln_state.network_state("uv", 2)
    S, n = beta_star.shape
    delta = par["delta"][:, None]
    lam = par["weight_decay"][:, None]
    dt = par["dt"][:, None]
    inv_sqrt_delta = 1.0 / xp.sqrt(delta)
    tiny = float(np.finfo(np.float32 if dtype == xp.float32 else np.float64).tiny)

    Q = xp.zeros((S, T, n), dtype=dtype)   # orthonormal path-space basis (Gram–Schmidt of a_k)
    Qs = xp.zeros((S, T), dtype=dtype)     # its σ-coordinate
    Xh = xp.zeros((S, T, n), dtype=dtype)  # tangent δΔ history
    Sh = xp.zeros((S, T, n), dtype=dtype)  # s = w/√δ − Δ history
    CD = xp.zeros((S, T, T), dtype=dtype)
    G = xp.zeros((S, T, T), dtype=dtype)
    K = xp.zeros((S, T, T), dtype=dtype)
    LM = xp.zeros((S, T, T), dtype=dtype)  # factor of M (a dropped, dependent direction is a zero column)
    sig = par["sigma"]
    inv_sqrt_n = 1.0 / math.sqrt(n)
    if Zp is not None:  # selection noise D_k = ((1 − b)/b) C_r[k, k] (theory.md §5.2)
        D = xp.zeros((S, T), dtype=dtype)
        d_coef = (1.0 - par["batch_fraction"]) / par["batch_fraction"]

    if model == "dln":  # uv: exact coordinates (a, b) = (u + v, u − v); pm: (u, v); see dln_state
        pa, pb = net.init(xp, par["alpha"][:, None], (S, n), dtype)
        da = xp.zeros((S, n), dtype=dtype)
        db = xp.zeros((S, n), dtype=dtype)
    else:
        bk = xp.zeros((S, n), dtype=dtype)
        dbk = xp.zeros((S, n), dtype=dtype)

    t0 = _time.perf_counter()
    for k in range(T):
        if model == "dln":
            dk = net.beta(pa, pb) - beta_star
            xk = net.tangent_beta(pa, pb, da, db)  # uv: δβ = v δu + u δv in (a, b)
        else:
            dk = bk - beta_star
            xk = dbk
        Xh[:, k, :] = xk
        if k > 0:  # row k of G (path average against the probes)
            G[:, k, :k] = xp.matmul(E[:, :k, :], xk[:, :, None])[:, :, 0] / n
            K[:, k, :k] = -xp.matmul(G[:, k : k + 1, :k], K[:, :k, :k])[:, 0, :] / delta
        K[:, k, k] = 1.0
        # row k of L_M: Gram–Schmidt (twice) of a_k = (σ, Δ_k/√n), whose Gram matrix is M
        ak = dk * inv_sqrt_n
        a0 = sig
        anorm = xp.sqrt(xp.sum(ak * ak, axis=1) + a0 * a0)
        c = xp.zeros((S, k), dtype=dtype)
        for _ in range(2):
            if k == 0:
                break
            cc = xp.matmul(Q[:, :k, :], ak[:, :, None])[:, :, 0] + Qs[:, :k] * a0[:, None]
            ak = ak - xp.matmul(cc[:, None, :], Q[:, :k, :])[:, 0, :]
            a0 = a0 - xp.sum(cc * Qs[:, :k], axis=1)
            c = c + cc
        rn = xp.sqrt(xp.sum(ak * ak, axis=1) + a0 * a0)
        keep = rn > pivot_tol * xp.maximum(anorm, tiny)
        inv = xp.where(keep, 1.0 / xp.where(keep, rn, 1.0), 0.0)
        Q[:, k, :] = ak * inv[:, None]
        Qs[:, k] = a0 * inv
        LM[:, k, :k] = c
        LM[:, k, k] = xp.where(keep, rn, 0.0)
        # row k of C_Δ = L_M L_Mᵀ − σ² (diagonal directly from the paths)
        CD[:, k, : k + 1] = xp.matmul(LM[:, k : k + 1, : k + 1], xp.matrix_transpose(LM[:, : k + 1, : k + 1]))[:, 0, :] - (sig * sig)[:, None]
        CD[:, k, k] = xp.sum(dk * dk, axis=1) / n
        CD[:, : k + 1, k] = CD[:, k, : k + 1]
        if Zp is not None:  # c_k = C_r[k, k] = ‖(K L_M)[k]‖² + Σ_{l<k} K[k, l]² D_l, then D_k
            kl = xp.matmul(K[:, k : k + 1, : k + 1], LM[:, : k + 1, : k + 1])[:, 0, :]
            ck = xp.sum(kl * kl, axis=1) + xp.sum(K[:, k, :k] * K[:, k, :k] * D[:, :k], axis=1)
            D[:, k] = d_coef * ck
        if k == T - 1:
            break
        # driving field of step k
        wk = xp.matmul(LM[:, k : k + 1, : k + 1], Z[:, : k + 1, :])[:, 0, :]
        if Zp is not None:  # w̃_k = L_M[k] z + √D_k z'_k: Cov(η) = K (M + D) Kᵀ/δ
            wk = wk + xp.sqrt(D[:, k])[:, None] * Zp[:, k, :]
        Sh[:, k, :] = wk * inv_sqrt_delta - dk
        gk = xp.matmul(K[:, k : k + 1, : k + 1], Sh[:, : k + 1, :])[:, 0, :]
        dgk = E[:, k, :] - xp.matmul(K[:, k : k + 1, : k + 1], Xh[:, : k + 1, :])[:, 0, :]
        # GD update of the path and of its tangent
        if model == "dln":
            da, db = net.tangent_step(pa, pb, da, db, gk, dgk, dt, dt * lam)
            pa, pb = net.step(pa, pb, gk, dt, dt * lam)
        else:
            bk = bk + dt * (gk - lam * bk)
            dbk = dbk + dt * (dgk - lam * dbk)
        if progress_every and (k + 1) % progress_every == 0:
            el = _time.perf_counter() - t0
            logger.info("%s step %d/%d (%.0f%%), %.1f s elapsed, ~%.1f s left", label, k + 1, T - 1,
                        100.0 * (k + 1) / (T - 1), el, el * ((T / (k + 1.0)) ** 2 - 1.0))
    if not bool(xp.all(xp.isfinite(dk))):  # never hand on silent NaNs: name the points
        from .simulate import DivergenceError

        bad = ", ".join(f"{k}={sorted(set(to_numpy(par[k]).tolist()))}" for k in ("alpha", "delta", "weight_decay", "dt"))
        raise DivergenceError(
            f"{label}: DMFT paths diverged (non-finite) at {bad}. Reduce dt below the stability bound: "
            "the paths sample the prior's tail (|beta*| up to ~4 for a Gaussian prior), where the "
            "curvature of a deep network grows like |beta*|^((2L-2)/L)"
        )
    # final Gauss–Newton metric w of each path (uv: u² + v², pm: L²(u^{2L−2} + v^{2L−2})):
    # samples of the weight law for the spectral rate
    w = net.metric(pa, pb) if model == "dln" else xp.ones_like(bk)
    out = {"C_delta": CD, "G": G, "K": K, "LM": LM, "w": w}
    if model == "dln" and net.network == "uv":  # final u² − v² = a·b of each path: the effective scale
        out["scale"] = pa * pb
    if Zp is not None:
        out["D"] = D
    return out


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def solve_dmft(
    points,
    *,
    n_steps: int,
    dt: float | None = None,
    record_steps=None,
    n_paths: int = 20000,
    prior: dict | None = None,
    model: str = "dln",
    seed: int = 0,
    backend: str = "numpy",
    dtype: str = "float64",
    n_batches: int = 8,
    variance_reduction: bool = True,
    return_matrices: bool = False,
    memory_budget_bytes: float | None = 4e9,
    floor_factor: float = 3.0,
    pivot_tol: float | None = None,
    progress: bool = True,
    network: str = "uv",
    depth: int = 2,
) -> dict:
    """Solve the DMFT of constant-step GD for a batch of parameter points.

    Parameters
    ----------
    points : list of dicts or dict of lists with keys alpha, delta, rho, sigma, weight_decay
        (alias lam), dt and batch_fraction (b < 1: mini-batch SGD, theory.md §5.2); see
        :func:`normalize_points`. All points share ``n_steps``.
    n_steps : number of GD steps; the solve covers T = n_steps + 1 states k = 0 … n_steps.
    dt : default step size for points without a ``dt`` key.
    record_steps : sorted step indices at which observables are returned (default: all).
    n_paths : Monte-Carlo paths per point, split into ``n_batches`` independent replicas.
    prior : teacher prior dict (default Gauss–Bernoulli); ``model``: "dln" or "linear".
    network, depth : the DLN family for model "dln" (one per call): ``"uv"`` (β = u v, depth 2)
        or ``"pm"`` (β = u^L − v^L, L = depth ≥ 2, theory.md §6). Ignored by the linear model
        (but still validated).
    seed : base seed; batch b draws from the stream (seed, b), the same for every point (common
        random numbers across points, so a point's result does not depend on its batch-mates);
        the SGD noise rows z' of a point with batch_fraction < 1 from the stream (seed, b, 1).
    backend, dtype : array backend ("numpy" | "cupy" | "auto") and float type.
    variance_reduction : orthogonal noise/probe rows and stratified teachers (see module doc).
    return_matrices : also return replica-averaged T×T matrices C_delta, C_r, G, K per point.
    memory_budget_bytes : bytes the solver may hold (see :func:`memory_bytes`); points are
        processed in chunks that fit, and a single point over budget raises ``MemoryError``.
        ``None`` disables the check.
    floor_factor : E_train / E_test values below ``floor_factor`` × their noise floor are flagged.
    pivot_tol : relative Gram–Schmidt remainder below which a row of M counts as dependent
        (default 1e-12 for float64, 1e-5 for float32).

    Returns
    -------
    dict of NumPy arrays (P points, R = len(record_steps)):
        ``step`` (R,), ``time`` (P, R); point parameters ``alpha``, ``delta``, ``rho``, ``sigma``,
        ``weight_decay``, ``dt`` (P,);
        ``e_train``, ``e_test`` (P, R): replica means; ``e_train_se``, ``e_test_se`` (P, R):
        Monte-Carlo standard errors (replica std / √n_batches);
        ``e_train_batches``, ``e_test_batches`` (P, n_batches, R);
        ``e_train_floor``, ``e_test_floor`` (P, R): estimated noise floors;
        ``e_train_below_floor``, ``e_test_below_floor`` (P, R) bool: values that are noise, not
        physics; ``decay_rate``, ``decay_rate_se`` (P,): late-time exponential rate of E_train
        in time units (E_train ∝ exp(−rate · t)), fitted on the reliable late part (NaN when
        there is none); ``decay_window`` (P, 2): the step window used;
        ``decay_rate_spectral`` (P,): the same rate from the spectral edge at the final state,
        free of the noise floor (λ = 0 and batch_fraction = 1 only, else NaN; see
        :func:`spectral_decay_rate`);
        ``alpha_eff`` (P,): √(geometric mean over the paths of the final u² − v²), the effective
        initialisation scale α·Π_k(1 − dt² g_k²)^{1/2} of discrete GD/SGD (λ = 0; network uv
        only, NaN otherwise; see ``phenomena_measure.effective_scale_summary``);
        with return_matrices: ``C_delta``, ``C_r``, ``G``, ``K`` (P, T, T).
    """
    if model not in MODELS:
        raise ValueError(f"model: unknown value {model!r}; expected one of {MODELS}")
    prior = prior or {"kind": "gauss_bernoulli"}
    validate_prior(prior)
    xp = get_namespace(backend)
    dt_np = resolve_dtype(dtype)
    if pivot_tol is None:
        pivot_tol = 1e-12 if dt_np == np.float64 else 1e-5
    net = dln_state.network_state(network, depth)
    par = normalize_points(points, dt)
    a_min = net.alpha_min(dt_np)
    if model == "dln" and np.min(par["alpha"]) < a_min:
        where = "" if net.network == "uv" else f" for network {net.network!r} of depth {net.depth}"
        raise ValueError(
            f"points: alpha {np.min(par['alpha']):g} is below alpha_min({dtype}) = "
            f"{a_min:.2g}{where}, the smallest initialisation the DLN state keeps exact"
        )
    P = par["delta"].size
    T = int(n_steps) + 1
    if n_steps < 1:
        raise ValueError(f"n_steps: need at least 1, got {n_steps}")
    rec = np.arange(T) if record_steps is None else np.asarray(record_steps, dtype=np.int64)
    if rec.ndim != 1 or rec.size == 0 or rec.min() < 0 or rec.max() > n_steps or np.any(np.diff(rec) <= 0):
        raise ValueError(f"record_steps: need sorted unique steps in [0, {n_steps}]")
    if n_batches < 2:
        raise ValueError("n_batches: need at least 2 independent replicas for a standard error")
    n = n_paths // n_batches
    if n < 2:
        raise ValueError(f"n_paths/n_batches = {n}: too few paths per replica")

    per_point = memory_bytes(1, n * n_batches, n_steps, n_batches, dtype, sgd=bool(np.any(par["batch_fraction"] < 1)))
    if memory_budget_bytes is None:
        chunk = P
    else:
        chunk = int(memory_budget_bytes // per_point)
        if chunk < 1:
            raise MemoryError(
                f"DMFT run needs {per_point / 1e9:.3g} GB per point (n_paths={n * n_batches}, "
                f"T={T}, n_batches={n_batches}, {dtype}), above memory_budget_bytes="
                f"{memory_budget_bytes / 1e9:.3g} GB; lower n_paths or n_steps, use float32, or "
                f"raise the budget"
            )
        chunk = min(chunk, P)

    # host results keep the run dtype (a float32 solve returns float32 observables)
    w_final = np.zeros((P, n_batches * n), dtype=dt_np)
    scale_final = np.full((P, n_batches * n), np.nan, dtype=dt_np)
    out_tr = np.zeros((P, n_batches, rec.size), dtype=dt_np)
    out_te = np.zeros((P, n_batches, rec.size), dtype=dt_np)
    mats = {k: np.zeros((P, T, T), dtype=dt_np) for k in ("C_delta", "C_r", "G", "K")} if return_matrices else None
    progress_every = max(1, (T - 1) // 10) if progress else 0

    for c0 in range(0, P, chunk):
        idx = np.arange(c0, min(P, c0 + chunk))
        S = idx.size * n_batches
        sgd = bool(np.any(par["batch_fraction"][idx] < 1))  # else exactly the full-batch solve
        bs = np.empty((S, n))
        Zs = np.empty((S, T, n))
        Es = np.empty((S, T, n))
        Zps = np.zeros((S, T, n)) if sgd else None
        for j, i in enumerate(idx):
            for bidx in range(n_batches):
                s = j * n_batches + bidx
                rng = np.random.default_rng([seed, bidx])  # common random numbers across points
                if variance_reduction:
                    bs[s] = _stratified_teacher(prior, par["rho"][i], n, rng)
                else:
                    bs[s] = _iid_teacher(prior, par["rho"][i], n, rng)
                Zs[s] = _noise_matrix(n, T, rng, variance_reduction, rademacher=False)
                Es[s] = _noise_matrix(n, T, rng, variance_reduction, rademacher=True)
                if sgd and par["batch_fraction"][i] < 1:
                    Zps[s] = _selection_noise(Zs[s], bs[s], np.random.default_rng([seed, bidx, 1]), variance_reduction)
        sys_par = {k: to_device(xp, np.repeat(par[k][idx], n_batches), dt_np) for k in POINT_KEYS}
        kind = model if model != "dln" or net.network == "uv" else f"dln/{net.network}{net.depth}"
        label = f"dmft[{kind}] points {idx[0]}..{idx[-1]} of {P}"
        logger.info("%s: %d systems x %d paths, T=%d", label, S, n, T)
        res = _sweep(
            xp, xp_dtype(xp, dt_np), model, sys_par, to_device(xp, bs, dt_np), to_device(xp, Zs, dt_np),
            to_device(xp, Es, dt_np), T, pivot_tol, progress_every, label, net,
            Zp=None if Zps is None else to_device(xp, Zps, dt_np),
        )
        del Zs, Es, Zps
        A = xp.matmul(res["K"], res["LM"])  # = √δ L
        e_tr = 0.5 * xp.sum(A * A, axis=2)  # C_r[k, k] / 2
        if sgd:  # + diag((I − K) D (I − K)ᵀ)/2 = Σ_{l<k} K[k, l]² D_l / 2
            Ks = xp.tril(res["K"], k=-1)
            e_tr = e_tr + 0.5 * xp.matmul(Ks * Ks, res["D"][:, :, None])[:, :, 0]
        e_te = 0.5 * xp.linalg.diagonal(res["C_delta"])
        out_tr[idx] = to_numpy(e_tr).reshape(idx.size, n_batches, T)[:, :, rec]
        out_te[idx] = to_numpy(e_te).reshape(idx.size, n_batches, T)[:, :, rec]
        w_final[idx] = to_numpy(res["w"]).reshape(idx.size, n_batches * n)
        if "scale" in res:
            scale_final[idx] = to_numpy(res["scale"]).reshape(idx.size, n_batches * n)
        if return_matrices:
            Cr = xp.matmul(A, xp.matrix_transpose(A))
            if sgd:
                Ks = xp.tril(res["K"], k=-1)
                Cr = Cr + xp.matmul(Ks * res["D"][:, None, :], xp.matrix_transpose(Ks))
            for name, arr in (("C_delta", res["C_delta"]), ("C_r", Cr), ("G", res["G"]), ("K", res["K"])):
                mats[name][idx] = to_numpy(arr).reshape(idx.size, n_batches, T, T).mean(axis=1)
        del res, A

    out = {k: par[k].copy() for k in POINT_KEYS}
    out["step"] = rec.copy()
    out["time"] = par["dt"][:, None] * rec[None, :]
    out["e_train_batches"] = out_tr
    out["e_test_batches"] = out_te
    for name, arr in (("e_train", out_tr), ("e_test", out_te)):
        out[name] = arr.mean(axis=1)
        out[name + "_se"] = arr.std(axis=1, ddof=1) / math.sqrt(n_batches)
    for name, arr in (("e_train", out_tr), ("e_test", out_te)):
        floor = noise_floor(arr)
        out[name + "_floor"] = floor
        out[name + "_below_floor"] = out[name] < floor_factor * floor
    rate, rate_se, window = decay_rate(out["time"], out_tr, out["e_train_below_floor"])
    out["decay_rate"], out["decay_rate_se"], out["decay_window"] = rate.astype(dt_np), rate_se.astype(dt_np), window
    out["decay_rate_spectral"] = spectral_decay_rate(w_final, par).astype(dt_np)
    # effective initialisation (network uv): c = u² − v² of the paths at the last step, which each
    # step multiplies by (1 − dt λ)² − dt² g²; α_eff = √(geometric mean of c) (NaN otherwise)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["alpha_eff"] = np.sqrt(np.exp(np.mean(np.log(scale_final.astype(np.float64)), axis=1)))
    out["n_paths"] = np.asarray(n * n_batches)
    out["n_batches"] = np.asarray(n_batches)
    if return_matrices:
        out.update(mats)
    return out


# ----------------------------------------------------------------------------------------------
# noise floor and late-time decay rate
# ----------------------------------------------------------------------------------------------
def noise_floor(e_batches: np.ndarray) -> np.ndarray:
    """Noise floor of E_train or E_test from the replica spread: (P, B, R) -> (P, R).

    E_train = diag(K M Kᵀ)/2 vanishes only through a cancellation between the estimated K and
    M, so once the true value is small a replica of n paths returns a positive bias of order
    1/n that fluctuates by its own size between replicas. The floor is therefore the standard
    deviation of the single-replica values: where the signal dominates, it is the (small)
    statistical error of one replica; where the bias dominates, it is of the size of the value
    itself. A value is flagged as below the floor when it is less than ``floor_factor`` times
    this (i.e. one replica does not resolve it to better than 1/floor_factor relative).

    E_test = E[Δ_k²]/2 involves no cancellation, but where it decays to zero (noiseless
    recovery) the paths are driven by η, whose covariance C_r/δ carries the floor of E_train, so
    E_test stalls at a floor of its own; the same replica-spread estimate detects it.
    """
    return e_batches.std(axis=1, ddof=1)


def spectral_decay_rate(w_final: np.ndarray, par: dict) -> np.ndarray:
    """Asymptotic decay rate of E_train from the spectral edge of X diag(w) Xᵀ/δ at the paths'
    final Gauss–Newton metric w, β_{k+1} − β_k = dt·w·g_k + O(dt²) (uv: w = u² + v²; pm:
    w = L²(u^{2L−2} + v^{2L−2}); see :mod:`dln_kernels.spectral_rate`): no cancellation, so no
    noise floor. It is the rate the last state would converge at (the true late rate once w has
    settled). NaN for λ > 0 (the fixed point is then not a zero of the gradient alone) and for
    non-finite paths."""
    rate = np.full(w_final.shape[0], np.nan)
    ok = (par["weight_decay"] == 0) & np.all(np.isfinite(w_final), axis=1) & np.all(w_final > 0, axis=1)
    ok &= par.get("batch_fraction", np.ones_like(par["weight_decay"])) == 1  # GD's edge; SGD: no formula here
    if ok.any():
        rate[ok] = edge_rate(w_final[ok], par["delta"][ok], par["dt"][ok])[0]
    return rate


def decay_rate(time, e_batches, below_floor, min_points: int = 4, late_fraction: float = 0.5):
    """Late-time exponential rate of E_train, fitted per replica on the reliable part.

    Window: the last ``late_fraction`` of the recorded times that are not flagged as below the
    floor (and precede the first flagged time). A least-squares line of log E_train vs t is fitted
    per replica; the rate is −slope, averaged over replicas, with the replica standard error.
    Returns (rate (P,), rate_se (P,), window (P, 2) step-index positions into the record axis).
    """
    P, B, R = e_batches.shape
    rate = np.full(P, np.nan)
    se = np.full(P, np.nan)
    window = np.full((P, 2), -1, dtype=np.int64)
    for p in range(P):
        bad = np.nonzero(below_floor[p])[0]
        end = bad[0] if bad.size else R  # reliable prefix
        t = time[p, :end]
        if end < min_points:
            continue
        t_lo = t[-1] - late_fraction * (t[-1] - t[0])
        sel = np.nonzero(t >= t_lo)[0]
        if sel.size < min_points:
            sel = np.arange(end - min_points, end)
        window[p] = (sel[0], sel[-1])
        y = np.log(np.maximum(e_batches[p][:, sel], 1e-300))
        tt = t[sel] - t[sel].mean()
        slopes = (y - y.mean(axis=1, keepdims=True)) @ tt / np.sum(tt * tt)
        rate[p] = -slopes.mean()
        se[p] = slopes.std(ddof=1) / math.sqrt(B)
    return rate, se, window
