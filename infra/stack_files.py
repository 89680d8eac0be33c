"""A stack's configuration as the Pulumi CLI hands it to the program, read from the files.

The CLI merges `Pulumi.<stack>.yaml` over the defaults `Pulumi.yaml` declares (and refuses
a stack that leaves a declared key without a default unset). Code that needs a stack's
plain config without running the engine — the guardrail pack's config, tests under
engine mocks — reads it here, merged the same way: values as the raw strings the program
sees (arrays and objects as JSON), secure values left out (only the engine decrypts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class StackFileError(ValueError):
    """A project or stack file is missing or malformed; the message names it."""


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise StackFileError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: expected a mapping at the top")
    return doc


def project_schema(root: Path) -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's `config:` declarations, by full key."""
    config = _load(root / "Pulumi.yaml").get("config") or {}
    return {k: v if isinstance(v, dict) else {"default": v} for k, v in config.items()}


def missing_keys(root: Path, stack: str) -> list[str]:
    """Declared keys without a default that the stack leaves unset: what the CLI would
    refuse the stack for ("Stack '<stack>' is missing configuration value ...")."""
    values = _load(root / f"Pulumi.{stack}.yaml").get("config") or {}
    return sorted(k for k, decl in project_schema(root).items()
                  if "default" not in decl and "value" not in decl and k not in values)


def stack_config(root: Path, stack: str) -> dict[str, str]:
    """Full key -> raw value: the stack's own values over the project's defaults."""
    merged = {k: _raw(decl["default"]) for k, decl in project_schema(root).items()
              if "default" in decl}
    for key, value in (_load(root / f"Pulumi.{stack}.yaml").get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue
        merged[key] = _raw(value)
    return merged
