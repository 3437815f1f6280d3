"""Designs X beyond i.i.d. Gaussian: natural-image patches, handwritten digits, and an anisotropic
Gaussian with a power-law covariance spectrum (the Gaussian-universality question).

A design specification is a plain dict (the sweep key ``design``, one object or a list of them):

- ``{"kind": "gaussian"}``: today's design, entries i.i.d. N(0, 1/d) (``problem.Instance``); the
  default. Its rows are drawn exactly as before, bit for bit.
- ``{"kind": "image_patches", "patch": 12, "stride": 4, "images": ["china.jpg", "flower.jpg"],
  "whiten": "zca"}``: every ``patch × patch × 3`` window (RGB) on a grid of step ``stride`` of
  scikit-learn's two sample photographs (``sklearn.datasets.load_sample_images``, 427 × 640 each),
  flattened: d = 3·patch², 32 864 rows for the defaults (d = 432).
- ``{"kind": "digits", "whiten": "standardize"}``: scikit-learn's 8 × 8 handwritten digits
  (``load_digits``, 1797 rows); the 3 pixels that are 0 in every image carry nothing and are
  dropped, so d = 61.
- ``{"kind": "gaussian_powerlaw", "exponent": 1.0, "seed": 0, "rotation": "haar"}``: rows
  N(0, Σ/d) with Σ = O diag(λ) O^T, λ_j ∝ j^(−exponent) scaled to mean 1, O a Haar rotation drawn
  from ``seed`` (the same for every run seed: the covariance is the design's, the rows are the
  run's). ``rotation: none`` is the *diagonal* design with the same spectrum, Σ = diag(λ) (no
  rotation; ``seed`` unused): row entries x_i = z_i √λ_i / √d, z ~ N(0, I_d). ``rotation: haar`` is
  the default and is left out of the resolved specification (``resolve_design``), so a design
  written before the key existed keeps its resolved form, chunk names and bits.
- ``{"kind": "two_level", "fraction": 0.2, "ratio": 10.0}``: a diagonal design whose first
  m = round(fraction·d) coordinates have scale s_hi and the other d − m scale s_lo, with
  s_hi = ratio·s_lo and mean scale exactly 1 (s_lo = d/(m·ratio + d − m)); rows x_i = z_i √s_i/√d.

The diagonal kinds (``gaussian``: s ≡ 1; ``gaussian_powerlaw`` with ``rotation: none``;
``two_level``) have a coordinate-wise DMFT (docs/dmft.md, "Diagonal designs"):
:func:`diagonal_scales` gives their scales s (d,), mean 1. The rows of a diagonal design come
from the same stream as the Gaussian's (standard normals z, one row at a time, times √s/√d), so
s ≡ 1 gives the Gaussian rows bit for bit.

Common keys: ``name`` (label of the design in files and figures; default the kind, plus
``_whiten`` for data kinds), ``d`` (gaussian kinds: the dimension, default the sweep's ``d``; data
kinds: derived, and a given ``d`` that disagrees is refused), ``whiten`` (data kinds only):

- ``none``: centred only; ``standardize``: centred, each feature scaled to unit variance;
  ``zca``: centred and multiplied by C^(−1/2) (C the pool's covariance, ZCA/Mahalanobis whitening).

Statistics (means, variances, C) are those of the whole pool of rows, so the preprocessing is
one fixed linear map per design, not fitted per run. Every design is then scaled so that its
entries have variance 1/d on average over the pool (mean of X_ij² = 1/d after centring) — the
convention of docs/theory.md, under which the Gaussian DMFT is the d → ∞ prediction.

Rows of a data design for run seed s are the first n of one permutation of the pool (drawn
without replacement from the stream ``SeedSequence(base_seed, spawn_key=(s, 4, design seed))``; key 3 is the SGD selection stream),
so X at a smaller δ is the leading rows of X at a larger one (common random numbers along δ, as
for the Gaussian). A δ that needs more rows than the pool holds is refused before compute.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from importlib import metadata
from pathlib import Path

import numpy as np

DESIGN_KINDS = ("gaussian", "image_patches", "digits", "gaussian_powerlaw", "two_level")
WHITEN = ("none", "standardize", "zca")
DATA_KINDS = ("image_patches", "digits")
SAMPLE_IMAGES = ("china.jpg", "flower.jpg")
DEFAULT_DESIGN = {"kind": "gaussian"}
DIGITS_ROWS = 1797
ROTATIONS = ("haar", "none")  # gaussian_powerlaw: Haar-rotated covariance (default) or diagonal

# Keys each kind accepts (besides kind, name) and their defaults.
_KIND_KEYS = {
    "gaussian": {"d": None},
    "gaussian_powerlaw": {"d": None, "exponent": 1.0, "seed": 0},  # and "rotation" (see _OPTIONAL_KEYS)
    "two_level": {"d": None, "fraction": 0.2, "ratio": 10.0},
    "image_patches": {"d": None, "patch": 12, "stride": 4, "images": list(SAMPLE_IMAGES), "whiten": "zca", "seed": 0},
    "digits": {"d": None, "whiten": "standardize", "seed": 0},
}
# Keys a kind accepts whose default is *not* written into the resolved specification (so that
# designs resolved before the key existed keep their form, chunk names and bits): key -> default.
_OPTIONAL_KEYS = {"gaussian_powerlaw": {"rotation": "haar"}}
ZCA_EPS = 1e-10  # eigenvalue floor of the ZCA, relative to the mean eigenvalue
ISOTROPIC = "isotropic"  # label of the isotropic DMFT in dmft.nc's design coordinate (no design may be named so)


class DesignError(ValueError):
    """A design specification that cannot be built; the message names the key and the value."""


def is_default(spec) -> bool:
    """True for the default design (one plain Gaussian at the sweep's d): nothing changes."""
    return spec is None or spec == DEFAULT_DESIGN or spec == [DEFAULT_DESIGN]


def resolve_design(spec: dict, d_default: int, where: str = "design") -> dict:
    """The full specification of one design: defaults filled, ``d`` and ``name`` set.

    Raises DesignError naming ``where.KEY`` for an unknown kind, a key the kind does not take, a
    whitening other than none/standardize/zca (or any whitening of a Gaussian kind), a patch larger
    than an image, an unknown image, or a ``d`` that disagrees with the data. Cheap: the images are
    not decoded (their sizes are read from the file headers).
    """
    if not isinstance(spec, dict):
        raise DesignError(f"{where}: {spec!r} is not a mapping with a 'kind'")
    kind = spec.get("kind")
    if kind not in DESIGN_KINDS:
        raise DesignError(f"{where}.kind: unknown design kind {kind!r}; expected one of {list(DESIGN_KINDS)}")
    allowed = _KIND_KEYS[kind]
    optional = _OPTIONAL_KEYS.get(kind, {})
    for key in spec:
        if key not in allowed and key not in optional and key not in ("kind", "name"):
            raise DesignError(f"{where}.{key}: not a key of design kind {kind!r} (keys: {sorted({**allowed, **optional})})")
    out = {"kind": kind, **copy.deepcopy(allowed), **copy.deepcopy(spec)}
    for key, default in optional.items():
        if key in out and out[key] == default:
            del out[key]  # the default is implicit: the resolved form of designs written before the key
    whiten = out.get("whiten", "none")
    if whiten not in WHITEN:
        raise DesignError(f"{where}.whiten: unknown value {whiten!r}; expected one of {list(WHITEN)}")
    if kind == "image_patches":
        p, s = out["patch"], out["stride"]
        for key, v in (("patch", p), ("stride", s)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DesignError(f"{where}.{key}: {v!r} is not a positive integer")
        if not out["images"] or len(set(out["images"])) != len(out["images"]):
            raise DesignError(f"{where}.images: {out['images']!r} must be a non-empty list of distinct names")
        for name in out["images"]:
            if name not in SAMPLE_IMAGES:
                raise DesignError(f"{where}.images: unknown image {name!r}; scikit-learn ships {list(SAMPLE_IMAGES)}")
            h, w = image_size(name)
            if p > min(h, w):
                raise DesignError(f"{where}.patch: {p} is larger than image {name} ({h} x {w} pixels)")
        d = 3 * p * p
    elif kind == "digits":
        d = 64 - 3  # the 3 pixels that are 0 in every image are dropped (a test checks the count)
    else:
        d = d_default if out["d"] is None else out["d"]
        if not isinstance(d, int) or isinstance(d, bool) or d < 2:
            raise DesignError(f"{where}.d: {d!r} is not an integer >= 2")
        if kind == "gaussian_powerlaw" and not (isinstance(out["exponent"], (int, float)) and out["exponent"] >= 0):
            raise DesignError(f"{where}.exponent: {out['exponent']!r} is not a number >= 0")
        if kind == "gaussian_powerlaw" and out.get("rotation", "haar") not in ROTATIONS:
            raise DesignError(f"{where}.rotation: unknown value {out['rotation']!r}; expected one of {list(ROTATIONS)}")
        if kind == "two_level":
            f, r = out["fraction"], out["ratio"]
            if not (_is_number(f) and 0 < f < 1):
                raise DesignError(f"{where}.fraction: {f!r} is not a number in (0, 1)")
            if not (_is_number(r) and 0 < r < math.inf):
                raise DesignError(f"{where}.ratio: {r!r} is not a finite number > 0")
            m = int(round(f * d))
            if not 0 < m < d:
                raise DesignError(f"{where}.fraction: {f!r} puts round(fraction*d) = {m} of d = {d} coordinates at the "
                                  f"first scale; need between 1 and d - 1")
    if out["d"] is not None and out["d"] != d:
        raise DesignError(f"{where}.d: {out['d']} disagrees with the data of kind {kind!r}, which has d = {d}; "
                          f"leave d out (it is derived)")
    out["d"] = int(d)
    out.setdefault("name", kind if kind not in DATA_KINDS else f"{kind}_{whiten}")
    if out["name"] == "gaussian_powerlaw" and out.get("rotation") == "none" and "name" not in spec:
        out["name"] = "gaussian_powerlaw_diagonal"  # distinct from the rotated design of the same spectrum
    if not (isinstance(out["name"], str) and re.fullmatch(r"[A-Za-z0-9_-]+", out["name"])):
        raise DesignError(f"{where}.name: {out['name']!r} must be letters, digits, '_' or '-' (it names files)")
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def resolve_designs(sweep: dict, where: str = "design") -> list:
    """The sweep's designs (``sweep["design"]``: one object or a list), resolved, names unique."""
    spec = sweep.get("design", DEFAULT_DESIGN)
    specs = spec if isinstance(spec, list) else [spec]
    if not specs:
        raise DesignError(f"{where}: an empty list; give at least one design")
    out = [resolve_design(s, int(sweep["d"]), f"{where}[{i}]" if isinstance(spec, list) else where)
           for i, s in enumerate(specs)]
    names = [o["name"] for o in out]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise DesignError(f"{where}[{i}].name: {n!r} is used twice; give each design its own name")
    return out


def design_names(sweep: dict) -> list:
    """Names of the sweep's designs, in its order (the labels of the ``design`` dim); needs no
    ``d`` (a Gaussian design's name does not depend on it)."""
    return [des["name"] for des in resolve_designs({"d": 2, **sweep})]


@functools.lru_cache(maxsize=None)
def image_size(name: str) -> tuple:
    """(height, width) of a scikit-learn sample image, from its header (no decoding)."""
    from PIL import Image

    with Image.open(_image_path(name)) as im:
        w, h = im.size
    return int(h), int(w)


def _image_path(name: str) -> Path:
    import importlib.util

    # found without importing scikit-learn (slow): the planning checks read only the headers
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DesignError("design.kind: image_patches needs scikit-learn (pip install scikit-learn)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "images" / name


def pool_rows(design: dict) -> int | None:
    """Rows the design can give one run (its pool size); None for the Gaussian kinds (no limit)."""
    if design["kind"] == "digits":
        return DIGITS_ROWS
    if design["kind"] == "image_patches":
        p, s = design["patch"], design["stride"]
        return sum(((h - p) // s + 1) * ((w - p) // s + 1) for h, w in map(image_size, design["images"]))
    return None


def check_rows(design: dict, n: int, where: str = "design", delta=None) -> None:
    """Refuse, before compute, a design asked for more rows than its pool holds."""
    have = pool_rows(design)
    if have is not None and n > have:
        at = f" (delta={delta}, d={design['d']})" if delta is not None else ""
        raise DesignError(
            f"{where}: design {design['name']!r} ({design['kind']}) has {have} rows, fewer than the n={n} "
            f"rows asked for{at}; lower grid.delta to <= {have / design['d']:.3g}"
            + (" or the stride" if design["kind"] == "image_patches" else "")
        )


def _key(design: dict) -> str:
    return json.dumps({k: v for k, v in design.items() if k != "name"}, sort_keys=True)


def raw_pool(design: dict) -> np.ndarray:
    """The data kind's raw rows (N, d) float64, before preprocessing."""
    if design["kind"] == "digits":
        from sklearn.datasets import load_digits

        data = load_digits().data.astype(np.float64)
        keep = data.std(axis=0) > 0
        return np.ascontiguousarray(data[:, keep])
    if design["kind"] == "image_patches":
        from numpy.lib.stride_tricks import sliding_window_view
        from sklearn.datasets import load_sample_image

        p, s = design["patch"], design["stride"]
        rows = []
        for name in design["images"]:
            img = load_sample_image(name)  # (h, w, 3) uint8
            win = sliding_window_view(img, (p, p, 3))[::s, ::s, 0]  # (nh, nw, p, p, 3)
            rows.append(win.reshape(-1, p * p * 3))
        return np.ascontiguousarray(np.vstack(rows), dtype=np.float64)
    raise DesignError(f"design.kind: {design['kind']!r} has no pool")


def preprocess(raw: np.ndarray, whiten: str) -> np.ndarray:
    """Centre, whiten (``none`` | ``standardize`` | ``zca``) and scale a pool (N, d) so that the mean
    of its squared entries is 1/d. Statistics are the pool's own (population, 1/N).

    Raises DesignError for a constant feature under standardize/zca (nothing to scale).
    """
    n, d = raw.shape
    xc = raw - raw.mean(axis=0)
    if whiten == "standardize":
        sd = xc.std(axis=0)
        if np.any(sd == 0):
            raise DesignError("design.whiten: standardize needs every feature to vary; a feature is constant")
        xc = xc / sd
    elif whiten == "zca":
        cov = xc.T @ xc / n
        ev, vec = np.linalg.eigh(cov)
        floor = ZCA_EPS * ev.mean()
        if ev[0] <= floor:
            raise DesignError(f"design.whiten: zca needs a full-rank covariance; its smallest eigenvalue "
                              f"is {ev[0]:.3g} (mean {ev.mean():.3g})")
        xc = xc @ ((vec / np.sqrt(ev)) @ vec.T)  # C^(-1/2), symmetric
    elif whiten != "none":
        raise DesignError(f"design.whiten: unknown value {whiten!r}; expected one of {list(WHITEN)}")
    return xc / np.sqrt(np.mean(xc * xc) * d)  # mean X_ij² = 1/d


@functools.lru_cache(maxsize=8)
def _pool_cached(key: str) -> np.ndarray:
    design = json.loads(key)
    pool = preprocess(raw_pool(design), design["whiten"])
    pool.setflags(write=False)
    return pool


def pool(design: dict) -> np.ndarray:
    """The preprocessed pool (N, d) of a data design, read-only float64 (cached per process)."""
    return _pool_cached(_key(design))


@functools.lru_cache(maxsize=8)
def _powerlaw_cached(key: str):
    design = json.loads(key)
    d, a = design["d"], float(design["exponent"])
    lam = np.arange(1, d + 1, dtype=np.float64) ** (-a)
    lam *= d / lam.sum()  # mean eigenvalue 1: entries of X have variance 1/d on average
    q, r = np.linalg.qr(np.random.default_rng(int(design["seed"])).standard_normal((d, d)))
    rot = q * np.sign(np.diag(r))  # Haar-distributed rotation
    scale = (rot * np.sqrt(lam)).T / np.sqrt(d)  # x = z @ scale, z ~ N(0, I_d)
    scale.setflags(write=False)
    return lam, scale


def is_diagonal(design: dict | None) -> bool:
    """True for the designs with a diagonal covariance (None: the default Gaussian)."""
    if design is None:
        return True
    kind = design["kind"]
    return kind in ("gaussian", "two_level") or (kind == "gaussian_powerlaw" and design.get("rotation", "haar") == "none")


@functools.lru_cache(maxsize=16)
def _scales_cached(key: str) -> np.ndarray:
    design = json.loads(key)
    d, kind = int(design["d"]), design["kind"]
    if kind == "gaussian":
        s = np.ones(d)
    elif kind == "gaussian_powerlaw":
        s = np.arange(1, d + 1, dtype=np.float64) ** (-float(design["exponent"]))
        s *= d / s.sum()  # mean 1, exactly the eigenvalues λ of the haar design (powerlaw_factor)
    else:  # two_level
        m, r = int(round(float(design["fraction"]) * d)), float(design["ratio"])
        lo = d / (m * r + (d - m))  # mean (m·r·lo + (d − m)·lo)/d = 1
        s = np.full(d, lo)
        s[:m] = r * lo
    s.setflags(write=False)
    return s


def diagonal_scales(design: dict) -> np.ndarray:
    """Coordinate scales s (d,) float64, read-only, of a diagonal design (:func:`is_diagonal`): a
    row is x = z ⊙ √s / √d with z ~ N(0, I_d), so Cov(x) = diag(s)/d, and mean(s) = 1 (to
    rounding; exactly 1 for s ≡ 1). Gaussian: ones; ``gaussian_powerlaw`` with ``rotation: none``:
    λ_j = j^(−exponent)·d/Σ_i i^(−exponent) (the haar design's eigenvalues); ``two_level``: see the
    module docstring. Raises DesignError for a design without a diagonal covariance."""
    if not is_diagonal(design):
        raise DesignError(f"design.kind: {design['name']!r} ({design['kind']}"
                          + (", rotation haar" if design["kind"] == "gaussian_powerlaw" else "")
                          + ") has no diagonal covariance; diagonal designs are gaussian, two_level and "
                          "gaussian_powerlaw with rotation: none")
    return _scales_cached(_key(design))


def row_covariance(design: dict | None):
    """d × the covariance of a design's row, in the form the prediction risk needs
    (E_pred = (β − β*)ᵀ Cov(x) (β − β*)/2, docs/dmft.md "Diagonal designs"): None for the
    default Gaussian (the identity), the scales s (d,) of a diagonal design, else the (d, d)
    matrix d·Cov(x) (gaussian_powerlaw haar: d·FᵀF = O diag(λ) Oᵀ; data kinds: d × the pool's
    covariance, mean eigenvalue 1). float64, read-only."""
    if design is None or design["kind"] == "gaussian":
        return None
    if is_diagonal(design):
        return diagonal_scales(design)
    if design["kind"] == "gaussian_powerlaw":
        _, factor = powerlaw_factor(design)
        out = factor.T @ factor * design["d"]
    else:
        x = pool(design)
        out = x.T @ x / x.shape[0] * design["d"]
    out.setflags(write=False)
    return out


def design_spectrum(design: dict | None, d: int | None = None) -> np.ndarray:
    """Eigenvalues (d,) float64 of d × a row's covariance, with mean 1 (to rounding),
    ascending: the spectrum whose coordinate-wise
    (diagonal) DMFT ``solve_dmft(design=design_spectrum(...))`` gives (docs/dmft.md "Diagonal
    designs", part "what the spectrum explains"). None or the Gaussian: ones (``d`` needed for
    None); diagonal kinds: the sorted scales; gaussian_powerlaw haar: its λ; data kinds: the
    eigenvalues of the pool's covariance over their mean (clipped at 0 from below)."""
    if design is None or design["kind"] == "gaussian":
        n = int(d if design is None else design["d"])
        return np.ones(n)
    if is_diagonal(design):
        return np.sort(diagonal_scales(design))
    if design["kind"] == "gaussian_powerlaw":
        return np.sort(powerlaw_factor(design)[0])
    x = pool(design)
    ev = np.maximum(np.linalg.eigvalsh(x.T @ x / x.shape[0]), 0.0)
    return ev / ev.mean()


def flat_spectrum(design: dict | None) -> bool:
    """True where the design's covariance is I/d *by construction*, so that its spectrum DMFT is
    the isotropic solve: None and kind ``gaussian``, a data kind with ``whiten: zca`` (the pool's
    own covariance whitened: its :func:`design_spectrum` is 1 to rounding, ~1e-10), ``two_level``
    with ratio 1 and ``gaussian_powerlaw`` with exponent 0. Decided from the specification, without
    building a pool, so planning stays cheap (the pipeline gives such designs the isotropic DMFT
    chunks, docs/dmft.md "Diagonal designs")."""
    if design is None or design["kind"] == "gaussian":
        return True
    if design["kind"] in DATA_KINDS:
        return design["whiten"] == "zca"
    if design["kind"] == "two_level":
        return float(design["ratio"]) == 1.0
    return float(design["exponent"]) == 0.0  # gaussian_powerlaw, either rotation: λ ≡ 1


def dmft_theory(design: dict | None) -> str:
    """What the DMFT of a design's spectrum (:func:`design_spectrum`) is for that design:
    ``isotropic`` (a flat spectrum, :func:`flat_spectrum`: the Gaussian theory, exact for the
    Gaussian kinds), ``exact`` (a diagonal design: its coordinate-wise DMFT), ``spectrum-only``
    (a rotated or data design: the theory of a diagonal design with the same covariance
    eigenvalues, the best a theory that sees only the spectrum can do)."""
    if flat_spectrum(design):
        return "isotropic"
    return "exact" if is_diagonal(design) else "spectrum-only"


@functools.lru_cache(maxsize=16)
def _spectrum_max_cached(key: str) -> float:
    return float(design_spectrum(json.loads(key)).max())


def spectrum_max(design: dict) -> float:
    """Largest value of :func:`design_spectrum` (the spectrum's λ_max over its mean, 1 for a flat
    spectrum without computing it): the factor by which the spectrum DMFT's stability bound is
    below the isotropic one (``pipeline.config._check_steps``). Builds the pool of a data design
    (seconds for image patches); cached per process."""
    return 1.0 if flat_spectrum(design) else _spectrum_max_cached(_key(design))


def spectrum_provenance(design: dict) -> dict:
    """Which spectrum a design's DMFT solved (JSON-able, recorded with each DMFT chunk):
    {"design": name, "theory": :func:`dmft_theory`, "d", "lambda_max" (over the mean),
    "sha256" of :func:`design_spectrum` as float64 bytes (None for a flat spectrum: ones)}."""
    flat = flat_spectrum(design)
    spec = None if flat else design_spectrum(design)
    return {"design": design["name"], "theory": dmft_theory(design), "d": int(design["d"]),
            "lambda_max": 1.0 if flat else float(spec.max()),
            "sha256": None if flat else hashlib.sha256(np.ascontiguousarray(spec, dtype=np.float64).tobytes()).hexdigest()}


def powerlaw_factor(design: dict):
    """(eigenvalues λ (d,) with mean 1, factor F (d, d)) of a gaussian_powerlaw design: a row is
    z @ F with z ~ N(0, I_d), so its covariance is F^T F = O diag(λ) O^T / d."""
    return _powerlaw_cached(_key(design))


class RowSource:
    """Rows of one run seed of a non-Gaussian design, in order: ``rows(have, n)`` gives rows
    ``have .. n-1`` (the leading rows never change when more are asked for)."""

    def __init__(self, design: dict, seed: int, base_seed: int, x_stream: np.random.Generator):
        self.design = design
        self.x_stream = x_stream
        if design["kind"] in DATA_KINDS:
            seq = np.random.SeedSequence(entropy=int(base_seed), spawn_key=(int(seed), 4, int(design["seed"])))
            self._perm = None
            self._perm_rng = np.random.default_rng(seq)

    def rows(self, have: int, n: int) -> np.ndarray:
        kind = self.design["kind"]
        if is_diagonal(self.design):  # z ⊙ √s / √d, z from the Gaussian's stream (s ≡ 1: its bits)
            z = self.x_stream.standard_normal((n - have, self.design["d"]))
            return z * np.sqrt(diagonal_scales(self.design)) / np.sqrt(self.design["d"])
        if kind == "gaussian_powerlaw":
            _, factor = powerlaw_factor(self.design)
            return self.x_stream.standard_normal((n - have, self.design["d"])) @ factor
        data = pool(self.design)
        check_rows(self.design, n)
        if self._perm is None:
            self._perm = self._perm_rng.permutation(data.shape[0])
        return data[self._perm[have:n]]


def spectrum_ratio(design: dict) -> float:
    """Largest eigenvalue of the design's population covariance over its mean eigenvalue
    (1 for the Gaussian; governs the largest stable step, see docs/phenomena.md)."""
    if design["kind"] == "gaussian":
        return 1.0
    if is_diagonal(design):  # the largest coordinate scale (mean 1)
        return float(diagonal_scales(design).max())
    if design["kind"] == "gaussian_powerlaw":
        return float(powerlaw_factor(design)[0].max())
    x = pool(design)
    ev = np.linalg.eigvalsh(x.T @ x / x.shape[0])
    return float(ev[-1] / ev.mean())


def provenance(design: dict) -> dict:
    """Where a design comes from: {"design": spec, "source", "package", "package_version",
    "sha256" (of the preprocessed pool, of the power-law factor, or of a diagonal design's scales s,
    as float64 C-order bytes),
    "rows", "d"}; JSON-able."""
    out = {"design": design, "d": design["d"]}
    kind = design["kind"]
    if kind == "gaussian":
        return {**out, "source": "i.i.d. N(0, 1/d), numpy", "package": "numpy",
                "package_version": np.__version__, "sha256": None, "rows": None}
    if is_diagonal(design):  # gaussian_powerlaw rotation none, two_level: the checksum of the scales s
        arr = diagonal_scales(design)
        src = (f"N(0, diag(j^-{design['exponent']}) / d), no rotation" if kind == "gaussian_powerlaw" else
               f"N(0, diag(s) / d), two levels: fraction {design['fraction']} at ratio {design['ratio']} x the rest")
        pkg = "numpy"
    elif kind == "gaussian_powerlaw":
        arr = powerlaw_factor(design)[1]
        src, pkg = f"N(0, O diag(j^-{design['exponent']}) O^T / d), rotation seed {design['seed']}", "numpy"
    else:
        arr = pool(design)
        src = ("sklearn.datasets.load_sample_images: " + ", ".join(design["images"]) if kind == "image_patches"
               else "sklearn.datasets.load_digits (UCI optical digits, 8x8)")
        pkg = "scikit-learn"
    try:
        version = metadata.version(pkg)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {**out, "source": src, "package": pkg, "package_version": version,
            "sha256": hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float64).tobytes()).hexdigest(),
            "rows": None if kind in ("gaussian_powerlaw", "two_level") else int(arr.shape[0])}
