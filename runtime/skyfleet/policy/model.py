"""The balancing policy document as frozen dataclasses, and its validating parser.

`parse_policy` is the only way a document enters the runtime: it checks the JSON against
`skyfleet.policy.spec.POLICY_SPEC`, then the cross-field rules, and raises one
`PolicyValidationError` listing every problem by field path. The dataclass defaults are
the same constants the spec fills in (`skyfleet.config.policy_defaults`), so
`PolicyDocument(version=3) == parse_policy({"version": 3})`.

The balancer reads these objects; it never sees raw JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from skyfleet.config import policy_defaults as d
from skyfleet.policy.consistency import check_consistency, kind_pattern_covers
from skyfleet.policy.errors import PolicyValidationError
from skyfleet.policy.fields import Errors
from skyfleet.policy.spec import POLICY_SPEC

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True, kw_only=True)
class NoParams:
    """Parameters of round_robin, random, weighted and least_loaded: none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class P2CParams:
    choices: int = d.P2C_CHOICES
    capacity_weighted: bool = d.P2C_CAPACITY_WEIGHTED


@dataclass(frozen=True, slots=True, kw_only=True)
class PeakEwmaParams:
    decay_seconds: float = d.PEAK_EWMA_DECAY_SECONDS
    choices: int = d.PEAK_EWMA_CHOICES


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveParams:
    exploration: float = d.ADAPTIVE_EXPLORATION
    decay_seconds: float = d.ADAPTIVE_DECAY_SECONDS


StrategyParams = NoParams | P2CParams | PeakEwmaParams | AdaptiveParams

