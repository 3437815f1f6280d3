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
2. G[k, l] = ⟨x_k ε_l⟩ (l < k), a path average;
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
6. δg_k = ε_k − Σ_{l≤k} K[k, l] x_l = ε_k − y_k, then the GD update of (u, v) and of its tangent.

Points of one call share the noise z and the probes ε of each replica (common random numbers),
so the two passes that read them (G row, A[k]·z) are matrix–matrix products with one right-hand
side per point; the other passes read per-point histories and stay matrix–vector (see
docs/dmft.md, "Matrix–matrix across points").

Afterwards C_r = A Aᵀ; E_train(k) = C_r[k, k]/2 = |A[k]|²/2, E_test(k) = C_Δ[k, k]/2.

Mini-batch SGD (theory.md §5.2, per-point ``batch_fraction`` b < 1): the selection noise adds the
diagonal D_k = ((1 − b)/b)·C_r[k, k] with C_r[k, k] = |A[k]|² + Σ_{l<k} AD[k, l]² (causal),
AD = K·diag(√D) built by rows from G like A; the field becomes (A[k]·z + AD[k]·z')/√δ with one
more noise history z' per point (orthonormal, orthogonal to z and to β* where the replica has
≥ 2T + 1 paths), so Cov(η) = K(M + D)Kᵀ/δ; afterwards C_r = A Aᵀ + (I − K) D (I − K)ᵀ. Points
with b = 1 have D = 0; a chunk of b = 1 points only is solved by exactly the full-batch code.

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

    itemsize · (P · (2 · N · T  +  2 · B · T²)  +  2 · N · T)

