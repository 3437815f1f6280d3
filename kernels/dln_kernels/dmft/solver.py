"""DMFT solver for gradient descent of the diagonal linear network (and of the linear model).

The equations (see ``docs/dmft.md``) are those of the theory reference, section 2, for the
*discrete* algorithm with constant step ``dt``: states k = 0 … n_steps, so T = n_steps + 1 time
points. The solver is one causal forward sweep over k (no fixed-point iteration); the
single-coordinate process is sampled with N Monte-Carlo paths per parameter point.

At step k (all rows < k of every matrix are final):

1. paths: Δ_k = u_k v_k − β* (linear model: β_k − β*); tangent x_k = v_k δu_k + u_k δv_k.
   Paths and tangents are stored in the exact coordinates (a, b) = (u + v, u − v) of
   :mod:`dln_kernels.model.dln_state` (Δ = (a − b)(a + b)/4 − β*, x = (a δa − b δb)/2), so a path can
   change sign after any length of search phase at any α ≥ alpha_min(dtype).
   Depth-L ``pm`` network (theory.md §6): Δ_k = u_k^L − v_k^L − β*, x_k = L u^{L−1} δu −
   L v^{L−1} δv, paths stored as (u, v) with the multiplicative update and its linearisation
   (``dln_state.PMState``), exact for α ≥ alpha_min(dtype, "pm", L);
2. G[k, l] = ⟨x_k ε_l⟩ (l < k), a path average; with probes orthonormal in blocks of N/B
   steps (variance reduction, T > N/B) the tangent is split by probe block, x = Σ_b x^(b), and
   G[k, l] = ⟨x^(b)_k ε_l⟩ for l in block b (the linear part of the response exact in every
   block, not only the first: docs/dmft.md "Long sweeps");
3. K = (I + G/δ)⁻¹ is never formed: the sweep needs it only applied, to the tangents
   (y = K x, by forward substitution y_k = x_k − (1/δ) Σ_{l<k} G[k, l] y_l) and to L_M
   (A = K L_M, row k = L_M[k] − (1/δ) G[k, :k] A[:k]); with ``return_matrices`` it is
   formed once at the end;
4. row k of L_M, a lower-triangular factor of M = σ²𝟙𝟙ᵀ + C_Δ, by Gram–Schmidt of the
   path-space vector a_k = (σ, Δ_k/√N), whose Gram matrix is exactly M: L_M[k, j] = ⟨a_k, q_j⟩.
   This is the Cholesky row update done on the vectors instead of on M (no squared condition
   number; a Cholesky row update from M diverged for small α, where Δ_k changes by O(α² dt) per
   step). Classical Gram–Schmidt with one reorthogonalisation, the second pass of row k − 1
   delayed to step k and fused with the first pass of row k (DCGS2: two passes over the basis
   per step instead of four, the same algorithm in exact arithmetic). A remainder below
   ``pivot_tol``·|a_k| marks a dependent (semidefinite) row: no new direction, L_M[k, k] = 0.
   C_Δ = L_M L_Mᵀ − σ² (diagonal: ⟨Δ_k²⟩ directly);
5. with A = K L_M: g_k = Σ_{l≤k} K[k, l] (w_l/√δ − Δ_l) = A[k]·z/√δ − Σ_{l≤k} K[k, l] Δ_l,
   w = L_M z a Gaussian process with covariance M, so g_k = η_k − Σ_l K[k, l] Δ_l with
   η = L z, L = K L_M/√δ, L Lᵀ = K M Kᵀ/δ = C_r/δ, without ever factorising C_r. The memory
   sum Σ_{l<k} K[k, l] Δ_l/√N is read off the Gram–Schmidt basis, Σ_j (K[k, :k] L_M)[j] q_j;
6. δg_k = ε_k − Σ_{l≤k} K[k, l] x_l = ε_k − y_k (per probe block: ε_k drives only its own
   block's tangent), then the GD update of (u, v) and of its tangents.

Points of one call share the noise z and the probes ε of each replica (common random numbers),
so the two passes that read them (G row, A[k]·z) are matrix–matrix products with one right-hand
side per point; the other passes read per-point histories and stay matrix–vector (see
docs/dmft.md, "Matrix–matrix across points").

Afterwards C_r = A Aᵀ; E_train(k) = C_r[k, k]/2 = |A[k]|²/2, E_test(k) = C_Δ[k, k]/2 (and
E_pred = E_test for the isotropic design).

Mini-batch SGD (theory.md §5.2, per-point ``batch_fraction`` b < 1): the selection noise adds the
diagonal D_k = ((1 − b)/b)·C_r[k, k] with C_r[k, k] = |A[k]|² + Σ_{l<k} AD[k, l]² (causal),
AD = K·diag(√D) built by rows from G like A; the field becomes (A[k]·z + AD[k]·z')/√δ with one
more noise history z' per point (orthonormal, orthogonal to z and to β* where the replica has
≥ 2T + 1 paths), so Cov(η) = K(M + D)Kᵀ/δ; afterwards C_r = A Aᵀ + (I − K) D (I − K)ᵀ. Points
with b = 1 have D = 0; a chunk of b = 1 points only is solved by exactly the full-batch code.

Diagonal designs (``design=``, docs/dmft.md "Diagonal designs"; theory.md §2 with rows
x ~ N(0, diag(s)/d)): β̃ = √s β turns the design into the isotropic one, so the sample side is
unchanged once it is fed Δ̃ = √s Δ. Each path carries a coordinate scale s drawn from the
design's d scales (the finite-d spectrum as a quadrature, stream (seed, b, 3), shared by the
points of a replica); steps 1–5 run on Δ̃ and x̃ = √s x (so C_Δ[k, l] = ⟨s Δ_k Δ_l⟩ and
G[k, l] = ⟨s ∂Δ_k/∂h_l⟩), and the path is driven by g_k = √s·g̃_k = √s η_k − s Σ_l K[k, l] Δ_l,
δg_k = √s (ε_k − (K x̃)_k) (SGD: the selection noise √s·AD[k]·z'/√δ likewise). E_test = ⟨Δ²⟩/2
(unweighted), E_pred = ⟨s Δ²⟩/2 = C_Δ[k, k]/2, E_train = C_r[k, k]/2 unchanged. With s ≡ 1 the
multiplications by √s = 1 are exact: the same bits as the isotropic solve (tested).

Monte-Carlo error: the N paths of a point are split into ``n_batches`` independent replicas
(each a complete, self-consistent solve with N/n_batches paths, run side by side); the estimate is
the replica mean and the standard error is the replica standard deviation / √n_batches.

Variance reduction (``variance_reduction=True``): the noise z and the probes ε of a replica are
N×T matrices whose time-columns are exactly orthonormal (scaled so that ⟨z_k z_l⟩ = δ_kl over
the paths) within consecutive blocks of min(N/B, T) steps (any N/B ≥ 2 works; for N/B ≥ T one
block, every pair of times exact), and β* is stratified (exact counts of zeros / discrete values,
Gaussian values on quantile strata).

Arrays on the backend are of the run dtype throughout (a float32 solve is float32 arithmetic);
only the array API standard is used, so NumPy, CuPy and ``array_api_strict`` run the same code,
except the two passes over a point's Gram–Schmidt basis on NumPy: there the fused loops of
:mod:`dln_kernels.dmft.cpu_products` (numba) replace the ``matmul`` twin, which a CPU BLAS runs at a
third of its bandwidth (docs/dmft.md, "Matrix–matrix across points").

Memory (bytes, per call, ``itemsize`` = 8 for float64):

    itemsize · (P · (N · T  +  N · R  +  2 · B · T²)  +  2 · N · T)

for P points, N paths per point, B batches and T = n_steps + 1: the N×T Gram–Schmidt basis q
and the tangent histories y = K x (R rows per path, :func:`tangent_rows`: T for N/B ≥ T, one
history from each probe block's start otherwise) per point, the shared noise z and probes ε
(N×T each, once per call), and two T×T matrices per replica (L_M and A = K L_M; four more, G,
K, C_Δ, C_r, with ``return_matrices``). T = 5000, N = 20000, B = 8 (two blocks, R = 7500), one
point: 2.0 GB + 3.2 GB + 1.6 GB = 6.8 GB (6.4 GB with one tangent history).
Mini-batch SGD (a point with b < 1 in the chunk) adds one N×T history per point (its noise
rows z') and one T×T matrix per replica (K·diag(√D)).
Time is O(N T²) per point (three per-point matrix–vector passes and two shared matrix–matrix
passes over an N×k history at step k) plus O(B T³) for the rows of A = K L_M; for T > N/B
the tangent pass reads each probe block's history, N·Σ_b (T − s0_b)²/2 elements in all instead
of N·T²/2 (T = 4 N/B: 1.9×, for one of the seven right-hand sides). Points are
processed in chunks that fit ``memory_budget_bytes``; a single point that does not fit raises
``MemoryError`` naming the budget.

Code: :func:`solve_dmft` resolves its inputs into a ``_Run`` (numerical options in a
:class:`~dln_kernels.dmft.options.DMFTOptions`), draws the shared noise, solves the points chunk by
chunk with :func:`_sweep` (resolved inputs ``_SweepInputs``, arrays ``_SweepArrays``, one named
function per numbered step above) and records the registered observables through the table of
:mod:`dln_kernels.dmft.recorders` (``DMFT_RECORDERS``, checked against the registry at import).
"""

from __future__ import annotations

import functools
import logging
import math
import time as _time
from dataclasses import dataclass

import numpy as np

from dln_kernels.dmft import cpu_products
from dln_kernels.model import designs as _designs
from dln_kernels.model import dln_state
from dln_kernels.backend import backend_name, get_namespace, resolve_dtype, to_device, to_numpy, xp_dtype
from dln_kernels.registry import AXES, DMFT, axes_for
from dln_kernels.model.priors import DEFAULT_PRIOR, prior_of
from dln_kernels.model.dln_state import DivergenceError
from dln_kernels.dmft.options import OPTION_NAMES, DMFTOptions, merge_options  # noqa: F401  (public here too)
from dln_kernels.dmft.recorders import (  # noqa: F401  (public here too, as before the recorders table)
    STEP_RECORDERS, Solve, decay_rate, noise_floor, recorders_for, spectral_decay_rate,
)