PARAMS_TYPES: Mapping[str, type[StrategyParams]] = MappingProxyType(
    {
        "round_robin": NoParams,
        "random": NoParams,
        "weighted": NoParams,
        "least_loaded": NoParams,
        "p2c": P2CParams,
        "peak_ewma": PeakEwmaParams,
        "adaptive": AdaptiveParams,
    }
)
"""The parameter class of each strategy name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Strategy:
    name: str = d.STRATEGY
    params: StrategyParams = field(default_factory=P2CParams)


@dataclass(frozen=True, slots=True, kw_only=True)
class Locality:
    prefer: str = d.LOCALITY_PREFER
    spill_threshold_percent: float = d.SPILL_THRESHOLD_PERCENT
    overprovisioning_factor: float = d.OVERPROVISIONING_FACTOR
    panic_threshold_percent: float = d.PANIC_THRESHOLD_PERCENT


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudSettings:
    weight: float = d.CLOUD_WEIGHT
    relative_cost: float = d.CLOUD_RELATIVE_COST


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudget:
    percent: float = d.RETRY_BUDGET_PERCENT
    min_concurrent: int = d.RETRY_BUDGET_MIN_CONCURRENT


@dataclass(frozen=True, slots=True, kw_only=True)
class Failover:
    max_attempts: int = d.MAX_ATTEMPTS
    per_attempt_timeout_seconds: float = d.PER_ATTEMPT_TIMEOUT_SECONDS
    cross_cloud: bool = d.CROSS_CLOUD_FAILOVER
    retry_budget: RetryBudget = field(default_factory=RetryBudget)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierDetection:
    enabled: bool = d.OUTLIER_DETECTION_ENABLED
    interval_seconds: float = d.OUTLIER_INTERVAL_SECONDS
    base_ejection_seconds: float = d.OUTLIER_BASE_EJECTION_SECONDS
    max_ejection_percent: float = d.OUTLIER_MAX_EJECTION_PERCENT
    consecutive_failures: int = d.OUTLIER_CONSECUTIVE_FAILURES


@dataclass(frozen=True, slots=True, kw_only=True)
class Sessions:
    affinity: str = d.SESSION_AFFINITY
    """none, hash or bounded_hash (`skyfleet.balancing.affinity`)."""
    load_factor: float = d.SESSION_LOAD_FACTOR
    """The bound of bounded_hash; hash and none ignore it."""
    virtual_nodes: int = d.SESSION_VIRTUAL_NODES


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingRule:
    task_kind: str
    """An exact kind, or a prefix ending in `*` (`*` alone matches every kind)."""
    allowed_clouds: tuple[str, ...] = ()
    """Empty means any cloud."""
    allowed_regions: tuple[str, ...] = ()
    """Empty means any region."""

    def matches(self, kind: str) -> bool:
        return kind_pattern_covers(self.task_kind, kind)

    def allows(self, cloud: str, region: str) -> bool:
        return (not self.allowed_clouds or cloud in self.allowed_clouds) and (
            not self.allowed_regions or region in self.allowed_regions
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Routing:
    rules: tuple[RoutingRule, ...] = ()

    def rule_for(self, kind: str) -> RoutingRule | None:
        """The first rule matching `kind`, or None when tasks of that kind run anywhere."""
        return next((r for r in self.rules if r.matches(kind)), None)


def _default_clouds() -> Mapping[str, CloudSettings]:
    return MappingProxyType({c: CloudSettings() for c in d.KNOWN_CLOUDS})


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyDocument:
    """A validated balancing policy. Every cloud of KNOWN_CLOUDS has an entry in `clouds`."""

    version: int
    description: str = ""
    strategy: Strategy = field(default_factory=Strategy)
    locality: Locality = field(default_factory=Locality)
    clouds: Mapping[str, CloudSettings] = field(default_factory=_default_clouds)
    drained_clouds: tuple[str, ...] = ()
    revoked_certificates: frozenset[str] = frozenset()
    """Serials (lowercase hex) of certificates no agent accepts (`security/revocation.py`)."""
    failover: Failover = field(default_factory=Failover)
    outlier_detection: OutlierDetection = field(default_factory=OutlierDetection)
    routing: Routing = field(default_factory=Routing)
    sessions: Sessions = field(default_factory=Sessions)

    def allows(self, task_kind: str, cloud: str, region: str) -> bool:
        """May a task of `task_kind` run on a node in (cloud, region)? Drained clouds and
        the first matching routing rule decide."""
        if cloud in self.drained_clouds:
            return False
        rule = self.routing.rule_for(task_kind)
        return rule is None or rule.allows(cloud, region)

    def to_dict(self) -> dict[str, Any]:
        """The effective document as JSON data, every default written out;
        `parse_policy(doc.to_dict()) == doc`."""
        result = _plain(self)
        assert isinstance(result, dict)
        return result


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def _build(n: dict[str, Any]) -> PolicyDocument:
    """Dataclasses from a normalised, fully validated document."""
    strategy = n["strategy"]
    failover = n["failover"]
    return PolicyDocument(
        version=n["version"],
        description=n["description"],
        strategy=Strategy(
            name=strategy["name"], params=PARAMS_TYPES[strategy["name"]](**strategy["params"])
        ),
        locality=Locality(**n["locality"]),
        clouds=MappingProxyType({k: CloudSettings(**v) for k, v in n["clouds"].items()}),
        drained_clouds=tuple(n["drained_clouds"]),
        revoked_certificates=frozenset(n["revoked_certificates"]),
        failover=Failover(**{**failover, "retry_budget": RetryBudget(**failover["retry_budget"])}),
        outlier_detection=OutlierDetection(**n["outlier_detection"]),
        routing=Routing(
            rules=tuple(
                RoutingRule(
                    task_kind=r["task_kind"],
                    allowed_clouds=tuple(r["allowed_clouds"]),
                    allowed_regions=tuple(r["allowed_regions"]),
                )
                for r in n["routing"]["rules"]
            )
        ),
        sessions=Sessions(**n["sessions"]),
    )


def parse_policy(data: Any) -> PolicyDocument:
    """Validate a policy document (parsed JSON) and return its typed form.

    Raises PolicyValidationError naming every bad field, e.g.
    `failover.max_attempts: must be between 1 and 10, got 0`.
    """
    errors: Errors = []
    normalised = POLICY_SPEC.check(data, "", errors)
    if not errors:
        check_consistency(normalised, errors)
    if errors:
        raise PolicyValidationError.collected(errors)
    return _build(normalised)


def policy_json_schema() -> dict[str, Any]:
    """The document format as JSON Schema (draft 2020-12); `policies/schema.json` is this,
    written by `skyfleet policy schema`. Cross-field rules are not expressible there and
    are only enforced by `parse_policy`."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "Skyfleet balancing policy",
        "description": (
            "A versioned balancing policy, signed and adopted by every agent. Cross-field "
            "rules (not all clouds drained, routing rules that can match) are checked by "
            "`skyfleet policy validate`."
        ),
        **POLICY_SPEC.schema(),
    }
