"""Array backend selection: one array-API code path for NumPy (CPU) and CuPy (GPU).

Kernels receive an array namespace ``xp`` and use only the Python array API standard (2023.12):
``xp.matmul``, ``xp.permute_dims``, ``xp.astype``, ``xp.linalg.diagonal``, … — never a NumPy-only
function or method. NumPy and CuPy are wrapped by ``array_api_compat`` so that they expose the
standard; the test suite also runs the kernels on ``array_api_strict`` (a minimal, strict
namespace) so that nothing NumPy-only or an implicit host conversion hides in the path CuPy runs.

CuPy is an optional import: asking for it explicitly without a GPU is an error, ``auto`` falls
back to NumPy. ``array_api_strict`` is a test-only backend (installed by the ``test`` extra).
"""

from __future__ import annotations

import numpy as np

BACKENDS = ("numpy", "cupy", "auto", "array_api_strict")
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
    """Array-API namespace for ``backend`` in {"numpy", "cupy", "auto", "array_api_strict"}.

    Raises ValueError for an unknown name, RuntimeError for ``cupy`` without a usable GPU and
    ImportError for ``array_api_strict`` when that package is not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown value {backend!r}; expected one of {BACKENDS}")
    if backend == "numpy":
        import array_api_compat.numpy as xnp

        return xnp
    if backend == "array_api_strict":
        import array_api_strict

        return array_api_strict
    cp = _cupy_or_none()
    if cp is None:
        if backend == "cupy":
            raise RuntimeError(
                "backend: 'cupy' was requested but CuPy is not installed or no CUDA device is "
                "visible; install the 'gpu' extra (pip install -e '.[gpu]') or use backend: auto"
            )
        return get_namespace("numpy")
    import array_api_compat.cupy as xcp

    return xcp


def backend_name(xp) -> str:
    """'numpy', 'cupy' or 'array_api_strict' for an array namespace."""
    name = xp.__name__
    if "cupy" in name:
        return "cupy"
    if "strict" in name:
        return "array_api_strict"
    return "numpy"


def resolve_dtype(dtype: str):
    """NumPy float type for a config name ("float64" | "float32"); ValueError otherwise."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: unknown value {dtype!r}; expected one of {tuple(DTYPES)}")
    return DTYPES[dtype]


def xp_dtype(xp, dtype):
    """The namespace's float type matching a NumPy/config dtype (float32 or float64)."""
    name = np.dtype(resolve_dtype(dtype) if isinstance(dtype, str) else dtype).name
    return getattr(xp, name)


def to_device(xp, a, dtype):
    """Copy a host (NumPy) array to the backend with the namespace's ``dtype`` (a NumPy dtype)."""
    return xp.asarray(np.ascontiguousarray(a, dtype=dtype), dtype=xp_dtype(xp, dtype))


def to_numpy(a):
    """Host NumPy copy of an array from any backend (no copy for NumPy arrays).

    CuPy arrays are copied with ``.get()``; other array-API arrays through DLPack.
    """
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get"):
        return a.get()
    try:
        return np.from_dlpack(a)
    except (TypeError, BufferError, AttributeError, RuntimeError):
        return np.asarray(a)


def sync(xp) -> None:
    """Wait for queued device work (CuPy); a no-op on host backends. For timing only."""
    if backend_name(xp) == "cupy":
        import cupy

        cupy.cuda.Stream.null.synchronize()