for P points, N paths per point, B batches and T = n_steps + 1: two N×T path histories per
point (Gram–Schmidt basis q, y = K x), the shared noise z and probes ε (N×T each, once per
call), and two T×T matrices per replica (L_M and A = K L_M; four more, G, K, C_Δ, C_r, with
``return_matrices``). T = 5000, N = 20000, B = 8, one point: 3.2 GB + 3.2 GB = 6.4 GB.
Mini-batch SGD (a point with b < 1 in the chunk) adds one N×T history per point (its noise
rows z') and one T×T matrix per replica (K·diag(√D)).
Time is O(N T²) per point (three per-point matrix–vector passes and two shared matrix–matrix
passes over an N×k history at step k) plus O(B T³) for the rows of A = K L_M. Points are
processed in chunks that fit ``memory_budget_bytes``; a single point that does not fit raises
``MemoryError`` naming the budget.
"""

from __future__ import annotations

import logging
import math
import time as _time

import numpy as np

from dln_kernels.dmft import cpu_products
from dln_kernels.model import dln_state
from dln_kernels.backend import backend_name, get_namespace, resolve_dtype, to_device, to_numpy, xp_dtype
from dln_kernels.model.priors import validate_prior
from dln_kernels.model.dln_state import effective_scale_runs
from dln_kernels.dmft.spectral_rate import edge_rate

logger = logging.getLogger("dln_kernels.dmft.solver")

MODELS = ("dln", "linear")
POINT_KEYS = ("alpha", "delta", "rho", "sigma", "weight_decay", "dt", "batch_fraction")
POINT_DEFAULTS = {"alpha": 1.0, "rho": 1.0, "sigma": 0.0, "weight_decay": 0.0, "batch_fraction": 1.0}
N_HISTORIES = 2  # per point: Gram–Schmidt basis Q, tangent history x
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
                 return_matrices: bool = False, sgd: bool = False) -> int:
    """Bytes the solver holds for ``n_points`` points solved together (see the module docstring):
    itemsize · (P · (h N T + m B T²) + 2 N T), h = 2 (3 with ``sgd``: the noise rows z' of
    batch fractions b < 1), m = 2 (+1 with ``sgd``: K·diag(√D); +4 with ``return_matrices``)."""
    T = n_steps + 1
    item = np.dtype(resolve_dtype(dtype)).itemsize
    m = N_MATRICES + int(sgd) + (N_MATRICES_RETURNED if return_matrices else 0)
    h = N_HISTORIES + int(sgd)
    return int(item * (n_points * (h * n_paths * T + m * n_batches * T * T) + N_SHARED * n_paths * T))


def sweep_work(n_points: int, n_paths: int, n_steps: int, n_batches: int = 8, dtype: str = "float64") -> dict:
    """Counted work of one sweep of ``n_points`` points solved together (the roofline model of
    ``benchmarks/bench_dmft.py``).

    At step k a pass reads an N×k path history once (N = n_paths per point) and does 2 flops per
    element and right-hand side; summed over k < T that is N·T²/2 elements per pass. Per point:
    three matrix–vector passes (Gram–Schmidt projection with 2 right-hand sides, update with 3,
    tangent memory δg with 1); per job: two matrix–matrix passes over the shared z and ε with P
    right-hand sides (G row, field). Per replica one T×T pass (row k of A = K L_M): B·T³/3
    elements per point. Returns a dict: ``passes_mv`` (per point), ``passes_mm`` (shared
    by the P points), ``flops``, ``bytes_mv`` (bytes of the per-point passes, the
    matrix–vector ones), ``bytes_histories`` (of these, the three passes over the N×k
    histories, what ``PASS_CLOCK`` times), ``bytes`` (all streamed bytes).
    """
    T = n_steps + 1
    item = np.dtype(resolve_dtype(dtype)).itemsize
    hist = n_paths * T * T / 2.0  # elements of one pass over a history, summed over the steps
    tri = n_batches * T**3 / 3.0  # elements of one pass over the T×T matrices of B replicas
    passes_mv, passes_mm, rhs_mv = 3, 2, 2 + 3 + 1
    flops = n_points * (2.0 * hist * (rhs_mv + passes_mm) + 2.0 * tri)
    bytes_mv = item * n_points * (passes_mv * hist + tri)
    return {"passes_mv": passes_mv, "passes_mm": passes_mm, "flops": flops, "bytes_mv": bytes_mv,
            "bytes_histories": item * n_points * passes_mv * hist, "bytes": bytes_mv + item * passes_mm * hist}


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
# core sweep for one chunk of systems (replicas × points)
# ----------------------------------------------------------------------------------------------
def _sweep(xp, dtype, model, par, beta_star, Z, E, T, pivot_tol, progress_every, label, net=None,
           keep_matrices=False, Zp=None):
    """Run the forward sweep for S = B·P systems (B replicas of P points). Arrays are on the backend.

    Systems are replica-major: system s = b·P + j is replica b of point j. par: dict of (S,)
    arrays alpha, delta, sigma, weight_decay, dt. beta_star (S, n). Z, E (B, T, n): the noise and
    the probes of replica b, shared by the P points of the chunk (common random numbers), so the
    two passes that read them are one matrix–matrix product per replica (P right-hand sides).
    ``net``: the DLN state kernels (``dln_state.network_state``; default uv).
    Returns dict of (S, T, T) matrices A = K L_M and LM, the (S, T) diagonal ``cd_diag`` = ⟨Δ_k²⟩, the (S, n)
    final Gauss–Newton metric ``w`` of the paths (uv: u² + v²; pm: L²(u^{2L−2} + v^{2L−2});
    linear: 1), for the uv network the (S, n) final u² − v² of the paths (``scale``), with
    ``keep_matrices`` also G (S, T, T).

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
    if net is None:
        net = dln_state.network_state("uv", 2)
    B = Z.shape[0]
    S, n = beta_star.shape
    P = S // B
    delta = par["delta"][:, None]
    lam = par["weight_decay"][:, None]
    dt_steps = par.get("dt_steps")  # (S, T − 1) step schedule, or None: constant dt per point
    dt = par["dt"][:, None]
    inv_sqrt_delta = 1.0 / xp.sqrt(delta)
    tiny = float(np.finfo(np.float32 if dtype == xp.float32 else np.float64).tiny)

    Q = xp.zeros((S, T, n), dtype=dtype)   # orthonormal path-space basis (Gram–Schmidt of a_k), row k final at step k + 1
    Qs = xp.zeros((S, T), dtype=dtype)     # its σ-coordinate
    Yh = xp.zeros((S, T, n), dtype=dtype)  # history of y = K x (K applied to the tangents δΔ)
    A = xp.zeros((S, T, T), dtype=dtype)   # A = K L_M = √δ L, by rows: (I + G/δ) A = L_M
    LM = xp.zeros((S, T, T), dtype=dtype)  # factor of M (a dropped, dependent direction is a zero column)
    G = xp.zeros((S, T, T), dtype=dtype) if keep_matrices else None
    cd_diag = xp.zeros((S, T), dtype=dtype)
    sig = par["sigma"]
    sqrt_n = math.sqrt(n)
    inv_sqrt_n = 1.0 / sqrt_n
    if Zp is not None:  # selection noise D_k = ((1 − b)/b) C_r[k, k] (theory.md §5.2)
        AD = xp.zeros((S, T, T), dtype=dtype)  # K·diag(√D), by rows like A
        d_coef = (1.0 - par["batch_fraction"]) / par["batch_fraction"]

    if model == "dln":  # uv: exact coordinates (a, b) = (u + v, u − v); pm: (u, v); see dln_state
        pa, pb = net.init(xp, par["alpha"][:, None], (S, n), dtype)
        da = xp.zeros((S, n), dtype=dtype)
        db = xp.zeros((S, n), dtype=dtype)
    else:
        bk = xp.zeros((S, n), dtype=dtype)
        dbk = xp.zeros((S, n), dtype=dtype)

    def shared(x):  # (B, n) per-replica row -> (S, n), the same for the P points of a replica
        return xp.reshape(xp.broadcast_to(x[:, None, :], (B, P, n)), (S, n))

    def pad(x):  # (B, P, m): a lone point gets a zero partner, so the shared products are always
        # matrix–matrix (BLAS routes one right-hand side to a matrix–vector kernel with another
        # summation order): a point's result is then bitwise independent of its batch-mates
        if P > 1:
            return x
        return xp.concat([x, xp.zeros_like(x)], axis=1)

    # The two passes over a point's Gram–Schmidt basis Q (2 and 3 right-hand sides): on a GPU (and
    # any non-NumPy namespace) one matmul each; on a CPU the fused loops of cpu_products (a BLAS
    # runs 2–3 right-hand sides at a third of its matrix–vector bandwidth), made per block of
    # systems whose Q fits CACHE_BYTES, so that the second pass reads the block from cache.
    cpu = (backend_name(xp) == "numpy" and cpu_products.AVAILABLE and not FUSE_PRODUCTS
           and dtype in (xp.float32, xp.float64))
    item = 4 if dtype == xp.float32 else 8

    def system_blocks(m):  # [(s0, s1)]: one block on a GPU; on a CPU blocks of ≤ CACHE_BYTES of Q[:m]
        if not cpu:
            return [(0, S)]
        g = max(1, CACHE_BYTES // max(1, m * n * item))
        return [(s0, min(S, s0 + g)) for s0 in range(0, S, g)]

    clock = PASS_CLOCK

    def timed(f):  # with the benchmark hook on, add f's wall time to clock["seconds"]
        if clock is None:
            return f

        def g(*args):
            t = _time.perf_counter()
            out = f(*args)
            clock["seconds"] += _time.perf_counter() - t
            return out
        return g

    @timed
    def dots(H, m, v1, v2):  # (H[:, :m] v1, H[:, :m] v2), H (s, T, n), v (s, n) -> 2 × (s, m)
        if cpu:
            return cpu_products.dots2(H, m, v1, v2)
        out = xp.matmul(H[:, :m, :], xp.matrix_transpose(xp.stack([v1, v2], axis=1)))
        return out[:, :, 0], out[:, :, 1]

    @timed
    def combos(H, m, cs):  # [c H[:, :m] for c in cs], c (s, m) -> 3 × (s, n)
        if cpu:
            return cpu_products.combos3(H, m, *cs)
        out = xp.matmul(xp.stack(cs, axis=1), H[:, :m, :])
        return [out[:, i, :] for i in range(len(cs))]

    @timed
    def memory_y(grow, k):  # Σ_{l<k} G[k, l] y_l: one pass over the tangent history, (S, n)
        return xp.matmul(grow[:, None, :], Yh[:, :k, :])[:, 0, :]

    def bdot(u, v):  # row-wise dot products of (S, n) arrays
        return xp.sum(u * v, axis=1)

    a1_buf = xp.zeros((S, n), dtype=dtype)  # a_k's remainder, next step's pending row
    a10_buf = xp.zeros((S,), dtype=dtype)   # its σ-coordinate
    mem_buf = xp.zeros((S, n), dtype=dtype)  # Σ_{l<k} K[k, l] Δ_l (memory term of the field)

    def gram_schmidt_rows(s0, s1, k, ak, a0, pend, pend0, anorm_prev, grow):
        """Rows k − 1 (second pass) and k (first pass) of L_M, A and Q for systems s0:s1 (k ≥ 1).

        Gram–Schmidt of a_k = (σ, Δ_k/√n), whose Gram matrix is M, with the second
        (re)orthogonalisation of row m = k − 1 delayed to this step and fused with the projection
        of a_k (DCGS2): two passes over Q[:m] instead of four (see docs/dmft.md). Writes Q[m],
        Qs[m], rows m and k of LM and A (but their diagonal at k), and a1_buf, a10_buf (a_k's
        remainder), mem_buf (the memory term) for these systems.
        """
        sl = slice(s0, s1)
        pe, pe0, a_k, a_0 = pend[sl, :], pend0[sl], ak[sl, :], a0[sl]
        m = k - 1  # rows < m of Q are final; row m is pending (one pass done)
        if m > 0:  # pass 1: Q[:m]ᵀ [pending, a_k]
            pr0, pr1 = dots(Q[sl, :, :], m, pe, a_k)
            c2 = pr0 + Qs[sl, :m] * pe0[:, None]  # reorthogonalisation of row m
            pk = pr1 + Qs[sl, :m] * a_0[:, None]  # projections of a_k on final rows
        else:
            c2 = pk = xp.zeros((s1 - s0, 0), dtype=dtype)
        rho2 = bdot(pe, pe) + pe0 * pe0 - xp.sum(c2 * c2, axis=1)  # Pythagoras
        rho = xp.sqrt(xp.maximum(rho2, 0.0))
        keep_m = rho > pivot_tol * xp.maximum(anorm_prev[sl], tiny)
        inv_rho = xp.where(keep_m, 1.0 / xp.where(keep_m, rho, 1.0), 0.0)
        coef = (bdot(pe, a_k) + pe0 * a_0 - xp.sum(c2 * pk, axis=1)) * inv_rho  # q_m · a_k
        LM[sl, m, :m] = LM[sl, m, :m] + c2
        LM[sl, m, m] = xp.where(keep_m, rho, 0.0)
        A[sl, m, :m] = A[sl, m, :m] + c2  # A[m] = Σ_l K[m, l] L_M[l] and K[m, m] = 1
        A[sl, m, m] = LM[sl, m, m]
        # Σ_{l<k} K[k, l] Δ_l/√n = Σ_{j<k} A'_j q_j (path part), A' = K[k, :k] L_M[:k, :k]
        # = −(1/δ) G[k, :k] A[:k, :k] (row k of (I + G/δ) A = L_M without its L_M[k] term)
        Ap = -xp.matmul(grow[sl, None, :], A[sl, :k, :k])[:, 0, :] / delta[sl, :]
        f = coef * inv_rho
        h = Ap[:, m] * inv_rho
        if m > 0:  # pass 2: three combinations of Q[:m] (fix of row m, a_k's remainder, memory term)
            C = [c2, pk - f[:, None] * c2, Ap[:, :m] - h[:, None] * c2]
            U = combos(Q[sl, :, :], m, C)
            u0 = [bdot(ci, Qs[sl, :m]) for ci in C]  # σ-coordinates
            Q[sl, m, :] = (pe - U[0]) * inv_rho[:, None]
            Qs[sl, m] = (pe0 - u0[0]) * inv_rho
            a1_buf[sl, :] = a_k - U[1] - f[:, None] * pe
            a10_buf[sl] = a_0 - u0[1] - f * pe0
            mem_buf[sl, :] = (U[2] + h[:, None] * pe) * sqrt_n
        else:
            Q[sl, m, :] = pe * inv_rho[:, None]
            Qs[sl, m] = pe0 * inv_rho
            a1_buf[sl, :] = a_k - f[:, None] * pe
            a10_buf[sl] = a_0 - f * pe0
            mem_buf[sl, :] = h[:, None] * pe * sqrt_n
        c = xp.concat([pk, coef[:, None]], axis=1)
        LM[sl, k, :k] = c
        A[sl, k, :k] = Ap + c

    pend = pend0 = anorm_prev = None
    t0 = _time.perf_counter()
    for k in range(T):
        if model == "dln":
            dk = net.beta(pa, pb) - beta_star
            xk = net.tangent_beta(pa, pb, da, db)  # uv: δβ = v δu + u δv in (a, b)
        else:
            dk = bk - beta_star
            xk = dbk
        cd_diag[:, k] = bdot(dk, dk) / n
        yk = xk
        if k > 0:  # row k of G = ⟨x_k ε_l⟩: one GEMM per replica, (k×n)@(n×P)
            gr = xp.matmul(E[:, :k, :], xp.matrix_transpose(pad(xp.reshape(xk, (B, P, n)))))  # (B, k, P)
            grow = xp.reshape(xp.matrix_transpose(gr[:, :, :P]), (S, k)) / n
            if G is not None:
                G[:, k, :k] = grow
            # y_k = (K x)_k by forward substitution of (I + G/δ) y = x: K is never formed
            yk = xk - memory_y(grow, k) / delta
        Yh[:, k, :] = yk
        # Row k of L_M (first pass) and row k − 1 (second pass): gram_schmidt_rows, by blocks
        ak = dk * inv_sqrt_n
        a0 = sig
        anorm = xp.sqrt(bdot(ak, ak) + a0 * a0)
        mem = None
        if k == 0:
            a1, a10 = ak, a0
        else:
            a1, a10, mem = a1_buf, a10_buf, mem_buf
            for s0, s1 in system_blocks(k - 1):
                gram_schmidt_rows(s0, s1, k, ak, a0, pend, pend0, anorm_prev, grow)
        rn = xp.sqrt(bdot(a1, a1) + a10 * a10)
        keep = rn > pivot_tol * xp.maximum(anorm, tiny)
        pend = xp.where(keep[:, None], a1, 0.0)
        pend0 = xp.where(keep, a10, 0.0)
        anorm_prev = anorm
        LM[:, k, k] = xp.where(keep, rn, 0.0)
        A[:, k, k] = LM[:, k, k]
        if Zp is not None:  # AD[k, :k] = −(1/δ) G[k, :k] AD[:k, :k]; D_k from C_r[k, k] (causal)
            if k > 0:
                AD[:, k, :k] = -xp.matmul(grow[:, None, :], AD[:, :k, :k])[:, 0, :] / delta
            ck = xp.sum(A[:, k, : k + 1] * A[:, k, : k + 1], axis=1) + xp.sum(AD[:, k, :k] * AD[:, k, :k], axis=1)
            AD[:, k, k] = xp.sqrt(d_coef * ck)
        if k == T - 1:
            break
        # driving field of step k: g_k = Σ_{l≤k} K[k, l] (w_l/√δ − Δ_l), w = L_M z
        eta = xp.reshape(xp.matmul(pad(xp.reshape(A[:, k, : k + 1], (B, P, k + 1))), Z[:, : k + 1, :])[:, :P, :], (S, n))
        if Zp is not None:  # w̃ = L_M z + √D z': Cov(η) = K (M + D) Kᵀ/δ
            eta = eta + xp.matmul(AD[:, k : k + 1, : k + 1], Zp[:, : k + 1, :])[:, 0, :]
        gk = eta * inv_sqrt_delta - dk
        if mem is not None:
            gk = gk - mem
        dgk = shared(E[:, k, :]) - yk  # ε_k − Σ_{l≤k} K[k, l] x_l
        # GD update of the path and of its tangent
        if dt_steps is not None:
            dt = dt_steps[:, k : k + 1]
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
    # second pass of the last row (the delayed reorthogonalisation has no next step to ride on)
    m = T - 1
    if m > 0:
        c2 = xp.matmul(Q[:, :m, :], pend[:, :, None])[:, :, 0] + Qs[:, :m] * pend0[:, None]
        rho = xp.sqrt(xp.maximum(bdot(pend, pend) + pend0 * pend0 - xp.sum(c2 * c2, axis=1), 0.0))
        keep_m = rho > pivot_tol * xp.maximum(anorm_prev, tiny)
        LM[:, m, :m] = LM[:, m, :m] + c2
        LM[:, m, m] = xp.where(keep_m, rho, 0.0)
        A[:, m, :m] = A[:, m, :m] + c2
        A[:, m, m] = LM[:, m, m]
    if not bool(xp.all(xp.isfinite(dk))):  # never hand on silent NaNs: name the points
        from dln_kernels.model.dln_state import DivergenceError

        bad = ", ".join(f"{k}={sorted(set(to_numpy(par[k]).tolist()))}" for k in ("alpha", "delta", "weight_decay", "dt"))
        raise DivergenceError(
            f"{label}: DMFT paths diverged (non-finite) at {bad}, with {n} paths per replica. Two "
            "causes: (1) dt above the stability bound of the paths' tail: the curvature of a deep "
            "network's coordinate grows like |beta|^((2L-2)/L), and the d -> infinity limit samples "
            "the tails of the prior (|beta*| up to ~4 for a Gaussian prior) and of the overshoot "
            "after a saddle escape (|beta| ~ 3 for teacher values +-1 at L = 4); reduce dt. (2) Too few paths per replica (n_paths/n_batches): when "
            "a deep network (L >= 3, small alpha) escapes its saddle, a replica's response estimate "
            "rests on the few paths that escaped first (measured at L = 4, alpha = 0.1, dt = 0.02: "
            "401 and 802 paths per replica diverged, 1604 did not); raise n_paths or lower n_batches"
        )
    # final Gauss–Newton metric w of each path (uv: u² + v², pm: L²(u^{2L−2} + v^{2L−2})):
    # samples of the weight law for the spectral rate
    w = net.metric(pa, pb) if model == "dln" else xp.ones_like(bk)
    out = {"A": A, "LM": LM, "cd_diag": cd_diag, "G": G, "w": w}
    if model == "dln" and net.network == "uv":  # final u² − v² = a·b of each path: the effective scale
        out["scale"] = pa * pb
    if Zp is not None:
        out["AD"] = AD
    return out


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def solve_dmft(
    points,
    *,
    n_steps: int,
    dt: float | None = None,
    dt_schedule=None,
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
    dt_schedule : optional step schedule dt_k, k = 0 … n_steps − 1, shape (n_steps,) (all points)
        or (P, n_steps) (one per point), positive and finite; then the points carry no ``dt``.
        The state after k steps is at time t_k = Σ_{j<k} dt_j (``schedule.step_times``), the
        same convention as the simulator's ``dt_schedule``. The returned ``dt`` is then the last
        step (the one the spectral decay rate refers to) and ``dt_schedule`` (P, n_steps) is
        returned too. ValueError for a bad shape or value, or for points with ``dt`` as well.
    record_steps : sorted step indices at which observables are returned (default: all).
    n_paths : Monte-Carlo paths per point, split into ``n_batches`` independent replicas.
    prior : teacher prior dict (default Gauss–Bernoulli); ``model``: "dln" or "linear".
    network, depth : the DLN family for model "dln" (one per call): ``"uv"`` (β = u v, depth 2)
        or ``"pm"`` (β = u^L − v^L, L = depth ≥ 2, theory.md §6). Ignored by the linear model
        (but still validated).
    seed : base seed; batch b draws from the stream (seed, b), the same for every point (common
        random numbers across points, so a point's result does not depend on its batch-mates);
        the SGD noise rows z' of a point with batch_fraction < 1 from the stream (seed, b, 2).
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

    any_sgd = bool(np.any(par["batch_fraction"] < 1))
    per_point = memory_bytes(1, n * n_batches, n_steps, n_batches, dtype, return_matrices, sgd=any_sgd)
    shared_bytes = memory_bytes(0, n * n_batches, n_steps, n_batches, dtype, return_matrices, sgd=any_sgd)
    if memory_budget_bytes is None:
        chunk = P
    else:
        chunk = int((memory_budget_bytes - shared_bytes) // (per_point - shared_bytes))
        if per_point > memory_budget_bytes:
            raise MemoryError(
                f"DMFT run needs {per_point / 1e9:.3g} GB per point (n_paths={n * n_batches}, "
                f"T={T}, n_batches={n_batches}, {dtype}), above memory_budget_bytes="
                f"{memory_budget_bytes / 1e9:.3g} GB; lower n_paths or n_steps, use float32, or "
                f"raise the budget"
            )
        chunk = max(1, min(chunk, P))

    # host results keep the run dtype (a float32 solve returns float32 observables)
    w_final = np.zeros((P, n_batches * n), dtype=dt_np)
    scale_final = np.full((P, n_batches * n), np.nan, dtype=dt_np)
    out_tr = np.zeros((P, n_batches, rec.size), dtype=dt_np)
    out_te = np.zeros((P, n_batches, rec.size), dtype=dt_np)
    mats = {k: np.zeros((P, T, T), dtype=dt_np) for k in ("C_delta", "C_r", "G", "K")} if return_matrices else None
    progress_every = max(1, (T - 1) // 10) if progress else 0

    # Random inputs of replica b (host, documented streams): noise z and probes ε from the stream
    # (seed, b, 1), shared by every point (common random numbers, so the passes that read them are
    # matrix–matrix products across points); the teacher β* of a point from (seed, b), as before.
    Zs = np.empty((n_batches, T, n))
    Es = np.empty((n_batches, T, n))
    for bidx in range(n_batches):
        rng = np.random.default_rng([seed, bidx, 1])
        Zs[bidx] = _noise_matrix(n, T, rng, variance_reduction, rademacher=False)
        Es[bidx] = _noise_matrix(n, T, rng, variance_reduction, rademacher=True)
    Zd, Ed = to_device(xp, Zs, dt_np), to_device(xp, Es, dt_np)
    Zs_host = Zs if np.any(par["batch_fraction"] < 1) else None  # z' is made orthogonal to z
    del Zs, Es
    for c0 in range(0, P, chunk):
        idx = np.arange(c0, min(P, c0 + chunk))
        Pc = idx.size
        S = Pc * n_batches
        sgd = bool(np.any(par["batch_fraction"][idx] < 1))  # else exactly the full-batch solve
        bs = np.empty((S, n))
        Zps = np.zeros((S, T, n)) if sgd else None
        for bidx in range(n_batches):
            for j, i in enumerate(idx):
                rng = np.random.default_rng([seed, bidx])  # common random numbers across points
                if variance_reduction:
                    bs[bidx * Pc + j] = _stratified_teacher(prior, par["rho"][i], n, rng)
                else:
                    bs[bidx * Pc + j] = _iid_teacher(prior, par["rho"][i], n, rng)
                if sgd and par["batch_fraction"][i] < 1:
                    # z' of the point: its own stream (seed, b, 2), orthogonal to the replica's
                    # shared z and to the point's β* where it can be (theory.md §5 Checks 8), so
                    # it does not depend on the point's batch-mates
                    Zps[bidx * Pc + j] = _selection_noise(Zs_host[bidx], bs[bidx * Pc + j],
                                                          np.random.default_rng([seed, bidx, 2]), variance_reduction)
        sys_par = {k: to_device(xp, np.tile(par[k][idx], n_batches), dt_np) for k in POINT_KEYS}
        if sched is not None:
            sys_par["dt_steps"] = to_device(xp, np.tile(sched[idx], (n_batches, 1)), dt_np)
        kind = model if model != "dln" or net.network == "uv" else f"dln/{net.network}{net.depth}"
        label = f"dmft[{kind}] points {idx[0]}..{idx[-1]} of {P}"
        logger.info("%s: %d systems x %d paths, T=%d", label, S, n, T)
        res = _sweep(
            xp, xp_dtype(xp, dt_np), model, sys_par, to_device(xp, bs, dt_np), Zd, Ed, T, pivot_tol,
            progress_every, label, net, keep_matrices=return_matrices,
            Zp=None if Zps is None else to_device(xp, Zps, dt_np),
        )
        del Zps

        def to_points(arr):  # (S, ...) replica-major -> (Pc, B, ...) host array
            a = to_numpy(arr)
            return np.swapaxes(a.reshape(n_batches, Pc, *a.shape[1:]), 0, 1)

        A = res["A"]  # K L_M = √δ L
        e_tr = 0.5 * xp.sum(A * A, axis=2)  # C_r[k, k] / 2
        if sgd:  # + diag((I − K) D (I − K)ᵀ)/2 = Σ_{l<k} K[k, l]² D_l / 2
            ADs = xp.tril(res["AD"], k=-1)
            e_tr = e_tr + 0.5 * xp.sum(ADs * ADs, axis=2)
        e_te = 0.5 * res["cd_diag"]
        out_tr[idx] = to_points(e_tr)[:, :, rec]
        out_te[idx] = to_points(e_te)[:, :, rec]
        w_final[idx] = to_points(res["w"]).reshape(Pc, n_batches * n)
        if "scale" in res:
            scale_final[idx] = to_points(res["scale"]).reshape(Pc, n_batches * n)
        if return_matrices:
            Cr = xp.matmul(A, xp.matrix_transpose(A))
            if sgd:
                Cr = Cr + xp.matmul(ADs, xp.matrix_transpose(ADs))
            sig2 = (sys_par["sigma"] * sys_par["sigma"])[:, None, None]
            CD = xp.matmul(res["LM"], xp.matrix_transpose(res["LM"])) - sig2
            eye = xp.eye(T, dtype=CD.dtype)
            CD = CD * (1.0 - eye) + res["cd_diag"][:, :, None] * eye  # diagonal ⟨Δ_k²⟩ directly
            K = xp.linalg.inv(eye + res["G"] / sys_par["delta"][:, None, None])  # K = (I + G/δ)⁻¹
            for name, arr in (("C_delta", CD), ("C_r", Cr), ("G", res["G"]), ("K", K)):
                mats[name][idx] = to_points(arr).mean(axis=1)
        del res, A

    out = {k: par[k].copy() for k in POINT_KEYS}
    out["step"] = rec.copy()
    if sched is None:
        out["time"] = par["dt"][:, None] * rec[None, :]
    else:
        out["time"] = np.concatenate([np.zeros((P, 1)), np.cumsum(sched, axis=1)], axis=1)[:, rec]
        out["dt_schedule"] = sched.copy()
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
    out["alpha_eff"] = effective_scale_runs(scale_final, par["alpha"])["alpha_eff"]
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
    statistical error ≈ the two solves' standard errors combined), with ``*_below_floor`` also
    true where the estimate exceeds ``tol`` × the value (one-sided: the bias of E_train is
    positive, a cancellation in diag(K M Kᵀ)), and the decay rate refitted on the new E_train mask.
    Raises ValueError if the two results are not of the same points and steps or n' ≥ n.
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
    for name in ("e_train", "e_test"):
        bias = ((half[name] - full[name]) * scale).astype(full[name].dtype)
        out[name + "_n_bias"] = bias
        out[name + "_below_floor"] = full[name + "_below_floor"] | (bias > tol * full[name])
    rate, rate_se, window = decay_rate(full["time"], full["e_train_batches"], out["e_train_below_floor"])
    dtype = full["decay_rate"].dtype
    out["decay_rate"], out["decay_rate_se"], out["decay_window"] = rate.astype(dtype), rate_se.astype(dtype), window
    return out


def spectral_decay_rate(w_final: np.ndarray, par: dict) -> np.ndarray:
    """Asymptotic decay rate of E_train from the spectral edge of X diag(w) Xᵀ/δ at the paths'
    final Gauss–Newton metric w, β_{k+1} − β_k = dt·w·g_k + O(dt²) (uv: w = u² + v²; pm:
    w = L²(u^{2L−2} + v^{2L−2}); see :mod:`dln_kernels.dmft.spectral_rate`): no cancellation, so no
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
