"""Rules across fields that a JSON Schema cannot express.

Each catches a document that is well-formed yet cannot do what its author meant: a drain
that leaves no cloud, a routing rule that allows nothing, or one that can never match
because an earlier rule takes all its tasks. They run on the normalised document (defaults
filled in), after the structural checks passed.
"""

from __future__ import annotations

from typing import Any

from skyfleet.config.policy_defaults import KNOWN_CLOUDS
from skyfleet.policy.fields import Errors


def kind_pattern_covers(earlier: str, later: str) -> bool:
    """True if every task kind matched by `later` is also matched by `earlier`.

    A pattern is an exact kind, or a prefix ending in `*`.
    """
    if earlier.endswith("*"):
        return later.removesuffix("*").startswith(earlier[:-1])
    return earlier == later


def check_consistency(doc: dict[str, Any], errors: Errors) -> None:
    """Append an error for each cross-field rule `doc` breaks."""
    drained = set(doc["drained_clouds"])
    if drained == set(KNOWN_CLOUDS):
        errors.append(("drained_clouds", "drains every cloud; tasks would have nowhere to run"))
    rules = doc["routing"]["rules"]
    for i, rule in enumerate(rules):
        path = f"routing.rules[{i}]"
        if not rule["allowed_clouds"] and not rule["allowed_regions"]:
            errors.append(
                (path, "names neither allowed_clouds nor allowed_regions, so it restricts nothing")
            )
        if rule["allowed_clouds"] and drained.issuperset(rule["allowed_clouds"]):
            errors.append(
                (
                    f"{path}.allowed_clouds",
                    f"every allowed cloud is drained ({', '.join(rule['allowed_clouds'])}); "
                    f"tasks of kind {rule['task_kind']!r} could not run",
                )
            )
        for j, earlier in enumerate(rules[:i]):
            if kind_pattern_covers(earlier["task_kind"], rule["task_kind"]):
                errors.append(
                    (
                        f"{path}.task_kind",
                        f"never matches: routing.rules[{j}] ({earlier['task_kind']!r}) "
                        f"comes first and covers {rule['task_kind']!r}",
                    )
                )
                break
