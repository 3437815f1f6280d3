"""Exact (N = ∞) DMFT of mini-batch SGD for the linear model: a deterministic recursion.

theory.md §5.2, "Linear model": with β_{k+1} = β_k + dt (g_k − λ β_k) the single-coordinate
process is linear with deterministic coefficients,

    Δ_k = a_k Δ_0 + Σ_{l<k} J[k, l] η_l,      Δ_0 = −β*,

where the weight-decay forcing −dt λ β* = dt λ Δ_0 is absorbed into a. Its response is G = J, and
the order parameters close without Monte Carlo:

    a_0 = 1,   a_{k+1} = (1 − dt λ) a_k + dt λ − dt Σ_{l≤k} K[k, l] a_l
    J[k+1, m] = (1 − dt λ) J[k, m] + dt [m = k] − dt Σ_{l≤k} K[k, l] J[l, m]
    C_Δ = E[β*²] a aᵀ + J C_η Jᵀ,      M = σ² 𝟙𝟙ᵀ + C_Δ
    K = (I + G/δ)⁻¹,   D_k = ((1 − b)/b) C_r[k, k],
    C_r = K M Kᵀ + (I − K) D (I − K)ᵀ,   C_η = K (M + D) Kᵀ/δ.

Solving order (causal, one forward sweep): at step k, row k of J and a_k (from rows < k of J
and K), row k of K (forward substitution), row k of C_Δ (C_η up to k − 1 is final because
J[k, l] = 0 for l ≥ k), then C_r[k, k], D_k and row k of C_η. Cost O(T³) per point (the rows
of J C_η Jᵀ), no estimator, no noise floor: an estimator-free test of the SGD terms of the
N-path solver (:func:`dln_kernels.dmft.solver.solve_dmft`) and of the simulator. At b = 1 it is the
full-batch linear DMFT, whose answer is the Marchenko–Pastur average of the finite-d GD errors
(``marchenko_pastur.linear_gd_errors``).

Host NumPy float64 (a reference calculation, like the static theory); points are vectorised.
"""

from __future__ import annotations

import numpy as np


def sgd_linear_exact(
    *,
    n_steps: int,
    dt,
    delta,
    batch_fraction=1.0,
    sigma=0.0,
    weight_decay=0.0,
    second_moment=1.0,
    return_matrices: bool = False,
) -> dict:
    """Exact d → ∞ errors of constant-step mini-batch SGD of the linear model.

    Parameters (scalars or arrays broadcast to P points): ``dt`` step size; ``delta`` = n/d;
    ``batch_fraction`` b ∈ (0, 1]; ``sigma`` label-noise std; ``weight_decay`` λ ≥ 0;
    ``second_moment`` E[β*²] of the teacher prior (ρ for the Gauss–Bernoulli prior). The
    recursion depends on the prior through E[β*²] only.

    Returns float64 arrays: ``e_train``, ``e_test`` (P, T) for the states k = 0 … n_steps
    (E_train = C_r[k, k]/2 over all samples, E_test = C_Δ[k, k]/2), ``D`` (P, T) the selection
    noise; with ``return_matrices`` also ``C_delta``, ``C_r``, ``G``, ``K`` (P, T, T).
    Raises ValueError for b ∉ (0, 1], δ ≤ 0, dt ≤ 0, λ < 0 or σ < 0, naming the key and value.
    """
    T = int(n_steps) + 1
    if n_steps < 1:
        raise ValueError(f"n_steps: need at least 1, got {n_steps}")
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in
                                   (dt, delta, batch_fraction, sigma, weight_decay, second_moment)))
    dt, delta, b, sig, lam, m2 = (np.ascontiguousarray(v) for v in arrays)
    for name, v, ok in (("batch_fraction", b, (b > 0) & (b <= 1)), ("delta", delta, delta > 0), ("dt", dt, dt > 0),
                        ("weight_decay", lam, lam >= 0), ("sigma", sig, sig >= 0)):
        if not np.all(ok):
            raise ValueError(f"{name}: {v[~ok][0]:g} is out of range")
    P = dt.size
    coef = (1.0 - b) / b
    J = np.zeros((P, T, T))
    K = np.zeros((P, T, T))
    CD = np.zeros((P, T, T))
    Ceta = np.zeros((P, T, T))
    M = np.zeros((P, T, T))
    a = np.zeros((P, T))
    D = np.zeros((P, T))
    cr = np.zeros((P, T))
    a[:, 0] = 1.0
    col = lambda v: v[:, None]  # noqa: E731
    for k in range(T):
        if k > 0:  # row k of J and a_k from step k − 1
            j = k - 1
            Kj = K[:, j, :k]  # K[j, l], l ≤ j
            a[:, k] = (1 - dt * lam) * a[:, j] + dt * lam - dt * np.einsum("pl,pl->p", Kj, a[:, :k])
            J[:, k, :k] = col(1 - dt * lam) * J[:, j, :k] - col(dt) * np.einsum("pl,plm->pm", Kj, J[:, :k, :k])
            J[:, k, j] += dt
            # row k of K: (I + G/δ) K = I, G = J (strictly lower)
            K[:, k, :k] = -np.einsum("pl,plm->pm", J[:, k, :k], K[:, :k, :k]) / col(delta)
        K[:, k, k] = 1.0
        # row k of C_Δ: E[β*²] a_k a_l + (J C_η Jᵀ)[k, l], l ≤ k (C_η[:k, :k] is final)
        JC = np.einsum("pm,pmn->pn", J[:, k, :k], Ceta[:, :k, :k])  # (P, k)
        row = col(m2 * a[:, k]) * a[:, : k + 1] + np.einsum("pn,pln->pl", JC, J[:, : k + 1, :k])
        CD[:, k, : k + 1] = row
        CD[:, : k + 1, k] = row
        M[:, k, : k + 1] = row + col(sig * sig)
        M[:, : k + 1, k] = M[:, k, : k + 1]
        # C_r[k, k] = (K M Kᵀ)[k, k] + Σ_{l<k} K[k, l]² D_l, then D_k
        Kk = K[:, k, : k + 1]
        KM = np.einsum("pl,plm->pm", Kk, M[:, : k + 1, : k + 1])  # (K M)[k, :k+1]
        cr[:, k] = np.einsum("pm,pm->p", KM, Kk) + np.einsum("pl,pl->p", K[:, k, :k] ** 2, D[:, :k])
        D[:, k] = coef * cr[:, k]
        # row k of C_η = K (M + D) Kᵀ/δ against rows l ≤ k
        KMD = KM + Kk * D[:, : k + 1]  # (K (M + D))[k, :k+1]
        ce = np.einsum("pm,plm->pl", KMD, K[:, : k + 1, : k + 1]) / col(delta)
        Ceta[:, k, : k + 1] = ce
        Ceta[:, : k + 1, k] = ce
    out = {"e_train": cr / 2, "e_test": np.einsum("pkk->pk", CD) / 2, "D": D}
    if return_matrices:
        Ks = np.tril(K, -1)
        out["C_r"] = K @ M @ np.swapaxes(K, 1, 2) + Ks @ (D[:, :, None] * np.swapaxes(Ks, 1, 2))
        out.update(C_delta=CD, G=J, K=K)
    return out
