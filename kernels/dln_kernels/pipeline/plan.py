"""``python -m dln_kernels.pipeline.plan SWEEP [SWEEP …] [--configfile FILE]``: check the config as the
workflow does before its DAG (``config.check_config``) and print each sweep's plan (runs, jobs,
memory, disk, core-hours: ``budget.plan_of``); exit 1 with the one-line refusal otherwise."""

from __future__ import annotations

import argparse
import sys

import yaml

from dln_kernels.pipeline.budget import plan_of
from dln_kernels.pipeline.config import ConfigError, check_config


def main(argv=None) -> int:
    """``python -m dln_kernels.pipeline.plan SWEEP [--configfile FILE]``: check the config as the
    workflow does (without Snakemake's DAG) and print the sweep's plan; exit 1 with the refusal."""
    parser = argparse.ArgumentParser(prog="python -m dln_kernels.pipeline.plan", description="print a sweep's plan (runs, jobs, memory, disk, core-hours)")
    parser.add_argument("sweep", nargs="+", help="sweep name(s) of the config")
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--schema", default="workflow/schemas/config.schema.yaml")
    args = parser.parse_args(argv)
    with open(args.configfile) as f:
        config = yaml.safe_load(f)
    config["sweep"] = args.sweep
    try:
        check_config(config, args.schema)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for name in args.sweep:
        print(plan_of(name, config["sweeps"][name]).table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