logger = logging.getLogger("dln_kernels.dmft.solver")

MODELS = ("dln", "linear")
# Point keys: the registry's axes that the DMFT reads (stage DMFT), but those a solve takes once per
# call (splits_dmft: the depth, the keyword ``depth=``) and the step-size multiplier, which the
# caller folds into ``dt`` / ``dt_schedule`` (``pipeline`` ``point_dt_schedule``); plus ``dt``,
# which is not an axis. Defaults: the registry's (Axis.default), and α = 1 where the registry has
# none (a sweep must give α; a direct call need not).
_CALL_AXES = tuple(a.name for a in AXES.values() if DMFT in a.stages and a.splits_dmft)
_STEP_AXES = ("dt_scale",)
_LOCAL_DEFAULTS = {"alpha": 1.0}


def _point_keys() -> tuple:
    """POINT_KEYS from the registry (see above); ValueError at import if an axis named in
    ``_STEP_AXES`` is no DMFT axis of the registry any more (the list went stale)."""
    stale = [a for a in _STEP_AXES if a not in AXES or DMFT not in AXES[a].stages]
    if stale:
        raise ValueError(f"dmft.solver._STEP_AXES: {stale} are not DMFT axes of registry.AXES; update the list")
    return tuple(a for a in axes_for(DMFT) if a not in _CALL_AXES + _STEP_AXES) + ("dt",)


def _point_defaults(keys) -> dict:
    """{key: default} of the point keys: the registry's single default value, else ``_LOCAL_DEFAULTS``
    (keys without either are required: delta, dt)."""
    out = {}
    for k in keys:
        default = AXES[k].default if k in AXES else None
        if default is None:
            if k in _LOCAL_DEFAULTS:
                out[k] = _LOCAL_DEFAULTS[k]
            continue
        if len(default) != 1:
            raise ValueError(f"registry.AXES[{k!r}].default {default}: a DMFT point key needs one default value")
        out[k] = float(default[0])
    return out


