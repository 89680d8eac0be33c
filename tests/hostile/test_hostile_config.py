"""Hostile configuration: the agent's TOML config and the Pulumi stack config, fed
malformed and extreme values by hypothesis. Each either loads or fails with the error of
its loader whose message starts with the offending key; nothing else may escape."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from infra.config import StackConfig, StackConfigError, load_stack_config
from skyfleet.config.agent import (
    AgentConfig,
    load_agent_config,
    parse_agent_config,
    render_agent_config,
)
from skyfleet.config.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- values a TOML document (or a careless operator) can produce --------------------------

scalars = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)

VALID_AGENT: dict[str, Any] = {
    "node": {"name": "aws-0", "cloud": "aws", "zone": "a", "bind": "127.0.0.1:7470"},
    "join": {"seeds": ["127.0.0.1:7471"]},
    "tls": {"ca": "ca.pem", "cert": "aws-0.pem", "key": "aws-0.key"},
    "membership": {"profile": "local", "probe_interval": 1.0},
    "policy": {"trusted_keys": ["fleet.pub"], "source": "source"},
    "tasks": {"capacity": 4, "sleep_mean": 0.05},
    "agent": {"state_dir": "state", "metrics_bind": "", "log_level": "info"},
}
AGENT_KEYS = [
    (table, key)
    for table, fields in {
        "node": ["name", "cloud", "region", "zone", "bind", "advertise", "labels"],
        "join": ["seeds"],
        "tls": ["ca", "cert", "key"],
        "membership": [
            "profile", "probe_interval", "probe_timeout", "indirect_checks", "gossip_interval",
            "gossip_nodes", "suspicion_mult", "push_pull_interval", "status_interval",
            "packet_budget", "leave_propagate_delay", "awareness_max_multiplier",
            "status_min_transmits",
        ],
        "policy": ["trusted_keys", "source"],
        "tasks": ["capacity", "queue_limit", "handlers", "idempotency_ttl", "latency_decay",
                  "sleep_distribution", "sleep_mean", "sleep_scv"],
        "agent": ["state_dir", "metrics_bind", "log_level"],
    }.items()
    for key in fields
]  # fmt: skip
KEY_PREFIX = re.compile(r"^(config|node|join|tls|membership|policy|tasks|agent)\.")


def with_changes(base: dict[str, Any], changes: list[tuple[tuple[str, str], Any]]) -> dict:
    doc = {table: dict(fields) for table, fields in base.items()}
    for (table, key), value in changes:
        doc.setdefault(table, {})
        if isinstance(doc[table], dict):
            doc[table][key] = value
    return doc


def finite_positive(config: AgentConfig) -> list[str]:
    """Durations and counts the loops divide by or sleep on: each must be a real number
    above zero, or an agent would spin, never fire a timer, or crash long after start.
    The `sleep` handler's mean service time may also be zero ("return at once")."""
    m, t = config.membership, config.tasks
    checks = {
        "membership.probe_interval": m.probe_interval,
        "membership.probe_timeout": m.probe_timeout,
        "membership.gossip_interval": m.gossip_interval,
        "membership.push_pull_interval": m.push_pull_interval,
        "membership.status_interval": m.status_interval,
        "tasks.idempotency_ttl": t.idempotency_ttl,
        "tasks.latency_decay": t.latency_decay,
    }
    bad = [k for k, v in checks.items() if isinstance(v, bool) or not (math.isfinite(v) and v > 0)]
    if isinstance(t.sleep_mean, bool) or not (math.isfinite(t.sleep_mean) and t.sleep_mean >= 0):
        bad.append("tasks.sleep_mean")
    return bad


