"""Step schedules, output times, and the step-size stability bound.

Conventions shared by the simulator and the theory: the state after k gradient steps is β_k,
k = 0 … n_steps, and the time of state k is t_k = Σ_{j<k} dt_j (t_0 = 0). Observables are
recorded at a subset of the k (``output_steps``), always including k = 0 and k = n_steps.
"""

from __future__ import annotations

import math

import numpy as np

from .priors import max_magnitude


def n_steps_for(t_max: float, dt: float) -> int:
    """Number of constant steps of size ``dt`` that reach ``t_max`` (at least 1)."""
    return max(1, int(round(t_max / dt)))


def output_steps(n_steps: int, n_times: int = 60, spacing: str = "log") -> np.ndarray:
    """Sorted unique step indices in [0, n_steps], including both ends.

    ``log``: roughly geometric in k (k = 1 … n_steps) plus k = 0; ``linear``: evenly spaced.
    Fewer than ``n_times`` indices come back when the log grid would repeat small integers.
    """
    if n_times < 2:
        raise ValueError(f"output.n_times: need at least 2, got {n_times}")
    if spacing == "log":
        ks = np.unique(np.round(np.geomspace(1, n_steps, n_times - 1)).astype(np.int64))
        ks = np.concatenate([[0], ks])
    elif spacing == "linear":
        ks = np.unique(np.round(np.linspace(0, n_steps, n_times)).astype(np.int64))
    else:
        raise ValueError(f"output.spacing: unknown value {spacing!r}; expected 'log' or 'linear'")
    ks[-1] = n_steps
    return np.unique(ks)


def step_times(dt_schedule: np.ndarray) -> np.ndarray:
    """t_k for k = 0 … len(dt_schedule)."""
    return np.concatenate([[0.0], np.cumsum(dt_schedule)])


def hessian_edge(delta: float) -> float:
    """Largest eigenvalue of XᵀX/δ for d → ∞ (Marchenko–Pastur edge): (1 + 1/√δ)²."""
    return (1.0 + 1.0 / math.sqrt(delta)) ** 2


def curvature_scale(model: str, alpha: float, delta: float, weight_decay: float, prior: dict,
                    network: str = "uv", depth: int = 2, batch_fraction: float = 1.0) -> float:
    """Estimate of the largest curvature the iteration meets.

    Mini-batch SGD (theory.md §5.1, batch fraction b): the step-k gradient is that of the
    sub-problem of the |S| ≈ b·n selected rows, scaled by 1/(bδ): its data Hessian
    X_Sᵀ X_S/(bδ) has rows N(0, 1/d) at sample ratio |S|/d = bδ, so its top eigenvalue is the
    Marchenko–Pastur edge at bδ, (1 + 1/√(bδ))², instead of (1 + 1/√δ)². Every formula below
    takes H = hessian_edge(b·δ): each step is then a stable GD step of its own mini-batch
    problem. (Fixed-size batches: |S|/d = round(b n)/d, the same to O(1/n).) This is stricter
    than the lazy mean-square estimate of theory.md §5 Remarks, dt·w/(bδ) ≲ 2, since
    (1 + 1/√(bδ))² > 1/(bδ); for b = 1 it is the full-batch bound.

    Linear model: the top of the data Hessian, (1 + 1/√δ)², plus λ. DLN ``uv``: in (u, v) the
    Gauss–Newton curvature of coordinate i is (u_i² + v_i²)·H = √(c² + 4β_i²)·H with c = α²; β
    ranges up to the teacher's magnitudes b, so we use H·(α² + 2b) + λ (exact at β = 0, an upper
    estimate later). DLN ``pm`` of depth L (β = u^L − v^L): the metric is
    (∂β/∂u)² + (∂β/∂v)² = L²(u^{2L−2} + v^{2L−2}), 2L²α^{2L−2} at β = 0; along the flow (λ = 0)
    v ≤ α on the learned side, so u^L ≤ |β| + α^L and we use the upper bound
    H·L²((b + α^L)^{(2L−2)/L} + α^{2L−2}) + λ (for L = 2: H(4b + 8α²), the uv estimate at
    α_uv = 2α with the doubled step of the conversion).
    """
    h = hessian_edge(batch_fraction * delta)
    if model == "linear":
        return h + weight_decay
    b = max_magnitude(prior)
    if network == "pm":
        L = int(depth)
        return h * L * L * ((b + alpha**L) ** ((2 * L - 2) / L) + alpha ** (2 * L - 2)) + weight_decay
    return h * (alpha**2 + 2.0 * b) + weight_decay


def stability_bound(model: str, alpha: float, delta: float, weight_decay: float, prior: dict,
                    network: str = "uv", depth: int = 2, batch_fraction: float = 1.0) -> float:
    """Largest stable constant step, 2 / curvature (gradient descent diverges beyond it); for
    mini-batch SGD with batch fraction b the curvature of a b·δ mini-batch (see
    :func:`curvature_scale`)."""
    return 2.0 / curvature_scale(model, alpha, delta, weight_decay, prior, network, depth, batch_fraction)