POINT_KEYS = _point_keys()
POINT_DEFAULTS = _point_defaults(POINT_KEYS)
N_HISTORIES = 2  # per point: Gram–Schmidt basis Q, tangent history y = K x (one per probe block)
N_SHARED = 2  # per job: noise z and probes ε (shared by the points of a job)
N_MATRICES = 2  # per replica: L_M and A = K L_M
N_MATRICES_RETURNED = 4  # with return_matrices: G, K, C_Δ, C_r
FUSE_PRODUCTS = None  # None: fused CPU loops (cpu_products) on NumPy, one matmul elsewhere; True: matmul everywhere
CACHE_BYTES = 8 << 20  # CPU: systems per Gram–Schmidt block, so that its second pass over Q reads from cache (L3)
PASS_CLOCK = None  # benchmark hook: a dict {"seconds": 0.0} accumulates the wall time of the per-point
# passes over Q and the tangent history (benchmarks/bench_dmft.py; CPU only: GPU calls are asynchronous)


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def normalize_points(points, dt=None) -> dict:
    """Parameter points as a dict of float64 arrays of equal length P, keys :data:`POINT_KEYS`.

    ``points`` is a list of dicts, or a dict of scalars / equal-length lists (broadcast). Keys:
    alpha, delta, rho, sigma, weight_decay (alias ``lam``), batch_fraction (mini-batch SGD,
    theory.md §5) — the registry's DMFT axes but the depth (``solve_dmft(depth=)``) and the
    step-size multiplier ``dt_scale`` (the caller folds it into dt) — and dt. ``delta`` is
    required; ``dt`` may come from the keyword; the others default to the registry's defaults
    (``registry.AXES[...].default``: rho = 0.2, sigma = 0, weight_decay = 0, batch_fraction = 1,
    full-batch GD) and alpha = 1 (:data:`POINT_DEFAULTS`).
    Raises ValueError for an empty list, an unknown key, a missing delta or dt, delta or dt ≤ 0,
    rho outside [0, 1], and (naming the value) a batch_fraction outside (0, 1].
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


def tangent_rows(n: int, T: int) -> int:
    """Rows of the tangent histories of one system: Σ_b (T − s0_b) over the probe blocks of
    :func:`frame_blocks` (T for one block, n ≥ T; about T²/(2n) for T ≫ n)."""
    return sum(T - s0 for s0, _ in frame_blocks(max(1, n), T))


def memory_bytes(n_points: int, n_paths: int, n_steps: int, n_batches: int = 8, dtype: str = "float64",
                 return_matrices: bool = False, sgd: bool = False) -> int:
    """Bytes the solver holds for ``n_points`` points solved together (see the module docstring):
    itemsize · (P · (h N T + N R + m B T²) + 2 N T), h = 1 (2 with ``sgd``: the noise rows z'
    of batch fractions b < 1), R = :func:`tangent_rows` of N/B paths (T for N/B ≥ T),
    m = 2 (+1 with ``sgd``: K·diag(√D); +4 with ``return_matrices``)."""
    T = n_steps + 1
    item = np.dtype(resolve_dtype(dtype)).itemsize
    m = N_MATRICES + int(sgd) + (N_MATRICES_RETURNED if return_matrices else 0)
    h = N_HISTORIES - 1 + int(sgd)
    tangents = n_paths * tangent_rows(n_paths // max(1, n_batches), T)
    return int(item * (n_points * (h * n_paths * T + tangents + m * n_batches * T * T) + N_SHARED * n_paths * T))


def sweep_work(n_points: int, n_paths: int, n_steps: int, n_batches: int = 8, dtype: str = "float64") -> dict:
    """Counted work of one sweep of ``n_points`` points solved together (the roofline model of
    ``benchmarks/bench_dmft.py``).

    At step k a pass reads an N×k path history once (N = n_paths per point) and does 2 flops per
    element and right-hand side; summed over k < T that is N·T²/2 elements per pass. Per point:
    three matrix–vector passes (Gram–Schmidt projection with 2 right-hand sides, update with 3,
    tangent memory δg with 1, over each probe block's tangent history from the block's start:
    N·Σ_b (T − s0_b)²/2 elements, = N·T²/2 for one block); per job: two matrix–matrix passes
    over the shared z and ε with P right-hand sides (G row, field). Per replica one T×T pass
    (row k of A = K L_M): B·T³/3 elements per point. Returns a dict: ``passes_mv`` (per point), ``passes_mm`` (shared
    by the P points), ``flops``, ``bytes_mv`` (bytes of the per-point passes, the
    matrix–vector ones), ``bytes_histories`` (of these, the three passes over the N×k
    histories, what ``PASS_CLOCK`` times), ``bytes`` (all streamed bytes).
    """
    T = n_steps + 1
    item = np.dtype(resolve_dtype(dtype)).itemsize
    hist = n_paths * T * T / 2.0  # elements of one pass over a history, summed over the steps
    n = max(1, n_paths // max(1, n_batches))
    tang = n_paths * sum((T - s0) ** 2 for s0, _ in frame_blocks(n, T)) / 2.0
    tri = n_batches * T**3 / 3.0  # elements of one pass over the T×T matrices of B replicas
    passes_mv, passes_mm = 3, 2
    flops = n_points * (2.0 * hist * (2 + 3 + passes_mm) + 2.0 * tang + 2.0 * tri)
    bytes_mv = item * n_points * ((passes_mv - 1) * hist + tang + tri)
    return {"passes_mv": passes_mv, "passes_mm": passes_mm, "flops": flops, "bytes_mv": bytes_mv,
            "bytes_histories": item * n_points * (2 * hist + tang), "bytes": bytes_mv + item * passes_mm * hist}


# ----------------------------------------------------------------------------------------------
# random inputs (host side, then moved to the backend)
# ----------------------------------------------------------------------------------------------
def _noise_matrix(n: int, T: int, rng: np.random.Generator, orthogonal: bool, rademacher: bool) -> np.ndarray:
    """T×n matrix whose rows are the per-time noises of n paths.

    orthogonal: time is cut into consecutive blocks of min(n, T) steps; within a block the rows
    are exactly orthogonal with squared norm n (path averages ⟨z_k z_l⟩ = δ_kl), built as √n · Q
    from a QR factorisation of an n×b Gaussian matrix (the rows of Q are then a uniformly random
    orthonormal frame); blocks are independent of each other. For T ≤ n this is one block (every
    pair of times exact); for T > n, pairs of times in different blocks carry the plain O(1/√n)
    sampling error. Cost O(n·T·min(n, T)). Otherwise i.i.d. N(0,1) or ±1 entries.
    """
    if orthogonal:
        out = np.empty((T, n))
        for t0 in range(0, T, n):
            b = min(n, T - t0)
            q, r = np.linalg.qr(rng.standard_normal((n, b)))
            q *= np.sign(np.diag(r))  # Haar-distributed frame
            out[t0 : t0 + b] = q.T * math.sqrt(n)
        return out
    if rademacher:
        return rng.choice(np.array([-1.0, 1.0]), size=(T, n))
    return rng.standard_normal((T, n))


def frame_blocks(n: int, T: int, orthogonal: bool = True) -> tuple:
    """The time blocks ((s0, s1), ...) of the probe frames of :func:`_noise_matrix`: consecutive
    blocks of min(n, T) steps with ``orthogonal`` (one block (0, T) without). The tangents are
    split by these blocks (docs/dmft.md "Long sweeps"): G[k, l] for l in block b is read off the
    tangent driven by the probes of block b only, so a probe of another block, whose path
    average with ε_l is O(1/√n) and not 0, never enters G[k, l]."""
    if not orthogonal:
        return ((0, T),)
    return tuple((t0, min(T, t0 + n)) for t0 in range(0, T, n))


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
# core sweep for one chunk of systems (replicas × points): inputs, arrays, paths
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SweepInputs:
    """Resolved inputs of one sweep of S = B·P systems (B replicas of P points), on the backend.

    Systems are replica-major: system s = b·P + j is replica b of point j. ``par``: dict of (S,)
    arrays alpha, delta, rho, sigma, weight_decay, batch_fraction, dt (and ``dt_steps``
    (S, T − 1), a step schedule). ``beta_star`` (S, n). ``Z``, ``E`` (B, T, n): the noise and the
    probes of replica b, shared by the P points of the chunk (common random numbers). ``Zp``
    (S, T, n) or None: the per-point SGD noise rows z' (theory.md §5.2). ``net``: the DLN state
    kernels (``dln_state.network_state``). The rest is derived (:func:`_sweep_inputs`): column
    vectors δ, λ, dt (S, 1), 1/√δ, the dtype's ``tiny``, whether the CPU loops of
    :mod:`cpu_products` run the passes over Q (``cpu``, itemsize ``item``), the benchmark clock,
    and the SGD coefficient (1 − b)/b (``d_coef``, with ``Zp``). ``root_s`` (S, n) or None: √s of
    each path's coordinate scale s (a diagonal design, docs/dmft.md "Diagonal designs"; the P
    points of a replica share them); None for the isotropic design (s ≡ 1, no multiplications).
    ``blocks``: the probe frames' time blocks (:func:`frame_blocks`); the tangents are split by
    them, x = Σ_b x^(b), x^(b) driven by the probes ε_l, l in block b, only."""

    xp: object
    dtype: object
    model: str
    net: object
    par: dict
    beta_star: object
    Z: object
    E: object
    Zp: object
    T: int
    pivot_tol: float
    progress_every: int
    label: str
    keep_matrices: bool
    B: int
    P: int
    S: int
    n: int
    delta: object
    lam: object
    dt: object
    dt_steps: object
    inv_sqrt_delta: object
    d_coef: object
    tiny: float
    sqrt_n: float
    inv_sqrt_n: float
    cpu: bool
    item: int
    clock: dict | None
    root_s: object = None
    blocks: tuple = ()


def _sweep_inputs(xp, dtype, model, par, beta_star, Z, E, T, pivot_tol, progress_every, label, net=None,
                  keep_matrices=False, Zp=None, root_s=None, blocks=None) -> _SweepInputs:
    """The :class:`_SweepInputs` of a sweep (arguments as its fields; ``net`` default: uv;
    ``blocks`` default: one block, (0, T))."""
    if net is None:
        net = dln_state.network_state("uv", 2)
    B = Z.shape[0]
    S, n = beta_star.shape
    delta = par["delta"][:, None]
    sqrt_n = math.sqrt(n)
    # The two passes over a point's Gram–Schmidt basis Q (2 and 3 right-hand sides): on a GPU (and
    # any non-NumPy namespace) one matmul each; on a CPU the fused loops of cpu_products (a BLAS
    # runs 2–3 right-hand sides at a third of its matrix–vector bandwidth), made per block of
    # systems whose Q fits CACHE_BYTES, so that the second pass reads the block from cache.
    cpu = (backend_name(xp) == "numpy" and cpu_products.AVAILABLE and not FUSE_PRODUCTS
           and dtype in (xp.float32, xp.float64))
    return _SweepInputs(
        xp=xp, dtype=dtype, model=model, net=net, par=par, beta_star=beta_star, Z=Z, E=E, Zp=Zp, T=T,
        pivot_tol=pivot_tol, progress_every=progress_every, label=label, keep_matrices=keep_matrices,
        B=B, P=S // B, S=S, n=n, delta=delta, lam=par["weight_decay"][:, None], dt=par["dt"][:, None],
        dt_steps=par.get("dt_steps"), inv_sqrt_delta=1.0 / xp.sqrt(delta),
        d_coef=None if Zp is None else (1.0 - par["batch_fraction"]) / par["batch_fraction"],
        tiny=float(np.finfo(np.float32 if dtype == xp.float32 else np.float64).tiny),
        sqrt_n=sqrt_n, inv_sqrt_n=1.0 / sqrt_n, cpu=cpu, item=4 if dtype == xp.float32 else 8, clock=PASS_CLOCK,
        root_s=None if root_s is None else xp.reshape(xp.broadcast_to(root_s[:, None, :], (B, S // B, n)), (S, n)),
        blocks=((0, T),) if blocks is None else tuple(blocks),
    )


@dataclass(frozen=True)
class _SweepArrays:
    """The sweep's arrays, filled in place row by row. ``Q`` (S, T, n): orthonormal path-space
    basis (Gram–Schmidt of a_k; row k final at step k + 1), ``Qs`` (S, T) its σ-coordinate;
    ``Yh``: per probe block b = (s0, s1), the (S, T − s0, n) history of y^(b) = K x^(b) from
    step s0 on (K applied to the tangent of block b; before s0 it is zero); ``A`` (S, T, T):
    A = K L_M = √δ L, by rows of (I + G/δ) A = L_M; ``LM`` (S, T, T): factor of M (a dropped,
    dependent direction is a zero column); ``G`` (S, T, T) with ``keep_matrices``, else None;
    ``cd_diag`` (S, T): ⟨Δ_k²⟩ (a diagonal design: ⟨s Δ_k²⟩, the sample side's C[k, k]);
    ``cd_phys`` (S, T): ⟨Δ_k²⟩ unweighted (a diagonal design; the same array as ``cd_diag``
    without one); ``AD`` (S, T, T): K·diag(√D) with SGD, else None. Per step:
    ``a1``, ``a10``: a_k's remainder (the next pending row) and its σ-coordinate, ``mem``
    (S, n): Σ_{l<k} K[k, l] Δ_l, the memory term of the field."""

    Q: object
    Qs: object
    Yh: object
    A: object
    LM: object
    G: object
    cd_diag: object
    cd_phys: object
    AD: object
    a1: object
    a10: object
    mem: object


def _allocate(inp: _SweepInputs) -> _SweepArrays:
    """Zeroed :class:`_SweepArrays` of the sweep."""
    xp, S, T, n, dtype = inp.xp, inp.S, inp.T, inp.n, inp.dtype
    cd_diag = xp.zeros((S, T), dtype=dtype)
    return _SweepArrays(
        Q=xp.zeros((S, T, n), dtype=dtype), Qs=xp.zeros((S, T), dtype=dtype),
        Yh=tuple(xp.zeros((S, T - s0, n), dtype=dtype) for s0, _ in inp.blocks),
        A=xp.zeros((S, T, T), dtype=dtype), LM=xp.zeros((S, T, T), dtype=dtype),
        G=xp.zeros((S, T, T), dtype=dtype) if inp.keep_matrices else None, cd_diag=cd_diag,
        cd_phys=cd_diag if inp.root_s is None else xp.zeros((S, T), dtype=dtype),
        AD=None if inp.Zp is None else xp.zeros((S, T, T), dtype=dtype),
        a1=xp.zeros((S, n), dtype=dtype), a10=xp.zeros((S,), dtype=dtype), mem=xp.zeros((S, n), dtype=dtype),
    )


@dataclass(frozen=True)
class _Paths:
    """The N paths of every system after k steps, (S, n) each, and their tangents, (nb, S, n):
    one per probe block (``_SweepInputs.blocks``). DLN uv: exact coordinates (a, b) = (u + v,
    u − v) and their tangents (δa, δb); pm: (u, v) and (δu, δv) (see ``dln_state``); linear
    model: ``a`` = β and ``da`` = δβ (``b``, ``db`` None)."""

    a: object
    b: object
    da: object
    db: object


@dataclass(frozen=True)
class _Pending:
    """Row k − 1 of the Gram–Schmidt, one pass done: remainder ``q`` (S, n), its σ-coordinate
    ``q0`` (S,), and |a_{k−1}| (S,) for its pivot test."""

    q: object
    q0: object
    anorm: object


def _init_paths(inp: _SweepInputs) -> _Paths:
    """The paths at k = 0 (DLN: ``net.init`` at α; linear: β = 0), tangents zero."""
    xp, shape, dtype = inp.xp, (inp.S, inp.n), inp.dtype
    tshape = (len(inp.blocks), *shape)
    if inp.model == "dln":
        pa, pb = inp.net.init(xp, inp.par["alpha"][:, None], shape, dtype)
        return _Paths(pa, pb, xp.zeros(tshape, dtype=dtype), xp.zeros(tshape, dtype=dtype))
    return _Paths(xp.zeros(shape, dtype=dtype), None, xp.zeros(tshape, dtype=dtype), None)


def _deviation(inp: _SweepInputs, p: _Paths):
    """Step 1: Δ_k = β_k − β* (S, n) and the tangents x_k = δβ_k (nb, S, n) (uv: v δu + u δv in (a, b))."""
    if inp.model == "dln":
        return inp.net.beta(p.a, p.b) - inp.beta_star, inp.net.tangent_beta(p.a, p.b, p.da, p.db)
    return p.a - inp.beta_star, p.da


def _advance(inp: _SweepInputs, p: _Paths, k: int, gk, dgk) -> _Paths:
    """Step 6: the GD update of the paths by the field g_k (S, n) and of their tangents by δg_k (nb, S, n)."""
    dt = inp.dt if inp.dt_steps is None else inp.dt_steps[:, k : k + 1]
    if inp.model == "dln":
        da, db = inp.net.tangent_step(p.a, p.b, p.da, p.db, gk, dgk, dt, dt * inp.lam)
        a, b = inp.net.step(p.a, p.b, gk, dt, dt * inp.lam)
        return _Paths(a, b, da, db)
    return _Paths(p.a + dt * (gk - inp.lam * p.a), None, p.da + dt * (dgk - inp.lam * p.da), None)


# ----------------------------------------------------------------------------------------------
# core sweep: the passes
# ----------------------------------------------------------------------------------------------
def _timed(f):
    """With the benchmark hook on (the sweep's ``clock``, from PASS_CLOCK), add f's wall time to
    clock["seconds"]."""
    @functools.wraps(f)
    def g(inp, *args):
        if inp.clock is None:
            return f(inp, *args)
        t = _time.perf_counter()
        out = f(inp, *args)
        inp.clock["seconds"] += _time.perf_counter() - t
        return out
    return g


def _bdot(xp, u, v):
    """Row-wise dot products of (S, n) arrays."""
    return xp.sum(u * v, axis=1)


def _shared(inp: _SweepInputs, x):
    """(B, n) per-replica row -> (S, n), the same for the P points of a replica."""
    xp = inp.xp
    return xp.reshape(xp.broadcast_to(x[:, None, :], (inp.B, inp.P, inp.n)), (inp.S, inp.n))


def _pad(inp: _SweepInputs, x):
    """(B, P, m): a lone point gets a zero partner, so the shared products are always
    matrix–matrix (BLAS routes one right-hand side to a matrix–vector kernel with another
    summation order): a point's result is then bitwise independent of its batch-mates."""
    if inp.P > 1:
        return x
    return inp.xp.concat([x, inp.xp.zeros_like(x)], axis=1)


def _system_blocks(inp: _SweepInputs, m: int) -> list:
    """[(s0, s1)]: one block on a GPU; on a CPU blocks of ≤ CACHE_BYTES of Q[:m]."""
    if not inp.cpu:
        return [(0, inp.S)]
    g = max(1, CACHE_BYTES // max(1, m * inp.n * inp.item))
    return [(s0, min(inp.S, s0 + g)) for s0 in range(0, inp.S, g)]


@_timed
def _dots(inp: _SweepInputs, H, m, v1, v2):
    """(H[:, :m] v1, H[:, :m] v2), H (s, T, n), v (s, n) -> 2 × (s, m)."""
    if inp.cpu:
        return cpu_products.dots2(H, m, v1, v2)
    xp = inp.xp
    out = xp.matmul(H[:, :m, :], xp.matrix_transpose(xp.stack([v1, v2], axis=1)))
    return out[:, :, 0], out[:, :, 1]


@_timed
def _combos(inp: _SweepInputs, H, m, cs):
    """[c H[:, :m] for c in cs], c (s, m) -> 3 × (s, n)."""
    if inp.cpu:
        return cpu_products.combos3(H, m, *cs)
    out = inp.xp.matmul(inp.xp.stack(cs, axis=1), H[:, :m, :])
    return [out[:, i, :] for i in range(len(cs))]


@_timed
def _memory_y(inp: _SweepInputs, st: _SweepArrays, grow, k, b: int):
    """Σ_{s0≤l<k} G[k, l] y^(b)_l: one pass over block b's tangent history (from its start s0), (S, n)."""
    s0 = inp.blocks[b][0]
    return inp.xp.matmul(grow[:, None, s0:], st.Yh[b][:, : k - s0, :])[:, 0, :]


def _g_row(inp: _SweepInputs, xk, s0: int, s1: int):
    """G[k, s0:s1] = ⟨x_k ε_l⟩ of the systems, one GEMM per replica ((s1 − s0)×n)@(n×P), (S, s1 − s0)."""
    xp, B, P, n = inp.xp, inp.B, inp.P, inp.n
    gr = xp.matmul(inp.E[:, s0:s1, :], xp.matrix_transpose(_pad(inp, xp.reshape(xk, (B, P, n)))))  # (B, s1 − s0, P)
    return xp.reshape(xp.matrix_transpose(gr[:, :, :P]), (inp.S, s1 - s0)) / n


def _response_row(inp: _SweepInputs, st: _SweepArrays, k: int, xk):
    """Steps 2–3: row k of G and y_k = (K x)_k by forward substitution of (I + G/δ) y = x (K is
    never formed), block by block of the probes (``inp.blocks``): G[k, l] = ⟨x^(b)_k ε_l⟩ for l
    in block b, from the tangent that block b's probes alone drive (within a block the probes are
    exactly orthonormal, so the linear part of the response is exact; the probes of other
    blocks, O(1/√n)-correlated with ε_l, do not enter), and y^(b)_k = x^(b)_k − (1/δ) Σ_l
    G[k, l] y^(b)_l. With one block this is ⟨x_k ε_l⟩ over all l < k. Returns (G row (S, k),
    y_k (nb, S, n)); (None, x_0) at k = 0."""
    if k == 0:
        return None, xk
    xp = inp.xp
    started = [b for b, (s0, _) in enumerate(inp.blocks) if s0 < k]  # a block's tangent is 0 up to its start
    pieces = [_g_row(inp, xk[b, ...], inp.blocks[b][0], min(inp.blocks[b][1], k)) for b in started]
    grow = pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=1)
    if st.G is not None:
        st.G[:, k, :k] = grow
    ys = [xk[b, ...] - _memory_y(inp, st, grow, k, b) / inp.delta if b in started else xk[b, ...]
          for b in range(len(inp.blocks))]
    return grow, xp.stack(ys, axis=0)


def _reorthogonalise(inp: _SweepInputs, st: _SweepArrays, sl: slice, m: int, pe, pe0, a_k, a_0, anorm):
    """Pass 1 over Q[:m] for systems ``sl``: the second (delayed) projection of the pending row m
    and the projections of a_k on the final rows; finishes rows m of LM and A (but the
    diagonal's next pass). Returns (c2, pk, 1/ρ (0 for a dependent row), q_m · a_k)."""
    xp = inp.xp
    if m > 0:  # pass 1: Q[:m]ᵀ [pending, a_k]
        pr0, pr1 = _dots(inp, st.Q[sl, :, :], m, pe, a_k)
        c2 = pr0 + st.Qs[sl, :m] * pe0[:, None]  # reorthogonalisation of row m
        pk = pr1 + st.Qs[sl, :m] * a_0[:, None]  # projections of a_k on final rows
    else:
        c2 = pk = xp.zeros((sl.stop - sl.start, 0), dtype=inp.dtype)
    rho2 = _bdot(xp, pe, pe) + pe0 * pe0 - xp.sum(c2 * c2, axis=1)  # Pythagoras
    rho = xp.sqrt(xp.maximum(rho2, 0.0))
    keep_m = rho > inp.pivot_tol * xp.maximum(anorm[sl], inp.tiny)
    inv_rho = xp.where(keep_m, 1.0 / xp.where(keep_m, rho, 1.0), 0.0)
    coef = (_bdot(xp, pe, a_k) + pe0 * a_0 - xp.sum(c2 * pk, axis=1)) * inv_rho  # q_m · a_k
    st.LM[sl, m, :m] = st.LM[sl, m, :m] + c2
    st.LM[sl, m, m] = xp.where(keep_m, rho, 0.0)
    st.A[sl, m, :m] = st.A[sl, m, :m] + c2  # A[m] = Σ_l K[m, l] L_M[l] and K[m, m] = 1
    st.A[sl, m, m] = st.LM[sl, m, m]
    return c2, pk, inv_rho, coef


def _finish_row(inp: _SweepInputs, st: _SweepArrays, sl: slice, m: int, pe, pe0, a_k, a_0, C, inv_rho, f, h):
    """Pass 2 over Q[:m] for systems ``sl`` (m > 0): three combinations ``C`` of Q[:m] (fix of
    row m, a_k's remainder, memory term; None for m = 0). Writes Q[m], Qs[m] and a1, a10, mem."""
    xp = inp.xp
    if m > 0:
        U = _combos(inp, st.Q[sl, :, :], m, C)
        u0 = [_bdot(xp, ci, st.Qs[sl, :m]) for ci in C]  # σ-coordinates
        st.Q[sl, m, :] = (pe - U[0]) * inv_rho[:, None]
        st.Qs[sl, m] = (pe0 - u0[0]) * inv_rho
        st.a1[sl, :] = a_k - U[1] - f[:, None] * pe
        st.a10[sl] = a_0 - u0[1] - f * pe0
        st.mem[sl, :] = (U[2] + h[:, None] * pe) * inp.sqrt_n
    else:
        st.Q[sl, m, :] = pe * inv_rho[:, None]
        st.Qs[sl, m] = pe0 * inv_rho
        st.a1[sl, :] = a_k - f[:, None] * pe
        st.a10[sl] = a_0 - f * pe0
        st.mem[sl, :] = h[:, None] * pe * inp.sqrt_n


def _gram_schmidt_rows(inp: _SweepInputs, st: _SweepArrays, sl: slice, k: int, ak, a0, pend: _Pending, grow):
    """Step 4: rows k − 1 (second pass) and k (first pass) of L_M, A and Q for systems ``sl`` (k ≥ 1).

    Gram–Schmidt of a_k = (σ, Δ_k/√n), whose Gram matrix is M, with the second
    (re)orthogonalisation of row m = k − 1 delayed to this step and fused with the projection
    of a_k (DCGS2): two passes over Q[:m] instead of four (see docs/dmft.md). Writes Q[m],
    Qs[m], rows m and k of LM and A (but their diagonal at k), and a1, a10 (a_k's remainder),
    mem (the memory term of step 5) for these systems.
    """
    xp = inp.xp
    pe, pe0, a_k, a_0 = pend.q[sl, :], pend.q0[sl], ak[sl, :], a0[sl]
    m = k - 1  # rows < m of Q are final; row m is pending (one pass done)
    c2, pk, inv_rho, coef = _reorthogonalise(inp, st, sl, m, pe, pe0, a_k, a_0, pend.anorm)
    # Σ_{l<k} K[k, l] Δ_l/√n = Σ_{j<k} A'_j q_j (path part), A' = K[k, :k] L_M[:k, :k]
    # = −(1/δ) G[k, :k] A[:k, :k] (row k of (I + G/δ) A = L_M without its L_M[k] term)
    Ap = -xp.matmul(grow[sl, None, :], st.A[sl, :k, :k])[:, 0, :] / inp.delta[sl, :]
    f = coef * inv_rho
    h = Ap[:, m] * inv_rho
    C = [c2, pk - f[:, None] * c2, Ap[:, :m] - h[:, None] * c2] if m > 0 else None
    _finish_row(inp, st, sl, m, pe, pe0, a_k, a_0, C, inv_rho, f, h)
    c = xp.concat([pk, coef[:, None]], axis=1)
    st.LM[sl, k, :k] = c
    st.A[sl, k, :k] = Ap + c


def _factor_row(inp: _SweepInputs, st: _SweepArrays, k: int, dk, grow, pend: _Pending | None):
    """Step 4 for all systems: row k of L_M (first pass; its diagonal, the pivot test of a_k's
    remainder) and row k − 1 (second pass), by blocks of systems. Returns the new pending row
    and the memory term of step 5 (None at k = 0)."""
    xp = inp.xp
    ak = dk * inp.inv_sqrt_n
    a0 = inp.par["sigma"]
    anorm = xp.sqrt(_bdot(xp, ak, ak) + a0 * a0)
    if k == 0:
        a1, a10, mem = ak, a0, None
    else:
        a1, a10, mem = st.a1, st.a10, st.mem
        for s0, s1 in _system_blocks(inp, k - 1):
            _gram_schmidt_rows(inp, st, slice(s0, s1), k, ak, a0, pend, grow)
    rn = xp.sqrt(_bdot(xp, a1, a1) + a10 * a10)
    keep = rn > inp.pivot_tol * xp.maximum(anorm, inp.tiny)
    new = _Pending(xp.where(keep[:, None], a1, 0.0), xp.where(keep, a10, 0.0), anorm)
    st.LM[:, k, k] = xp.where(keep, rn, 0.0)
    st.A[:, k, k] = st.LM[:, k, k]
    return new, mem


def _selection_row(inp: _SweepInputs, st: _SweepArrays, k: int, grow):
    """SGD (theory.md §5.2): row k of AD = K·diag(√D), AD[k, :k] = −(1/δ) G[k, :k] AD[:k, :k], and
    its diagonal √D_k, D_k = ((1 − b)/b)·C_r[k, k] from rows < k and row k of A (causal)."""
    xp, A, AD = inp.xp, st.A, st.AD
    if k > 0:
        AD[:, k, :k] = -xp.matmul(grow[:, None, :], AD[:, :k, :k])[:, 0, :] / inp.delta
    ck = xp.sum(A[:, k, : k + 1] * A[:, k, : k + 1], axis=1) + xp.sum(AD[:, k, :k] * AD[:, k, :k], axis=1)
    AD[:, k, k] = xp.sqrt(inp.d_coef * ck)


def _field(inp: _SweepInputs, st: _SweepArrays, k: int, dk, mem, yk):
    """Step 5: the driving field g_k = Σ_{l≤k} K[k, l] (w_l/√δ − Δ_l), w = L_M z (+ √D z' with
    SGD: Cov(η) = K (M + D) Kᵀ/δ), and the tangent fields δg^(b)_k = [k in block b] ε_k −
    Σ_{l≤k} K[k, l] x^(b)_l (nb, S, n): the probe ε_k drives the tangent of its own block only."""
    xp, B, P, n = inp.xp, inp.B, inp.P, inp.n
    eta = xp.reshape(xp.matmul(_pad(inp, xp.reshape(st.A[:, k, : k + 1], (B, P, k + 1))), inp.Z[:, : k + 1, :])[:, :P, :],
                     (inp.S, n))
    if inp.Zp is not None:
        eta = eta + xp.matmul(st.AD[:, k : k + 1, : k + 1], inp.Zp[:, : k + 1, :])[:, 0, :]
    gk = eta * inp.inv_sqrt_delta - dk
    if mem is not None:
        gk = gk - mem
    if len(inp.blocks) == 1:
        return gk, _shared(inp, inp.E[:, k, :]) - yk
    probe = _shared(inp, inp.E[:, k, :])
    return gk, xp.stack([(probe if s0 <= k < s1 else 0.0) - yk[b, ...] for b, (s0, s1) in enumerate(inp.blocks)], axis=0)


def _last_row(inp: _SweepInputs, st: _SweepArrays, pend: _Pending):
    """Second pass of the last row (the delayed reorthogonalisation has no next step to ride on)."""
    xp, m = inp.xp, inp.T - 1
    if m == 0:
        return
    c2 = xp.matmul(st.Q[:, :m, :], pend.q[:, :, None])[:, :, 0] + st.Qs[:, :m] * pend.q0[:, None]
    rho = xp.sqrt(xp.maximum(_bdot(xp, pend.q, pend.q) + pend.q0 * pend.q0 - xp.sum(c2 * c2, axis=1), 0.0))
    keep_m = rho > inp.pivot_tol * xp.maximum(pend.anorm, inp.tiny)
    st.LM[:, m, :m] = st.LM[:, m, :m] + c2
    st.LM[:, m, m] = xp.where(keep_m, rho, 0.0)
    st.A[:, m, :m] = st.A[:, m, :m] + c2
    st.A[:, m, m] = st.LM[:, m, m]


def _check_finite(inp: _SweepInputs, dk):
    """Never hand on silent NaNs: DivergenceError naming the points and both causes."""
    if bool(inp.xp.all(inp.xp.isfinite(dk))):
        return
    bad = ", ".join(f"{k}={sorted(set(to_numpy(inp.par[k]).tolist()))}" for k in ("alpha", "delta", "weight_decay", "dt"))
    raise DivergenceError(
        f"{inp.label}: DMFT paths diverged (non-finite) at {bad}, with {inp.n} paths per replica. Two "
        "causes: (1) dt above the stability bound of the paths' tail: the curvature of a deep "
        "network's coordinate grows like |beta|^((2L-2)/L), and the d -> infinity limit samples "
        "the tails of the prior (|beta*| up to ~4 for a Gaussian prior) and of the overshoot "
        "after a saddle escape (|beta| ~ 3 for teacher values +-1 at L = 4); reduce dt. (2) Too few paths per replica (n_paths/n_batches): when "
        "a deep network (L >= 3, small alpha) escapes its saddle, a replica's response estimate "
        "rests on the few paths that escaped first (measured at L = 4, alpha = 0.1, dt = 0.02: "
        "401 and 802 paths per replica diverged, 1604 did not); raise n_paths or lower n_batches"
    )


def _log_progress(inp: _SweepInputs, k: int, t0: float):
    """Every ``progress_every`` steps: steps done, time elapsed and (O(T²) work) time left."""
    if inp.progress_every and (k + 1) % inp.progress_every == 0:
        T, el = inp.T, _time.perf_counter() - t0
        logger.info("%s step %d/%d (%.0f%%), %.1f s elapsed, ~%.1f s left", inp.label, k + 1, T - 1,
                    100.0 * (k + 1) / (T - 1), el, el * ((T / (k + 1.0)) ** 2 - 1.0))


def _sweep_outputs(inp: _SweepInputs, st: _SweepArrays, p: _Paths) -> dict:
    """The sweep's result (see :func:`_sweep`); the final Gauss–Newton metric w of each path
    (uv: u² + v², pm: L²(u^{2L−2} + v^{2L−2})) samples the weight law for the spectral rate."""
    dln = inp.model == "dln"
    w = inp.net.metric(p.a, p.b) if dln else inp.xp.ones_like(p.a)
    if inp.root_s is not None:  # X diag(w) Xᵀ = X̃ diag(s w) X̃ᵀ: the isotropic edge at the metric s·w
        w = w * (inp.root_s * inp.root_s)
    out = {"A": st.A, "LM": st.LM, "cd_diag": st.cd_diag, "cd_phys": st.cd_phys, "G": st.G, "w": w}
    if dln and inp.net.network == "uv":  # final u² − v² = a·b of each path: the effective scale
        out["scale"] = p.a * p.b
    if inp.Zp is not None:
        out["AD"] = st.AD
    return out


def _sweep(inp: _SweepInputs) -> dict:
    """Run the forward sweep (module docstring, steps 1–6) for the S = B·P systems of ``inp``.

    Returns dict of (S, T, T) matrices A = K L_M and LM, the (S, T) diagonal ``cd_diag`` = ⟨Δ_k²⟩, the (S, n)
    final Gauss–Newton metric ``w`` of the paths (uv: u² + v²; pm: L²(u^{2L−2} + v^{2L−2});
    linear: 1), for the uv network the (S, n) final u² − v² of the paths (``scale``), ``G``
    (S, T, T) with ``keep_matrices`` (else None). Raises DivergenceError for non-finite paths.

    Mini-batch SGD (theory.md §5.2): with ``Zp`` (S, T, n), the per-point noise rows z' of the
    selection noise, a point of batch fraction b < 1 (``par["batch_fraction"]``) adds the diagonal
    D_k = ((1 − b)/b)·C_r[k, k] to the field's covariance, K(M + D)Kᵀ/δ: the field gains
    AD[k]·z'/√δ with AD = K·diag(√D), whose rows follow from G by the same forward substitution
    as A's, and C_r[k, k] = |A[k]|² + Σ_{l<k} AD[k, l]² (causal: D_k from rows < k of AD and
    the current row of A). Returns ``AD`` (S, T, T) as well. Points with b = 1 have D = 0.

    Passes over the N×k histories at step k (see docs/dmft.md, "Matrix–matrix across points"):
    the G row (shared ε, GEMM), the field LM-part A[k]·z (shared z, GEMM), two over the per-point
    Gram–Schmidt basis Q (delayed reorthogonalisation, 2 and 3 right-hand sides) and one over the
    per-point tangent history (δg); with SGD one more over the per-point z' (field).
    """
    st = _allocate(inp)
    paths = _init_paths(inp)
    pend = None
    t0 = _time.perf_counter()
    rs = inp.root_s
    for k in range(inp.T):
        dk, xk = _deviation(inp, paths)
        if rs is not None:  # diagonal design: the sample side sees Δ̃ = √s Δ and its tangent √s x
            st.cd_phys[:, k] = _bdot(inp.xp, dk, dk) / inp.n
            dk, xk = rs * dk, rs * xk
        st.cd_diag[:, k] = _bdot(inp.xp, dk, dk) / inp.n
        grow, yk = _response_row(inp, st, k, xk)
        for b, (s0, _) in enumerate(inp.blocks):
            if s0 <= k:
                st.Yh[b][:, k - s0, :] = yk[b, ...]
        pend, mem = _factor_row(inp, st, k, dk, grow, pend)
        if inp.Zp is not None:
            _selection_row(inp, st, k, grow)
        if k == inp.T - 1:
            break
        gk, dgk = _field(inp, st, k, dk, mem, yk)
        if rs is not None:  # g = √s g̃ = √s η − s Σ_l K[k, l] Δ_l; δg = √s (ε − (K x̃)_k)
            gk, dgk = rs * gk, rs * dgk
        paths = _advance(inp, paths, k, gk, dgk)
        _log_progress(inp, k, t0)
    _last_row(inp, st, pend)
    _check_finite(inp, dk)
    return _sweep_outputs(inp, st, paths)


# ----------------------------------------------------------------------------------------------
# a solve: resolved inputs, chunks of points, outputs
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """The resolved inputs of a :func:`solve_dmft` call (host). ``par``: the points
    (:func:`normalize_points`; with a schedule ``dt`` is its last step), ``sched`` (P, n_steps) or
    None, ``rec`` the record steps, ``n`` paths per replica, ``chunk`` points per sweep (memory
    budget), ``xp``/``dt_np`` the namespace and run dtype, ``opts`` the numerical options,
    ``scales`` (d,) float64 the diagonal design's coordinate scales s (None: isotropic)."""

    model: str
    prior: object
    net: object
    xp: object
    dt_np: type
    pivot_tol: float
    par: dict
    sched: np.ndarray | None
    rec: np.ndarray
    T: int
    n: int
    chunk: int
    progress_every: int
    opts: DMFTOptions
    scales: np.ndarray | None = None

    @property
    def P(self) -> int:
        return self.par["delta"].size

    @property
    def B(self) -> int:
        return self.opts.n_batches


def _points_and_steps(points, dt, dt_schedule, n_steps):
    """(par, sched): the points and the step schedule (P, n_steps) or None; with a schedule
    ``par["dt"]`` is its last step. ValueError for dt given with a schedule or a bad schedule."""
    sched = None
    if dt_schedule is not None:
        rows = [points] if isinstance(points, dict) else list(points)
        if dt is not None or any("dt" in r for r in rows):
            raise ValueError("dt_schedule: give either dt (keyword or point key) or dt_schedule, not both")
        sched = np.asarray(dt_schedule, dtype=float)
        dt = 1.0  # placeholder, replaced by the schedule below
    par = normalize_points(points, dt)
    if sched is not None:
        P0 = par["delta"].size
        if sched.ndim == 1:
            sched = np.broadcast_to(sched, (P0, sched.size))
        if sched.shape != (P0, int(n_steps)) or not np.all(np.isfinite(sched)) or np.any(sched <= 0):
            raise ValueError(f"dt_schedule: need positive finite step sizes of shape ({n_steps},) or "
                             f"({P0}, {n_steps}), got shape {np.shape(dt_schedule)}")
        sched = np.ascontiguousarray(sched)
        par["dt"] = sched[:, -1].copy()
    return par, sched


def _check_alpha(par, net, model, dt_np, dtype):
    """ValueError if a DLN point's α is below alpha_min(dtype) of its network (dln_state)."""
    a_min = net.alpha_min(dt_np)
    if model == "dln" and np.min(par["alpha"]) < a_min:
        where = "" if net.network == "uv" else f" for network {net.network!r} of depth {net.depth}"
        raise ValueError(
            f"points: alpha {np.min(par['alpha']):g} is below alpha_min({dtype}) = "
            f"{a_min:.2g}{where}, the smallest initialisation the DLN state keeps exact"
        )


def _record_steps(record_steps, n_steps) -> np.ndarray:
    """The record steps (default all), or ValueError unless sorted unique steps in [0, n_steps]."""
    rec = np.arange(int(n_steps) + 1) if record_steps is None else np.asarray(record_steps, dtype=np.int64)
    if rec.ndim != 1 or rec.size == 0 or rec.min() < 0 or rec.max() > n_steps or np.any(np.diff(rec) <= 0):
        raise ValueError(f"record_steps: need sorted unique steps in [0, {n_steps}]")
    return rec


def _chunk_size(P: int, n_steps: int, any_sgd: bool, opts: DMFTOptions) -> int:
    """Points per sweep within ``memory_budget_bytes`` (all P without a budget); MemoryError naming
    the budget if one point does not fit."""
    B, budget = opts.n_batches, opts.memory_budget_bytes
    N = opts.paths_per_replica * B
    per_point = memory_bytes(1, N, n_steps, B, opts.dtype, opts.return_matrices, sgd=any_sgd)
    shared_bytes = memory_bytes(0, N, n_steps, B, opts.dtype, opts.return_matrices, sgd=any_sgd)
    if budget is None:
        return P
    if per_point > budget:
        raise MemoryError(
            f"DMFT run needs {per_point / 1e9:.3g} GB per point (n_paths={N}, "
            f"T={n_steps + 1}, n_batches={B}, {opts.dtype}), above memory_budget_bytes="
            f"{budget / 1e9:.3g} GB; lower n_paths or n_steps, use float32, or "
            f"raise the budget"
        )
    return max(1, min(int((budget - shared_bytes) // (per_point - shared_bytes)), P))


def design_scales(design) -> np.ndarray | None:
    """The coordinate scales s (d,) float64 of the ``design`` argument of :func:`solve_dmft`, or
    None for the isotropic design (None, or kind ``gaussian``: s ≡ 1, solved by the isotropic code).

    ``design``: a design specification (``model.designs``; resolved or not, but its ``d`` given:
    the finite-d spectrum is the quadrature of the paths) with a diagonal covariance
    (``gaussian_powerlaw`` with ``rotation: none``, ``two_level``), or a 1-D array of positive
    finite scales with mean 1 (e.g. the eigenvalues of any design, ``designs.design_spectrum``:
    the coordinate-wise theory of that spectrum). Raises ValueError (``designs.DesignError``)
    naming ``design.<key>`` for a design without a diagonal covariance, a missing ``d`` or a bad
    key, and ``design`` for scales that are not positive, finite, 1-D or of mean 1 (rel. 1e-6).
    """
    if design is None:
        return None
    if isinstance(design, dict):
        if design.get("kind") == "gaussian":
            return None
        des = _designs.resolve_design(design, design.get("d"), "design")
        if not _designs.is_diagonal(des):
            key = "rotation" if des["kind"] == "gaussian_powerlaw" else "kind"
            raise _designs.DesignError(
                f"design.{key}: the DMFT closes coordinate-wise only for a diagonal covariance (a DLN is not "
                f"rotation invariant); {des['name']!r} ({des['kind']}) is not diagonal. Use kind two_level, "
                f"gaussian_powerlaw with rotation: none, or pass its spectrum (designs.design_spectrum) as an array")
        return np.array(_designs.diagonal_scales(des), dtype=np.float64)
    s = np.asarray(design, dtype=np.float64)
    if s.ndim != 1 or s.size < 1 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"design: scales must be a non-empty 1-D array of positive finite numbers, got shape {s.shape}")
    if abs(float(s.mean()) - 1.0) > 1e-6:
        raise ValueError(f"design: scales must have mean 1 (the variance convention, theory.md §1), got {s.mean():.8g}")
    return s.copy()


def _path_scales(scales: np.ndarray, n: int, rng: np.random.Generator, stratified: bool) -> np.ndarray:
    """The scales s (n,) of one replica's n paths drawn from the design's d scales (the finite-d
    spectrum as a quadrature). ``stratified`` (variance reduction): path j of the sorted list
    takes the scale at position ⌊(j + ½) d/n⌋ of the sorted spectrum (each scale ≈ n/d times:
    an exact quadrature when d divides n), then a random permutation (``rng``) pairs scales with
    paths, so s is independent of the stratified teacher; else n i.i.d. draws from the spectrum."""
    d = scales.size
    if not stratified:
        return scales[rng.integers(0, d, size=n)]
    srt = np.sort(scales)
    return srt[((np.arange(n) + 0.5) * d / n).astype(np.int64)][rng.permutation(n)]


def _resolve(points, n_steps, dt, dt_schedule, record_steps, prior, model, network, depth, opts,
             design=None) -> _Run:
    """The :class:`_Run` of a call, with every input checked (the errors of :func:`solve_dmft`)."""
    if model not in MODELS:
        raise ValueError(f"model: unknown value {model!r}; expected one of {MODELS}")
    scales = design_scales(design)
    prior = prior_of(prior or DEFAULT_PRIOR)
    xp = get_namespace(opts.backend)
    dt_np = resolve_dtype(opts.dtype)
    pivot_tol = opts.pivot_tol if opts.pivot_tol is not None else (1e-12 if dt_np == np.float64 else 1e-5)
    net = dln_state.network_state(network, depth)
    par, sched = _points_and_steps(points, dt, dt_schedule, n_steps)
    _check_alpha(par, net, model, dt_np, opts.dtype)
    T = int(n_steps) + 1
    if n_steps < 1:
        raise ValueError(f"n_steps: need at least 1, got {n_steps}")
    rec = _record_steps(record_steps, n_steps)
    chunk = _chunk_size(par["delta"].size, n_steps, bool(np.any(par["batch_fraction"] < 1)), opts)
    return _Run(model=model, prior=prior, net=net, xp=xp, dt_np=dt_np, pivot_tol=pivot_tol, par=par, sched=sched,
                rec=rec, T=T, n=opts.paths_per_replica, chunk=chunk,
                progress_every=max(1, (T - 1) // 10) if opts.progress else 0, opts=opts, scales=scales)


@dataclass(frozen=True)
class _Noise:
    """The noise z and probes ε of each replica on the backend (B, T, n), z on the host where
    a point has b < 1 (its z' is made orthogonal to z), else None, and √s (B, n) of the paths'
    coordinate scales for a diagonal design, else None."""

    Z: object
    E: object
    Z_host: np.ndarray | None
    root_s: object = None


def _shared_noise(run: _Run) -> _Noise:
    """Random inputs of replica b (host, documented streams): noise z and probes ε from the stream
    (seed, b, 1), shared by every point (common random numbers, so the passes that read them are
    matrix–matrix products across points); for a diagonal design the paths' scales s from the
    stream (seed, b, 3) (:func:`_path_scales`), shared by the points too."""
    B, T, n, vr = run.B, run.T, run.n, run.opts.variance_reduction
    Zs = np.empty((B, T, n))
    Es = np.empty((B, T, n))
    for bidx in range(B):
        rng = np.random.default_rng([run.opts.seed, bidx, 1])
        Zs[bidx] = _noise_matrix(n, T, rng, vr, rademacher=False)
        Es[bidx] = _noise_matrix(n, T, rng, vr, rademacher=True)
    Zd, Ed = to_device(run.xp, Zs, run.dt_np), to_device(run.xp, Es, run.dt_np)
    root_s = None
    if run.scales is not None:
        ps = np.stack([_path_scales(run.scales, n, np.random.default_rng([run.opts.seed, bidx, 3]), vr)
                       for bidx in range(B)])
        root_s = to_device(run.xp, np.sqrt(ps), run.dt_np)
    return _Noise(Zd, Ed, Zs if np.any(run.par["batch_fraction"] < 1) else None, root_s)


def _chunk_teachers(run: _Run, noise: _Noise, idx: np.ndarray, sgd: bool):
    """(β* (S, n), z' (S, T, n) or None) of the chunk's systems (replica-major). The teacher of a
    point from the stream (seed, b) (common random numbers across points); z' of a point with
    b < 1 from its own stream (seed, b, 2), orthogonal to the replica's shared z and to the
    point's β* where it can be (theory.md §5 Checks 8), so it does not depend on its batch-mates."""
    Pc, n, par, seed, vr = idx.size, run.n, run.par, run.opts.seed, run.opts.variance_reduction
    bs = np.empty((Pc * run.B, n))
    Zps = np.zeros((Pc * run.B, run.T, n)) if sgd else None
    for bidx in range(run.B):
        for j, i in enumerate(idx):
            rng = np.random.default_rng([seed, bidx])  # common random numbers across points
            s = bidx * Pc + j
            bs[s] = run.prior.stratified(par["rho"][i], n, rng) if vr else run.prior.iid(par["rho"][i], n, rng)
            if sgd and par["batch_fraction"][i] < 1:
                Zps[s] = _selection_noise(noise.Z_host[bidx], bs[s], np.random.default_rng([seed, bidx, 2]), vr)
    return bs, Zps


@dataclass(frozen=True)
class _HostResults:
    """What a solve keeps of each chunk, filled in place (host, run dtype): per-replica
    ``e_train``, ``e_test``, ``e_pred`` (P, B, R; ``e_pred`` the same array as ``e_test`` for the
    isotropic design), the paths' final metric ``w_final`` (times s for a diagonal design) and u² − v²
    ``scale_final`` (P, B·n; NaN but for network uv), the replica-averaged matrices ``mats``
    {C_delta, C_r, G, K} (P, T, T) with return_matrices, else None."""

    e_train: np.ndarray
    e_test: np.ndarray
    e_pred: np.ndarray
    w_final: np.ndarray
    scale_final: np.ndarray
    mats: dict | None


def _allocate_host(run: _Run) -> _HostResults:
    P, B, n, T, dt_np = run.P, run.B, run.n, run.T, run.dt_np
    e_test = np.zeros((P, B, run.rec.size), dtype=dt_np)
    return _HostResults(
        e_train=np.zeros((P, B, run.rec.size), dtype=dt_np), e_test=e_test,
        e_pred=e_test if run.scales is None else np.zeros((P, B, run.rec.size), dtype=dt_np),
        w_final=np.zeros((P, B * n), dtype=dt_np), scale_final=np.full((P, B * n), np.nan, dtype=dt_np),
        mats={k: np.zeros((P, T, T), dtype=dt_np) for k in ("C_delta", "C_r", "G", "K")}
        if run.opts.return_matrices else None,
    )


def _to_points(arr, B: int, Pc: int) -> np.ndarray:
    """(S, ...) replica-major backend array -> (Pc, B, ...) host array."""
    a = to_numpy(arr)
    return np.swapaxes(a.reshape(B, Pc, *a.shape[1:]), 0, 1)


def _solve_chunk(run: _Run, noise: _Noise, idx: np.ndarray, host: _HostResults):
    """Sweep the points ``idx`` (all replicas side by side) and keep their results in ``host``."""
    xp, dt_np, B = run.xp, run.dt_np, run.B
    sgd = bool(np.any(run.par["batch_fraction"][idx] < 1))  # else exactly the full-batch solve
    bs, Zps = _chunk_teachers(run, noise, idx, sgd)
    sys_par = {k: to_device(xp, np.tile(run.par[k][idx], B), dt_np) for k in POINT_KEYS}
    if run.sched is not None:
        sys_par["dt_steps"] = to_device(xp, np.tile(run.sched[idx], (B, 1)), dt_np)
    net = run.net
    kind = run.model if run.model != "dln" or net.network == "uv" else f"dln/{net.network}{net.depth}"
    label = f"dmft[{kind}] points {idx[0]}..{idx[-1]} of {run.P}"
    logger.info("%s: %d systems x %d paths, T=%d", label, idx.size * B, run.n, run.T)
    res = _sweep(_sweep_inputs(
        xp, xp_dtype(xp, dt_np), run.model, sys_par, to_device(xp, bs, dt_np), noise.Z, noise.E, run.T,
        run.pivot_tol, run.progress_every, label, net, keep_matrices=run.opts.return_matrices,
        Zp=None if Zps is None else to_device(xp, Zps, dt_np), root_s=noise.root_s,
        blocks=frame_blocks(run.n, run.T, run.opts.variance_reduction),
    ))
    del Zps
    _keep_chunk(run, idx, res, sys_par, host)


def _keep_chunk(run: _Run, idx: np.ndarray, res: dict, sys_par: dict, host: _HostResults):
    """E_train(k) = C_r[k, k]/2 = |A[k]|²/2 (+ Σ_{l<k} AD[k, l]²/2 with SGD), E_test(k) =
    ⟨Δ_k²⟩/2, E_pred(k) = ⟨s Δ_k²⟩/2 (a diagonal design; else E_test), the paths' final state and
    (return_matrices) the matrices, into ``host``."""
    xp, B, Pc = run.xp, run.B, idx.size
    A = res["A"]  # K L_M = √δ L
    e_tr = 0.5 * xp.sum(A * A, axis=2)  # C_r[k, k] / 2
    ADs = None
    if "AD" in res:  # + diag((I − K) D (I − K)ᵀ)/2 = Σ_{l<k} K[k, l]² D_l / 2
        ADs = xp.tril(res["AD"], k=-1)
        e_tr = e_tr + 0.5 * xp.sum(ADs * ADs, axis=2)
    e_te = 0.5 * res["cd_phys"]
    host.e_train[idx] = _to_points(e_tr, B, Pc)[:, :, run.rec]
    host.e_test[idx] = _to_points(e_te, B, Pc)[:, :, run.rec]
    if host.e_pred is not host.e_test:  # diagonal design: E_pred = ⟨s Δ²⟩/2 = C[k, k]/2 of the sample side
        host.e_pred[idx] = _to_points(0.5 * res["cd_diag"], B, Pc)[:, :, run.rec]
    host.w_final[idx] = _to_points(res["w"], B, Pc).reshape(Pc, B * run.n)
    if "scale" in res:
        host.scale_final[idx] = _to_points(res["scale"], B, Pc).reshape(Pc, B * run.n)
    if host.mats is not None:
        _keep_matrices(run, idx, res, ADs, sys_par, host)


def _keep_matrices(run: _Run, idx: np.ndarray, res: dict, ADs, sys_par: dict, host: _HostResults):
    """Replica means of C_r = A Aᵀ (+ (I − K) D (I − K)ᵀ), C_Δ = L_M L_Mᵀ − σ² (diagonal ⟨Δ_k²⟩
    directly), G and K = (I + G/δ)⁻¹ (formed once, here)."""
    xp, A, T = run.xp, res["A"], run.T
    Cr = xp.matmul(A, xp.matrix_transpose(A))
    if ADs is not None:
        Cr = Cr + xp.matmul(ADs, xp.matrix_transpose(ADs))
    sig2 = (sys_par["sigma"] * sys_par["sigma"])[:, None, None]
    CD = xp.matmul(res["LM"], xp.matrix_transpose(res["LM"])) - sig2
    eye = xp.eye(T, dtype=CD.dtype)
    CD = CD * (1.0 - eye) + res["cd_diag"][:, :, None] * eye  # diagonal ⟨Δ_k²⟩ directly
    K = xp.linalg.inv(eye + res["G"] / sys_par["delta"][:, None, None])  # K = (I + G/δ)⁻¹
    for name, arr in (("C_delta", CD), ("C_r", Cr), ("G", res["G"]), ("K", K)):
        host.mats[name][idx] = _to_points(arr, run.B, idx.size).mean(axis=1)


def _outputs(run: _Run, host: _HostResults) -> dict:
    """The returned dict (see :func:`solve_dmft`): coordinates and point parameters, the replica
    values, every observable of :func:`recorders.recorders_for` (the registry's DMFT observables),
    the decay window, the path counts and (return_matrices) the matrices."""
    par, rec, sched = run.par, run.rec, run.sched
    out = {k: par[k].copy() for k in POINT_KEYS}
    out["step"] = rec.copy()
    if sched is None:
        out["time"] = par["dt"][:, None] * rec[None, :]
    else:
        out["time"] = np.concatenate([np.zeros((run.P, 1)), np.cumsum(sched, axis=1)], axis=1)[:, rec]
        out["dt_schedule"] = sched.copy()
    out["e_train_batches"] = host.e_train
    out["e_test_batches"] = host.e_test
    e_pred = host.e_pred if host.e_pred is not host.e_test else host.e_test.copy()
    solve = Solve(e_batches={"e_train": host.e_train, "e_test": host.e_test, "e_pred": e_pred}, time=out["time"], par=par,
                  w_final=host.w_final, scale_final=host.scale_final, floor_factor=run.opts.floor_factor,
                  dtype=run.dt_np, late=rec >= run.n if run.opts.variance_reduction and run.T > run.n else None)
    for name, recorder in recorders_for().items():
        out[name] = recorder(solve)
    out["e_pred_batches"] = e_pred
    out["decay_window"] = solve.decay_fit[2]
    out["n_paths"] = np.asarray(run.n * run.B)
    out["n_batches"] = np.asarray(run.B)
    if host.mats is not None:
        out.update(host.mats)
    return out


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def solve_dmft(points, *, n_steps: int, dt: float | None = None, dt_schedule=None, record_steps=None,
               prior: dict | None = None, model: str = "dln", network: str = "uv", depth: int = 2,
               options: DMFTOptions | None = None, design=None, **option_keywords) -> dict:
    """Solve the DMFT of constant-step GD (or a step schedule; mini-batch SGD) for a batch of
    parameter points: the equations of theory.md §2 for the discrete algorithm, §5.2 for SGD,
    §6 for the depth-L ``pm`` network, as implemented in the module docstring (docs/dmft.md).

    Parameters
    ----------
    points : list of dicts or dict of lists with keys alpha, delta, rho, sigma, weight_decay
        (alias lam), dt and batch_fraction (b < 1: mini-batch SGD, theory.md §5.2); see
        :func:`normalize_points` (defaults: the registry's, α = 1). All points share ``n_steps``.
    n_steps : number of GD steps; the solve covers T = n_steps + 1 states k = 0 … n_steps.
    dt : default step size for points without a ``dt`` key.
    dt_schedule : optional step schedule dt_k, k = 0 … n_steps − 1, shape (n_steps,) (all points)
        or (P, n_steps) (one per point), positive and finite; then the points carry no ``dt``.
        The state after k steps is at time t_k = Σ_{j<k} dt_j (``schedule.step_times``), the
        same convention as the simulator's ``dt_schedule``. The returned ``dt`` is then the last
        step (the one the spectral decay rate refers to) and ``dt_schedule`` (P, n_steps) is
        returned too. ValueError for a bad shape or value, or for points with ``dt`` as well.
    record_steps : sorted step indices at which observables are returned (default: all).
    prior : teacher prior, a spec dict or object (``model.priors.prior_of``; default ``DEFAULT_PRIOR``);
        ``model``: "dln" or "linear".
    network, depth : the DLN family for model "dln" (one per call): ``"uv"`` (β = u v, depth 2)
        or ``"pm"`` (β = u^L − v^L, L = depth ≥ 2, theory.md §6). Ignored by the linear model
        (but still validated).
    design : None (the isotropic design of theory.md §2, s ≡ 1) or a design with a diagonal
        covariance, rows x ~ N(0, diag(s)/d) (docs/dmft.md "Diagonal designs"): a design
        specification of ``model.designs`` with its ``d`` (``two_level``, ``gaussian_powerlaw``
        with ``rotation: none``; ``gaussian``: the isotropic solve itself), or a 1-D array of
        positive scales with mean 1 (any spectrum, e.g. ``designs.design_spectrum`` of a rotated
        or data design: the coordinate-wise theory of that spectrum). One per call; see
        :func:`design_scales`. The paths draw s from the d scales (stratified with variance
        reduction; works for any spectrum, exponents ≥ 1 included).
    options : the numerical options, a :class:`DMFTOptions` (n_paths, seed, backend, dtype,
        n_batches, variance_reduction, return_matrices, memory_budget_bytes, floor_factor,
        pivot_tol, progress; documented there). ``**option_keywords``: the same options one by
        one (``n_paths=8000``), as before options existed; the defaults are DMFTOptions'
        (n_paths 20000, seed 0, numpy, float64, 8 replicas, variance reduction, 4 GB budget,
        floor_factor 3). An option given both ways is a ValueError naming it.

    Returns
    -------
    dict of NumPy arrays (P points, R = len(record_steps)), of the run dtype but the coordinates
    and point parameters (float64):
        ``step`` (R,), ``time`` (P, R) (time units: t_k = Σ_{j<k} dt_j); point parameters
        ``alpha``, ``delta``, ``rho``, ``sigma``, ``weight_decay``, ``batch_fraction``, ``dt`` (P,);
        ``e_train``, ``e_test`` (P, R): replica means; ``e_train_se``, ``e_test_se`` (P, R):
        Monte-Carlo standard errors (replica std / √n_batches); ``e_pred`` (P, R): the
        prediction risk E[s Δ²]/2 of a diagonal design (E_test, the same values, for the
        isotropic design);
        ``e_train_batches``, ``e_test_batches``, ``e_pred_batches`` (P, n_batches, R);
        ``e_train_floor``, ``e_test_floor`` (P, R): estimated noise floors;
        ``e_train_below_floor``, ``e_test_below_floor`` (P, R) bool: values that are noise, not
        physics; ``decay_rate``, ``decay_rate_se`` (P,): late-time exponential rate of E_train
        in time units (E_train ∝ exp(−rate · t)), fitted on the reliable late part (NaN when
        there is none); ``decay_window`` (P, 2): the step window used;
        ``decay_rate_spectral`` (P,): the same rate from the spectral edge at the final state,
        free of the noise floor (λ = 0 and batch_fraction = 1 only, else NaN; see
        :func:`spectral_decay_rate`);
        ``alpha_eff`` (P,, float64): √(geometric mean over the paths of the final u² − v²), the
        effective initialisation scale α·Π_k(1 − dt² g_k²)^{1/2} of discrete GD/SGD (λ = 0;
        network uv only, NaN otherwise; see ``phenomena_measure.effective_scale_summary``);
        ``n_paths``, ``n_batches`` (scalars): the paths used (n_batches · ⌊n_paths/n_batches⌋);
        with return_matrices: ``C_delta``, ``C_r``, ``G``, ``K`` (P, T, T) (a diagonal design:
        the sample side's C_delta = ⟨s Δ Δ⟩ and G = ⟨s ∂Δ/∂h⟩).
    The observables are those the registry lists for the DMFT, computed by
    ``dmft.recorders.DMFT_RECORDERS``.

    Raises
    ------
    MissingRecorderError (a LookupError) before any compute if the registry lists a DMFT
    observable without a recorder; TypeError for an unknown keyword; ValueError for an option
    given twice, an unknown model, network or depth, a design that is not diagonal or bad scales
    (:func:`design_scales`, naming ``design.<key>``), bad points (:func:`normalize_points`), a bad
    dt_schedule or record_steps, n_steps < 1, α below alpha_min(dtype) of the network,
    n_batches < 2 or fewer than 2 paths per replica; MemoryError if one point exceeds
    ``memory_budget_bytes``; ``dln_state.DivergenceError`` if the paths become non-finite.
    """
    recorders_for()  # a registered observable without a recorder: refused before any compute
    opts = merge_options(options, option_keywords)
    run = _resolve(points, n_steps, dt, dt_schedule, record_steps, prior, model, network, depth, opts, design)
    host = _allocate_host(run)
    noise = _shared_noise(run)
    for c0 in range(0, run.P, run.chunk):
        _solve_chunk(run, noise, np.arange(c0, min(run.P, c0 + run.chunk)), host)
    return _outputs(run, host)


# ----------------------------------------------------------------------------------------------
# convergence in N
# ----------------------------------------------------------------------------------------------
N_BIAS_TOL = 0.1  # default of ``dmft.n_bias_tol``: mask where the N-path bias estimate exceeds 10 % of the value


def half_paths(n_paths: int, n_batches: int) -> int:
    """Paths of the convergence-in-N solve: n_batches replicas of ⌊n/2⌋ paths each, n = the full
    solve's paths per replica (n_paths // n_batches). ValueError if that leaves < 2 paths a replica."""
    n_half = (int(n_paths) // int(n_batches)) // 2
    if n_half < 2:
        raise ValueError(f"n_paths: {n_paths} paths in {n_batches} replicas leave {n_half} per replica for the "
                         f"half-N solve of the convergence check; need at least 2 (n_paths >= {4 * int(n_batches)})")
    return n_half * int(n_batches)


def mask_n_bias(full: dict, half: dict, tol: float = N_BIAS_TOL) -> dict:
    """Fold the N-path solver's Monte-Carlo *bias* into the masks: convergence in N.

    The replica spread (:func:`noise_floor`) sees the fluctuation of a replica's estimate, not its
    bias. At δ < 1 and late times E_train of the N-path solver carries a positive bias ≈ c/n
    (n paths per replica) that the spread misses and that grows as b shrinks (theory.md §5
    Checks 6; a second one, also at b = 1, Checks 7). Two solves of the same points with n and
    n' < n paths per replica give E(n') − E(n) ≈ c (1/n' − 1/n), so

        bias(n) ≈ (E(n') − E(n)) · n' / (n − n')      (= E(n/2) − E(n) for n' = n/2).

    ``full``, ``half``: results of :func:`solve_dmft` for the same points, steps and model, with
    n and n' paths per replica (``n_paths``/``n_batches`` of each). Returns a new dict: ``full``
    plus ``e_train_n_bias``, ``e_test_n_bias`` (P, R) (the estimate above, in the run dtype;
    statistical error ≈ the two solves' standard errors combined; the recorders of
    ``dmft.recorders.STEP_RECORDERS["n_convergence"]``), with ``*_below_floor`` also
    true where the estimate exceeds ``tol`` × the value (E_test: one-sided; E_train: in
    magnitude), and the decay rate refitted on the new E_train mask. The bias of E_train is
    positive (a cancellation in diag(K M Kᵀ)), but where T > n' the half solve has more probe
    blocks, whose per-block tangents restart the accumulated bias (docs/dmft.md "Long sweeps"):
    past its first block it can lie far *below* a stalled full solve (the ``sgd`` sweep, b = 0.05:
    within 10 % of the simulations where the full solve is 1.5–2.1× above them), so an E_train
    that moves by more than ``tol`` when N halves is not converged in N either way.
    Raises ValueError if the two results are not of the same points and steps or n' ≥ n, or for
    tol ≤ 0.
    """
    n = int(full["n_paths"]) // int(full["n_batches"])
    n2 = int(half["n_paths"]) // int(half["n_batches"])
    if not n2 < n:
        raise ValueError(f"mask_n_bias: the half solve has {n2} paths per replica, not fewer than the full solve's {n}")
    if full["e_train"].shape != half["e_train"].shape or not np.array_equal(full["step"], half["step"]):
        raise ValueError("mask_n_bias: the two solves are not of the same points and record steps")
    for k in POINT_KEYS:
        if not np.array_equal(full[k], half[k]):
            raise ValueError(f"mask_n_bias: the two solves differ in {k}")
    if not tol > 0:
        raise ValueError(f"n_bias_tol: need a positive tolerance, got {tol}")
    out = dict(full)
    scale = n2 / (n - n2)  # 1 for n' = n/2
    for name, recorder in recorders_for("n_convergence").items():
        out[name] = recorder(full, half, scale)
    for name in ("e_train", "e_test"):
        bias = np.abs(out[name + "_n_bias"]) if name == "e_train" else out[name + "_n_bias"]
        out[name + "_below_floor"] = full[name + "_below_floor"] | (bias > tol * full[name])
    rate, rate_se, window = decay_rate(full["time"], full["e_train_batches"], out["e_train_below_floor"])
    dtype = full["decay_rate"].dtype
    out["decay_rate"], out["decay_rate_se"], out["decay_window"] = rate.astype(dtype), rate_se.astype(dtype), window
    return out
