"""Field-level differences between two policies, as an operator reads them in review:

    ~ locality.overprovisioning_factor: 1.4 -> 1.2
    + routing.rules[1]: {"task_kind": "eu.*", ...}
    - drained_clouds[0]: "azure"

Effective documents are compared (defaults written out), so writing a default explicitly
is no change, and a changed default in a new release shows up wherever it applies.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from skyfleet.policy.fields import join
from skyfleet.policy.model import PolicyDocument


class ChangeKind(enum.StrEnum):
    ADDED = "+"
    REMOVED = "-"
    CHANGED = "~"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    path: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind is ChangeKind.ADDED:
            return f"+ {self.path}: {_show(self.new)}"
        if self.kind is ChangeKind.REMOVED:
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = join(path, key)
            if key not in new:
                out.append(Change(ChangeKind.REMOVED, sub, old=old[key]))
            elif key not in old:
                out.append(Change(ChangeKind.ADDED, sub, new=new[key]))
            else:
                _diff(old[key], new[key], sub, out)
    elif _is_record_list(old) and _is_record_list(new):
        # Routing rules: compare by position, since order decides which rule applies.
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                out.append(Change(ChangeKind.REMOVED, sub, old=old[i]))
            elif i >= len(old):
                out.append(Change(ChangeKind.ADDED, sub, new=new[i]))
            else:
                _diff(old[i], new[i], sub, out)
    elif old != new or type(old) is not type(new):
        out.append(Change(ChangeKind.CHANGED, path, old=old, new=new))


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def diff_policies(old: PolicyDocument, new: PolicyDocument) -> list[Change]:
    """Every field whose effective value differs, in document order."""
    out: list[Change] = []
    _diff(old.to_dict(), new.to_dict(), "", out)
    return out
