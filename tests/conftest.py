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
    """Validate with Snakemake's JSON-schema validation (fills defaults) and return it."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA))
    return config
