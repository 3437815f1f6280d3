"""The refusal of a configuration: :class:`ConfigError` and its one-line form (:func:`refuse`)."""

from __future__ import annotations

import re


class ConfigError(ValueError):
    """A configuration value the pipeline cannot run with.

    The message's first line is ``sweep NAME: KEY = VALUE: why (what would pass)`` (``KEY = VALUE:
    why`` outside a sweep); details, such as the schema's own report, follow on later lines
    (:func:`refuse`)."""


def show(value) -> str:
    """A config value as the user wrote it in YAML: ``true``, ``pm``, ``[0.5, 1.0]``, ``{kind: constant}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return "null" if value is None else str(value)


def refuse(where: str, value, why: str, fix: str | None = None, details: str | None = None) -> ConfigError:
    """The ConfigError for the key path ``where`` as the user reads it (``sweeps.tiny.grid.alpha``,
    ``sweep``): first line ``sweep tiny: grid.alpha = [0.5]: why (fix)``, then ``details``."""
    m = re.fullmatch(r"sweeps\.([^.\[]+)\.?(.*)", where)
    head = f"sweep {m[1]}: {m[2] or 'the sweep'}" if m else where
    line = f"{head} = {show(value)}: {why}" + (f" ({fix})" if fix else "")
    return ConfigError(line + (f"\n{details}" if details else ""))


def refuse_message(message: str, root: dict, prefix: str = "") -> ConfigError:
    """:func:`refuse` for a lower layer's message ``KEY: why`` (e.g. ``prior.kind: unknown value``),
    the value looked up in ``root`` (the config, or a sweep with ``prefix`` ``sweeps.NAME.``)."""
    where, _, why = message.partition(": ")
    value = _lookup(root, where.removeprefix(prefix))
    return refuse(where, "(not set)" if value is None else value, why or message)


def _lookup(root, path: str):
    """The value at a dotted key path with list indices (``design[1].d``); None where absent."""
    node = root
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            node = node[i] if isinstance(node, list) and i < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
    return node
