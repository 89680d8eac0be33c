"""The policy document model: defaults, field-path errors, cross-field rules, matching."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skyfleet.config import policy_defaults as d
from skyfleet.policy.errors import PolicyValidationError
from skyfleet.policy.model import (
    NoParams,
    P2CParams,
    PeakEwmaParams,
    PolicyDocument,
    RoutingRule,
    Sessions,
    parse_policy,
)


def errors_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(PolicyValidationError) as info:
        parse_policy(data)
    return info.value.errors


def test_minimal_document_gets_every_default() -> None:
    doc = parse_policy({"version": 7})
    assert doc == PolicyDocument(version=7)
    assert doc.strategy.name == d.STRATEGY
    assert doc.strategy.params == P2CParams(choices=d.P2C_CHOICES)
    assert doc.locality.overprovisioning_factor == d.OVERPROVISIONING_FACTOR
    assert doc.locality.panic_threshold_percent == d.PANIC_THRESHOLD_PERCENT
    assert doc.failover.max_attempts == d.MAX_ATTEMPTS
    assert doc.failover.retry_budget.percent == d.RETRY_BUDGET_PERCENT
    assert doc.failover.retry_budget.min_concurrent == d.RETRY_BUDGET_MIN_CONCURRENT
    assert doc.outlier_detection.max_ejection_percent == d.OUTLIER_MAX_EJECTION_PERCENT
    assert set(doc.clouds) == set(d.KNOWN_CLOUDS)
    assert doc.clouds["gcp"].weight == d.CLOUD_WEIGHT
    assert doc.sessions == Sessions(affinity="none")
    assert doc.sessions.load_factor == d.SESSION_LOAD_FACTOR


def test_partial_section_keeps_defaults_of_the_rest() -> None:
    doc = parse_policy({"version": 1, "failover": {"retry_budget": {"percent": 5}}})
    assert doc.failover.retry_budget.percent == 5.0
    assert doc.failover.retry_budget.min_concurrent == d.RETRY_BUDGET_MIN_CONCURRENT
    assert doc.failover.max_attempts == d.MAX_ATTEMPTS


def test_to_dict_round_trips() -> None:
    data = {
        "version": 4,
        "strategy": {"name": "peak_ewma", "params": {"decay_seconds": 5}},
        "clouds": {"aws": {"weight": 2}},
        "drained_clouds": ["gcp"],
        "routing": {"rules": [{"task_kind": "eu.*", "allowed_regions": ["eu-west-1"]}]},
        "sessions": {"affinity": "bounded_hash", "load_factor": 1.5},
    }
    doc = parse_policy(data)
    plain = doc.to_dict()
    assert plain["sessions"] == {
        "affinity": "bounded_hash",
        "load_factor": 1.5,
        "virtual_nodes": d.SESSION_VIRTUAL_NODES,
    }
    assert plain["strategy"] == {
        "name": "peak_ewma",
        "params": {"decay_seconds": 5.0, "choices": 2},
    }
    assert plain["routing"]["rules"][0]["allowed_clouds"] == []
    assert parse_policy(plain) == doc


def test_parse_does_not_alias_the_input() -> None:
    data = {"version": 1, "drained_clouds": ["azure"]}
    doc = parse_policy(data)
    data["drained_clouds"].append("gcp")
    assert doc.drained_clouds == ("azure",)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("round_robin", {}, NoParams()),
        ("least_loaded", {}, NoParams()),
        ("p2c", {"choices": 3}, P2CParams(choices=3, capacity_weighted=True)),
        ("peak_ewma", {}, PeakEwmaParams(decay_seconds=d.PEAK_EWMA_DECAY_SECONDS)),
    ],
)
def test_strategy_params_per_strategy(name: str, params: dict, expected: object) -> None:
    doc = parse_policy({"version": 1, "strategy": {"name": name, "params": params}})
    assert doc.strategy.name == name
    assert doc.strategy.params == expected


# (document fragment merged over {"version": 1}, expected path, fragment of the message)
INVALID_CASES = [
    ({"revoked_certificates": ["ABC"]}, "revoked_certificates[0]", "lowercase hex"),
    ({"revoked_certificates": ["ab", "ab"]}, "revoked_certificates[1]", "repeats"),
    ({"revoked_certificates": ["a" * 41]}, "revoked_certificates[0]", "length must be"),
    ({"revoked_certificates": "ab"}, "revoked_certificates", "expected an array"),
    ({"version": 0}, "version", "must be between 1 and"),
    ({"version": "3"}, "version", "expected an integer, got string"),
    ({"version": True}, "version", "expected an integer, got boolean"),
    ({"version": 1.0}, "version", "expected an integer, got number"),
    ({"versoin": 2}, "versoin", "unknown key"),
    ({"strategy": {"name": "fastest"}}, "strategy.name", "must be one of"),
    (
        {"strategy": {"name": "p2c", "params": {"decay_seconds": 3}}},
        "strategy.params.decay_seconds",
        "unknown key (known: choices, capacity_weighted)",
    ),
    (
        {"strategy": {"name": "random", "params": {"choices": 2}}},
        "strategy.params.choices",
        "unknown key (known: none)",
    ),
    (
        {"strategy": {"name": "p2c", "params": {"choices": 1}}},
        "strategy.params.choices",
        "must be between 2 and 5, got 1",
    ),
    (
        {"strategy": {"name": "peak_ewma", "params": {"decay_seconds": 0}}},
        "strategy.params.decay_seconds",
        "must be greater than 0",
    ),
    ({"strategy": {"name": "p2c", "mode": "x"}}, "strategy.mode", "unknown key"),
    ({"strategy": "p2c"}, "strategy", "expected an object, got string"),
    ({"locality": {"prefer": "continent"}}, "locality.prefer", "must be one of zone, region"),
    (
        {"locality": {"overprovisioning_factor": 0.9}},
        "locality.overprovisioning_factor",
        "must be at least 1 and at most 10, got 0.9",
    ),
    (
        {"locality": {"panic_threshold_percent": 101}},
        "locality.panic_threshold_percent",
        "must be at least 0 and at most 100, got 101",
    ),
    (
        {"locality": {"spill_threshold_percent": float("nan")}},
        "locality.spill_threshold_percent",
        "must be a finite number",
    ),
    ({"clouds": {"oracle": {"weight": 1}}}, "clouds.oracle", "unknown key (known: aws, azure"),
    ({"clouds": {"aws": {"weight": 0}}}, "clouds.aws.weight", "must be greater than 0"),
    ({"clouds": {"gcp": {"cost": 1}}}, "clouds.gcp.cost", "unknown key"),
    ({"drained_clouds": ["azrue"]}, "drained_clouds[0]", "must be one of aws, azure, gcp"),
    ({"drained_clouds": ["aws", "aws"]}, "drained_clouds[1]", "repeats drained_clouds[0]"),
    ({"drained_clouds": "aws"}, "drained_clouds", "expected an array, got string"),
    ({"failover": {"max_attempts": 0}}, "failover.max_attempts", "must be between 1 and 10, got 0"),
    (
        {"failover": {"max_attempts": 11}},
        "failover.max_attempts",
        "must be between 1 and 10, got 11",
    ),
    (
        {"failover": {"per_attempt_timeout_seconds": -1}},
        "failover.per_attempt_timeout_seconds",
        "must be greater than 0",
    ),
    ({"failover": {"cross_cloud": "yes"}}, "failover.cross_cloud", "expected true or false"),
    (
        {"failover": {"retry_budget": {"percent": 120}}},
        "failover.retry_budget.percent",
        "at most 100, got 120",
    ),
    (
        {"failover": {"retry_budget": {"min_concurrent": -1}}},
        "failover.retry_budget.min_concurrent",
        "must be between 0 and",
    ),
    (
        {"outlier_detection": {"consecutive_failures": 0}},
        "outlier_detection.consecutive_failures",
        "must be between 1 and 1000, got 0",
    ),
    (
        {"outlier_detection": {"interval_seconds": 0}},
        "outlier_detection.interval_seconds",
        "must be greater than 0",
    ),
    (
        {"routing": {"rules": [{"allowed_clouds": ["aws"]}]}},
        "routing.rules[0].task_kind",
        "required",
    ),
    (
        {"routing": {"rules": [{"task_kind": "a*b", "allowed_clouds": ["aws"]}]}},
        "routing.rules[0].task_kind",
        "optionally ending in '*'",
    ),
    (
        {"routing": {"rules": [{"task_kind": "eu", "allowed_regions": ["EU West"]}]}},
        "routing.rules[0].allowed_regions[0]",
        "must be a region name",
    ),
    (
        {"routing": {"rules": [{"task_kind": "eu", "allowed_clouds": ["aws"], "note": ""}]}},
        "routing.rules[0].note",
        "unknown key",
    ),
    ({"routing": []}, "routing", "expected an object, got array"),
    (
        {"sessions": {"affinity": "sticky"}},
        "sessions.affinity",
        "must be one of none, hash, bounded_hash, got 'sticky'",
    ),
    (
        {"sessions": {"load_factor": 1}},
        "sessions.load_factor",
        "must be greater than 1 and at most 10, got 1",
    ),
    ({"sessions": {"load_factor": "1.5"}}, "sessions.load_factor", "expected a number"),
    (
        {"sessions": {"virtual_nodes": 0}},
        "sessions.virtual_nodes",
        "must be between 1 and 1000, got 0",
    ),
    ({"sessions": {"factor": 2}}, "sessions.factor", "unknown key (known: affinity,"),
    ({"description": 5}, "description", "expected a string"),
]


@pytest.mark.parametrize(("fragment", "path", "message"), INVALID_CASES)
def test_invalid_field_is_named(fragment: dict, path: str, message: str) -> None:
    errors = errors_of({"version": 1, **fragment})
    assert any(p == path and message in m for p, m in errors), errors


def test_str_is_path_colon_message() -> None:
    with pytest.raises(PolicyValidationError) as info:
        parse_policy({"version": 1, "failover": {"max_attempts": 0}})
    assert str(info.value) == "failover.max_attempts: must be between 1 and 10, got 0"
    assert info.value.path == "failover.max_attempts"


def test_all_errors_are_collected() -> None:
    errors = errors_of(
        {
            "failover": {"max_attempts": 0},
            "locality": {"prefer": "moon"},
            "extra": 1,
            "drained_clouds": ["x"],
        }
    )
    assert {p for p, _ in errors} == {
        "version",
        "failover.max_attempts",
        "locality.prefer",
        "extra",
        "drained_clouds[0]",
    }


@pytest.mark.parametrize("data", [[], "policy", None, 3])
def test_document_must_be_an_object(data: Any) -> None:
    assert errors_of(data)[0][0] == "(document)"


CONSISTENCY_CASES = [
    ({"drained_clouds": ["aws", "azure", "gcp"]}, "drained_clouds", "drains every cloud"),
    (
        {"routing": {"rules": [{"task_kind": "x"}]}},
        "routing.rules[0]",
        "names neither allowed_clouds nor allowed_regions",
    ),
    (
        {
            "drained_clouds": ["azure"],
            "routing": {"rules": [{"task_kind": "win.*", "allowed_clouds": ["azure"]}]},
        },
        "routing.rules[0].allowed_clouds",
        "every allowed cloud is drained (azure)",
    ),
    (
        {
            "routing": {
                "rules": [
                    {"task_kind": "eu.*", "allowed_clouds": ["aws"]},
                    {"task_kind": "eu.pii", "allowed_clouds": ["gcp"]},
                ]
            }
        },
        "routing.rules[1].task_kind",
        "never matches: routing.rules[0] ('eu.*')",
    ),
    (
        {
            "routing": {
                "rules": [
                    {"task_kind": "a", "allowed_clouds": ["aws"]},
                    {"task_kind": "a", "allowed_clouds": ["gcp"]},
                ]
            }
        },
        "routing.rules[1].task_kind",
        "never matches",
    ),
]


@pytest.mark.parametrize(("fragment", "path", "message"), CONSISTENCY_CASES)
def test_cross_field_rules(fragment: dict, path: str, message: str) -> None:
    errors = errors_of({"version": 1, **fragment})
    assert any(p == path and message in m for p, m in errors), errors


def test_narrow_rule_before_wide_rule_is_fine() -> None:
    doc = parse_policy(
        {
            "version": 1,
            "routing": {
                "rules": [
                    {"task_kind": "eu.pii", "allowed_clouds": ["gcp"]},
                    {"task_kind": "eu.*", "allowed_clouds": ["aws"]},
                ]
            },
        }
    )
    assert doc.routing.rule_for("eu.pii").allowed_clouds == ("gcp",)
    assert doc.routing.rule_for("eu.chat").allowed_clouds == ("aws",)
    assert doc.routing.rule_for("us.chat") is None


@pytest.mark.parametrize(
    ("pattern", "kind", "matches"),
    [
        ("eu.chat", "eu.chat", True),
        ("eu.chat", "eu.chat2", False),
        ("eu.*", "eu.chat", True),
        ("eu.*", "eu.", True),
        ("eu.*", "us.chat", False),
        ("*", "anything", True),
    ],
)
def test_rule_matching(pattern: str, kind: str, matches: bool) -> None:
    assert RoutingRule(task_kind=pattern, allowed_clouds=("aws",)).matches(kind) is matches


@pytest.mark.parametrize(
    ("kind", "cloud", "region", "allowed"),
    [
        ("pii.x", "aws", "eu-west-1", True),
        ("pii.x", "aws", "us-east-1", False),
        ("pii.x", "azure", "westeurope", False),
        ("chat", "azure", "eastus", False),  # drained
        ("chat", "gcp", "us-central1", True),
    ],
)
def test_document_allows(kind: str, cloud: str, region: str, allowed: bool) -> None:
    doc = parse_policy(
        {
            "version": 1,
            "drained_clouds": ["azure"],
            "routing": {
                "rules": [
                    {
                        "task_kind": "pii.*",
                        "allowed_clouds": ["aws", "gcp"],
                        "allowed_regions": ["eu-west-1", "europe-west4"],
                    }
                ]
            },
        }
    )
    assert doc.allows(kind, cloud, region) is allowed


def test_validation_never_mutates_input() -> None:
    data = {"version": 1, "failover": {}}
    before = copy.deepcopy(data)
    parse_policy(data)
    assert data == before


def test_revoked_certificates_are_a_set_of_serials() -> None:
    doc = parse_policy({"version": 3, "revoked_certificates": ["1f", "a0b1"]})
    assert doc.revoked_certificates == frozenset({"1f", "a0b1"})
    assert doc.to_dict()["revoked_certificates"] == ["1f", "a0b1"]
    assert parse_policy(doc.to_dict()) == doc
    assert parse_policy({"version": 1}).revoked_certificates == frozenset()
