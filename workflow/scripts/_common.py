"""Helpers shared by the rule scripts (Snakemake puts this folder on sys.path)."""

from __future__ import annotations

import json
import logging
import sys


def setup_logging(log_path: str) -> logging.Logger:
    """Log to the rule's log file (and stderr); uncaught errors land in the log too."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    logger = logging.getLogger("workflow")

    def excepthook(exc_type, exc, tb):
        logger.error("failed", exc_info=(exc_type, exc, tb))

    sys.excepthook = excepthook
    return logger


def plain(obj):
    """Snakemake params (Namedlist/dict subclasses) as plain JSON-able Python objects."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def json_param(smk, name: str):
    """A param the rule passes as canonical JSON (see ``canonical`` in workflow/rules/common.smk)."""
    return json.loads(getattr(smk.params, name))


def full_sweep(smk) -> dict:
    """The whole validated sweep of this job, for provenance: read from the config, which is not
    part of the job's identity (params hold only what the job computes from)."""
    return plain(smk.config["sweeps"][smk.params.sweep_name])
