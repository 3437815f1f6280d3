"""Array backend selection: one code path for NumPy (CPU) and CuPy (GPU).

Kernels receive the namespace ``xp`` and only use functions NumPy and CuPy share. CuPy is an
optional import: asking for it explicitly without a GPU is an error, ``auto`` falls back to NumPy.
"""

from __future__ import annotations

import numpy as np

BACKENDS = ("numpy", "cupy", "auto")
DTYPES = {"float64": np.float64, "float32": np.float32}


def _cupy_or_none():
    try:
        import cupy  # noqa: F401

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, or CUDA present but unusable
        return None


def get_namespace(backend: str = "numpy"):
    """Return the array module for ``backend`` in {"numpy", "cupy", "auto"}."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown value {backend!r}; expected one of {BACKENDS}")
    if backend == "numpy":
        return np
    cp = _cupy_or_none()
    if cp is None:
        if backend == "cupy":
            raise RuntimeError(
                "backend: 'cupy' was requested but CuPy is not installed or no CUDA device is "
                "visible; install the 'gpu' extra (pip install -e '.[gpu]') or use backend: auto"
            )
        return np
    return cp


def backend_name(xp) -> str:
    """'numpy' or 'cupy' for an array module."""
    return "cupy" if xp.__name__.startswith("cupy") else "numpy"


def resolve_dtype(dtype: str):
    if dtype not in DTYPES:
        raise ValueError(f"dtype: unknown value {dtype!r}; expected one of {tuple(DTYPES)}")
    return DTYPES[dtype]


def to_numpy(a):
    """Host copy of an array from either backend (no copy for NumPy arrays)."""
    if hasattr(a, "get"):
        return a.get()
    return np.asarray(a)