@BOUNDED
@given(st.lists(st.tuples(st.sampled_from(AGENT_KEYS), values), min_size=1, max_size=4))
@example([(("membership", "probe_interval"), "fast")])
@example([(("membership", "probe_interval"), math.nan)])
@example([(("membership", "probe_interval"), math.inf)])
@example([(("tasks", "sleep_mean"), -1.0)])
@example([(("tasks", "sleep_mean"), 0)])
@example([(("tasks", "sleep_mean"), False)])
@example([(("membership", "indirect_checks"), True)])
@example([(("membership", "status_min_transmits"), 0)])
@example([(("membership", "profile"), [])])
def test_agent_config_values_load_or_name_their_key(changes):
    doc = with_changes(VALID_AGENT, changes)
    base = Path("/etc/skyfleet")
    try:
        config = parse_agent_config(doc, base)
    except ConfigError as exc:
        assert KEY_PREFIX.match(str(exc)), f"error does not name its key: {exc}"
        return
    assert finite_positive(config) == []
    # Whatever loads, the renderer writes back as it loaded (infra and the local fleet
    # write every config through it).
    assert parse_agent_config(tomllib.loads(render_agent_config(config, base)), base) == config


@BOUNDED
@given(st.dictionaries(st.text(max_size=12), values, max_size=6))
def test_agent_config_of_any_shape_loads_or_names_its_key(doc):
    try:
        parse_agent_config(doc)
    except ConfigError as exc:
        assert KEY_PREFIX.match(str(exc)), f"error does not name its key: {exc}"


@BOUNDED
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_agent_config_file_of_any_bytes_is_refused_with_its_path(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("cfg") / "agent.toml"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    try:
        load_agent_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(path)) or KEY_PREFIX.match(message), message


def test_agent_config_file_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_bytes(b'[node]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_agent_config(path)


# --- the stack config ------------------------------------------------------------------

STACK_KEYS = [
    "environment", "clouds", "awsRegion", "awsZones", "awsHostsPerZone", "awsCidr",
    "awsInstanceSize", "gcpRegion", "gcpZones", "adminRanges", "policyFile", "policyVersion",
    "agentPort", "metricsPort", "runtimeVersion",
]  # fmt: skip


def committed_stack(name: str) -> dict[str, str]:
    """The raw strings Pulumi hands the program for a committed stack file (arrays and
    numbers as JSON text)."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    return {
        k.removeprefix("skyfleet:"): v if isinstance(v, str) else json.dumps(v)
        for k, v in doc.items()
        if k.startswith("skyfleet:")
    }


raw_values = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.lists(st.text(max_size=12), max_size=4).map(lambda v: json.dumps(v)),
    st.sampled_from(["", "[]", "{}", "null", "-1", "0", "99999", "1e9", '["x"]', "../x"]),
)


@BOUNDED
@given(
    st.sampled_from(["dev", "local"]),
    st.dictionaries(st.sampled_from(STACK_KEYS), raw_values | st.none(), min_size=1, max_size=4),
)
def test_stack_config_values_load_or_name_their_key(stack, changes):
    raw = {**committed_stack(stack), **changes}
    try:
        config = load_stack_config(raw.get, stack, ROOT)
    except StackConfigError as exc:
        assert str(exc).startswith("skyfleet:"), f"error does not name its key: {exc}"
        return
    assert isinstance(config, StackConfig)


def test_stack_config_nul_in_policy_file_names_its_key():
    raw = {**committed_stack("dev"), "policyFile": "policies/\x00.json"}
    with pytest.raises(StackConfigError, match="^skyfleet:policyFile:"):
        load_stack_config(raw.get, "dev", ROOT)


def test_stack_config_hosts_beyond_the_zone_subnet_name_their_key():
    raw = {**committed_stack("dev"), "awsHostsPerZone": str(10**11)}
    with pytest.raises(StackConfigError, match="^skyfleet:awsHostsPerZone:"):
        load_stack_config(raw.get, "dev", ROOT)


@pytest.mark.parametrize("port", ["0", "-1", "99999"])
def test_stack_config_port_out_of_range_names_its_key(port):
    raw = {**committed_stack("dev"), "agentPort": port}
    with pytest.raises(StackConfigError, match="^skyfleet:agentPort:"):
        load_stack_config(raw.get, "dev", ROOT)


def test_valid_base_document_loads():
    """The documents the generators mutate are valid themselves (else every example
    above would test only the first error)."""
    assert isinstance(parse_agent_config(VALID_AGENT), AgentConfig)
    for stack in ("dev", "local"):
        assert load_stack_config(committed_stack(stack).get, stack, ROOT).environment == stack
