"""policies/: the schema file matches the code, and every example is valid under both the
agent's parser and a standard JSON Schema validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from skyfleet.policy.model import PolicyDocument, parse_policy, policy_json_schema

POLICIES = Path(__file__).resolve().parents[2] / "policies"
EXAMPLES = sorted(p for p in POLICIES.glob("*.json") if p.name != "schema.json")
STORIES = {
    "default.json",
    "latency-first.json",
    "cost-first.json",
    "drain-azure.json",
    "data-residency-eu.json",
}


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_file_is_current() -> None:
    assert load(POLICIES / "schema.json") == policy_json_schema(), (
        "regenerate: skyfleet policy schema --out policies/schema.json"
    )


def test_every_story_has_an_example() -> None:
    assert STORIES <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path, validator: jsonschema.Draft202012Validator) -> None:
    data = load(path)
    validator.validate(data)
    doc = parse_policy(data)
    assert doc.description


def test_default_example_is_the_defaults() -> None:
    doc = parse_policy(load(POLICIES / "default.json"))
    assert doc == PolicyDocument(version=1, description=doc.description)


def test_stories_say_what_they_claim() -> None:
    assert parse_policy(load(POLICIES / "drain-azure.json")).drained_clouds == ("azure",)
    assert parse_policy(load(POLICIES / "drain-azure.json")).version == 2
    assert parse_policy(load(POLICIES / "latency-first.json")).strategy.name == "peak_ewma"
    cost = parse_policy(load(POLICIES / "cost-first.json"))
    cheapest = min(cost.clouds, key=lambda c: cost.clouds[c].relative_cost)
    assert cheapest == max(cost.clouds, key=lambda c: cost.clouds[c].weight)
    eu = parse_policy(load(POLICIES / "data-residency-eu.json"))
    assert not eu.allows("pii.records", "aws", "us-east-1")
    assert eu.allows("pii.records", "gcp", "europe-west4")
    assert eu.allows("chat", "azure", "eastus")


# Structural mistakes: the exported schema must reject them just as the parser does.
SCHEMA_REJECTS = [
    {"version": 0},
    {"version": 1, "extra": True},
    {"version": 1, "strategy": {"name": "p2c", "params": {"decay_seconds": 1}}},
    {"version": 1, "strategy": {"params": {"decay_seconds": 1}}},
    {"version": 1, "strategy": {"name": "peak_ewma", "params": {"capacity_weighted": True}}},
    {"version": 1, "failover": {"max_attempts": 11}},
    {"version": 1, "clouds": {"oracle": {}}},
    {"version": 1, "drained_clouds": ["aws", "aws"]},
    {"version": 1, "routing": {"rules": [{"task_kind": "a*b", "allowed_clouds": ["aws"]}]}},
    {"version": 1, "sessions": {"load_factor": 1}},
    {"version": 1, "sessions": {"affinity": "sticky"}},
    {"strategy": {"name": "p2c"}},
]


@pytest.mark.parametrize("data", SCHEMA_REJECTS)
def test_schema_and_parser_agree_on_rejection(
    data: dict, validator: jsonschema.Draft202012Validator
) -> None:
    assert not validator.is_valid(data)
    with pytest.raises(ValueError):
        parse_policy(data)


def test_schema_accepts_strategy_without_name_as_default() -> None:
    validator = jsonschema.Draft202012Validator(policy_json_schema())
    data = {"version": 1, "strategy": {"params": {"choices": 3}}}
    assert validator.is_valid(data)
    assert parse_policy(data).strategy.name == "p2c"
