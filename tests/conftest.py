import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def base_config():
    """The shipped config.yaml, as a fresh dict."""
    with open(REPO / "config.yaml") as f:
        return copy.deepcopy(yaml.safe_load(f))


def resolved(config):
    """Validate as the Snakefile does (Snakemake's JSON-schema validation, defaults filled and
    unshared between sweeps, plus the project's type checks) and return it."""
    from dln_kernels.sweep import validate_config

    validate_config(config, SCHEMA)
    return config


def _kernel_backends():
    """Array backends the kernel tests run on: NumPy, the strict array-API namespace (catches any
    NumPy-only call or implicit host conversion in code CuPy will run), and CuPy where a GPU is
    visible. ``DLN_TEST_BACKENDS=numpy,cupy`` (comma-separated) overrides the list."""
    import os

    from dln_kernels.backend import _cupy_or_none

    chosen = os.environ.get("DLN_TEST_BACKENDS")
    if chosen:
        return [b.strip() for b in chosen.split(",") if b.strip()]
    out = ["numpy", "array_api_strict"]
    if _cupy_or_none() is not None:
        out.append("cupy")
    return out


@pytest.fixture(params=_kernel_backends())
def backend(request):
    """Name of an array backend for ``simulate_grid``/``solve_dmft``/``get_namespace``."""
    return request.param
