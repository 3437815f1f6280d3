"""CPU twin of the DMFT sweep's products with 2–3 right-hand sides over a per-point history.

At step k the DMFT sweep (``dmft._sweep``) reads each point's Gram–Schmidt basis Q (shape
(S, T, n): S systems, T time rows, n paths; only rows < m are used) twice: once for two dot
products per row (``dots2``: Q[:m] v₁, Q[:m] v₂) and once for three combinations of the rows
(``combos3``: c₁ Q[:m], c₂ Q[:m], c₃ Q[:m]). On a GPU each is one ``matmul`` with 2–3
right-hand sides. A CPU BLAS runs such products at a third of its matrix–vector bandwidth
(OpenBLAS packs the whole history for 2–3 columns), and the axpy form c Q, three times, is
bound by the kernel rather than by memory; these loops read each row once for all right-hand
sides, which is what the pass costs in memory traffic. Measured by
``benchmarks/bench_dmft.py --roofline-only`` (docs/dmft.md, "Performance").

Same values as the ``matmul`` twin up to summation order (tests/test_dmft.py
``test_cpu_products_equal_matmul`` and ``test_fused_and_cpu_products_agree``); deterministic: a
system's result depends only on its own inputs (not on the other systems of the call), and
every run of the same inputs gives the same bits. ``fastmath`` is restricted to reassociation
and contraction (so that the row sums vectorise); NaN and inf propagate as in IEEE arithmetic,
so a diverged path is still reported by the sweep's finiteness check.

Uses numba when it is installed (a dependency of the package); ``AVAILABLE`` is False
otherwise, and the sweep then uses the ``matmul`` twin.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency; its absence (e.g. a Python it has no wheel for yet) is survivable
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

AVAILABLE = numba is not None
_FASTMATH = {"reassoc", "contract"}  # vectorised reductions; no nnan/ninf: NaN stays NaN


def _jit(f):
    if not AVAILABLE:
        return f
    try:  # compiled once, cached beside the module (or in numba's user-wide cache)
        return numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)(f)
    except RuntimeError:  # no writable cache location (read-only install and home): compile per process
        return numba.njit(fastmath=_FASTMATH, cache=False, nogil=True)(f)


@_jit
def _dots2(H, m, v1, v2, o1, o2, zero):  # pragma: no cover - compiled
    S = H.shape[0]
    n = H.shape[2]
    for s in range(S):
        j = 0
        while j + 4 <= m:  # four rows per sweep of v₁, v₂: eight independent accumulators
            a1 = zero
            a2 = zero
            b1 = zero
            b2 = zero
            c1 = zero
            c2 = zero
            d1 = zero
            d2 = zero
            for i in range(n):
                x = v1[s, i]
                y = v2[s, i]
                q = H[s, j, i]
                r = H[s, j + 1, i]
                t = H[s, j + 2, i]
                u = H[s, j + 3, i]
                a1 += q * x
                a2 += q * y
                b1 += r * x
                b2 += r * y
                c1 += t * x
                c2 += t * y
                d1 += u * x
                d2 += u * y
            o1[s, j] = a1
            o2[s, j] = a2
            o1[s, j + 1] = b1
            o2[s, j + 1] = b2
            o1[s, j + 2] = c1
            o2[s, j + 2] = c2
            o1[s, j + 3] = d1
            o2[s, j + 3] = d2
            j += 4
        while j < m:
            a1 = zero
            a2 = zero
            for i in range(n):
                q = H[s, j, i]
                a1 += q * v1[s, i]
                a2 += q * v2[s, i]
            o1[s, j] = a1
            o2[s, j] = a2
            j += 1


@_jit
def _combos3(H, m, c1, c2, c3, o1, o2, o3, zero):  # pragma: no cover - compiled
    S = H.shape[0]
    n = H.shape[2]
    for s in range(S):
        for i in range(n):
            o1[s, i] = zero
            o2[s, i] = zero
            o3[s, i] = zero
        j = 0
        while j + 8 <= m:  # eight rows per read-modify-write of the three outputs
            for i in range(n):
                x1 = zero
                x2 = zero
                x3 = zero
                for r in range(8):
                    q = H[s, j + r, i]
                    x1 += c1[s, j + r] * q
                    x2 += c2[s, j + r] * q
                    x3 += c3[s, j + r] * q
                o1[s, i] += x1
                o2[s, i] += x2
                o3[s, i] += x3
            j += 8
        while j < m:
            a = c1[s, j]
            b = c2[s, j]
            c = c3[s, j]
            for i in range(n):
                q = H[s, j, i]
                o1[s, i] += a * q
                o2[s, i] += b * q
                o3[s, i] += c * q
            j += 1


def dots2(H: np.ndarray, m: int, v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H[:, :m] v₁, H[:, :m] v₂) per system.

    H: (S, T, n) C-contiguous, m ≤ T rows used; v₁, v₂: (S, n). Returns two (S, m) arrays of
    H's dtype. Raises ``RuntimeError`` if numba is not installed (check ``AVAILABLE``).
    """
    if not AVAILABLE:
        raise RuntimeError("dln_kernels.dmft.cpu_products needs numba; use the matmul twin")
    S = H.shape[0]
    o1 = np.empty((S, m), dtype=H.dtype)
    o2 = np.empty((S, m), dtype=H.dtype)
    _dots2(H, m, np.ascontiguousarray(v1), np.ascontiguousarray(v2), o1, o2, H.dtype.type(0))
    return o1, o2


def combos3(H: np.ndarray, m: int, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray):
    """(c₁ H[:, :m], c₂ H[:, :m], c₃ H[:, :m]) per system.

    H: (S, T, n) C-contiguous; c₁, c₂, c₃: (S, m). Returns three (S, n) arrays of H's dtype.
    Raises ``RuntimeError`` if numba is not installed (check ``AVAILABLE``).
    """
    if not AVAILABLE:
        raise RuntimeError("dln_kernels.dmft.cpu_products needs numba; use the matmul twin")
    S, _, n = H.shape
    out = [np.empty((S, n), dtype=H.dtype) for _ in range(3)]
    cs = [np.ascontiguousarray(c) for c in (c1, c2, c3)]
    _combos3(H, m, *cs, *out, H.dtype.type(0))
    return tuple(out)
