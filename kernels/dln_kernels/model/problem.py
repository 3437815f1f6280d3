"""Problem instances (X, β*, ξ) drawn reproducibly from a seed.

One instance per (base_seed, seed index, d). Three independent child streams draw the design,
the teacher noise and the label noise, so that

- X for sample ratio δ is the first n = round(δ·d) rows of one long stream: runs at different δ
  share their leading rows (common random numbers along δ);
- β* for every ρ and prior is built from the same uniforms/normals (see ``priors``);
- ξ for n samples is the first n entries of one stream, shared by every σ;
- the mini-batch selections of SGD (theory.md §5) come from a fourth stream, the child
  (base_seed, seed, 3) of the same root (``selection_rng``): step k takes the k-th block of n
  uniforms U_μ(k), and a run with batch fraction b uses sample μ iff U_μ(k) < b (or, for
  fixed-size batches, iff U_μ(k) is among the round(b·n) smallest). All runs of a data group
  share these uniforms (common random numbers along b; one mask along α, σ, ρ, λ). Full-batch
  runs never draw from it.

Instances are drawn on the host with NumPy, so both backends see the same data.

Designs other than the i.i.d. Gaussian (``designs``: image patches, digits, a power-law
covariance) replace only the rows of X; the teacher noise and ξ are drawn as above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dln_kernels.model.priors import prior_noise, teacher_from_noise


def n_samples(delta: float, d: int) -> int:
    """n = round(δ·d), at least 1."""
    return max(1, int(round(delta * d)))


@dataclass
class Instance:
    """Random numbers of one seed; ``design``/``teacher``/``noise`` cut them to a (δ, ρ) point."""

    d: int
    x_stream: np.random.Generator
    teacher_noise: dict
    xi_stream: np.random.Generator
    _x: np.ndarray | None = None
    _xi: np.ndarray | None = None
    rows: object = None  # designs.RowSource of a non-Gaussian design; None: i.i.d. N(0, 1/d)
    selection_seq: np.random.SeedSequence | None = None

    def _grow(self, n: int) -> None:
        have = 0 if self._x is None else self._x.shape[0]
        if n > have:
            # Rows are drawn in order, so the first rows never change when more are drawn.
            if self.rows is None:
                extra = self.x_stream.standard_normal((n - have, self.d)) / np.sqrt(self.d)
            else:
                extra = self.rows.rows(have, n)
            xi_extra = self.xi_stream.standard_normal(n - have)
            self._x = extra if self._x is None else np.vstack([self._x, extra])
            self._xi = xi_extra if self._xi is None else np.concatenate([self._xi, xi_extra])

    def design(self, delta: float) -> np.ndarray:
        """X ∈ R^{n×d}: entries N(0, 1/d), or the rows of the instance's design (``designs``)."""
        n = n_samples(delta, self.d)
        self._grow(n)
        return self._x[:n]

    def noise(self, delta: float) -> np.ndarray:
        """ξ ∈ R^n, standard normal."""
        n = n_samples(delta, self.d)
        self._grow(n)
        return self._xi[:n]

    def teacher(self, prior: dict, rho: float) -> np.ndarray:
        return teacher_from_noise(prior, rho, self.teacher_noise)

    def selection_rng(self) -> np.random.Generator:
        """A fresh generator of the mini-batch selection stream (module docstring): each call
        starts the stream from its beginning, so every run of the instance sees the same U."""
        if self.selection_seq is None:
            raise ValueError("this instance has no selection stream (draw it with draw_instance)")
        return np.random.default_rng(self.selection_seq)


def draw_instance(d: int, seed: int, base_seed: int = 0, design: dict | None = None) -> Instance:
    """The instance for seed index ``seed`` of a sweep with ``base_seed``.

    ``design``: a resolved design (``designs.resolve_design``; its ``d`` must equal ``d``) or None
    for the i.i.d. Gaussian. A Gaussian design gives exactly the instance of ``design=None``.
    Raises ValueError if the design's d differs from ``d``.
    """
    root = np.random.SeedSequence(entropy=int(base_seed), spawn_key=(int(seed),))
    x_seq, teacher_seq, xi_seq = root.spawn(3)
    x_stream = np.random.default_rng(x_seq)
    rows = None
    if design is not None and design["kind"] != "gaussian":
        from dln_kernels.model.designs import RowSource

        rows = RowSource(design, seed, base_seed, x_stream)
    if design is not None and int(design["d"]) != int(d):
        raise ValueError(f"draw_instance: design {design.get('name')!r} has d={design['d']}, not {d}")
    # the fourth child of root, made without spawning (which would change nothing above, but
    # keeps the stream's key explicit): SeedSequence(base_seed, spawn_key=(seed, 3))
    sel_seq = np.random.SeedSequence(entropy=int(base_seed), spawn_key=(int(seed), 3))
    return Instance(
        d=int(d),
        x_stream=x_stream,
        teacher_noise=prior_noise(np.random.default_rng(teacher_seq), int(d)),
        xi_stream=np.random.default_rng(xi_seq),
        rows=rows,
        selection_seq=sel_seq,
    )
