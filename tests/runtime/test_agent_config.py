"""The agent config file: what parses, errors that name the bad key, and the one
renderer every config producer uses, which the parser reads back unchanged."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import fields, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import bootstrap
from infra.topology import HostSpec
from skyfleet.config.agent import (
    NODE_NAME,
    SECRET_KEYS,
    AgentConfig,
    NodeIdentity,
    PolicySettings,
    TlsFiles,
    load_agent_config,
    parse_agent_config,
    render_agent_config,
)
from skyfleet.config.errors import ConfigError
from skyfleet.config.membership import MembershipConfig, membership_preset
from skyfleet.config.tasks import TaskSettings
from skyfleet.localfleet.layout import AgentSpec, FleetLayout

BASE = {
    "node": {"name": "aws-1a-0", "cloud": "aws", "bind": "127.0.0.1:7470"},
    "tls": {"ca": "ca.pem", "cert": "n.pem", "key": "n.key"},
}


def with_(section: str, **values: object) -> dict:
    doc = {k: dict(v) for k, v in BASE.items()}
    doc.setdefault(section, {}).update(values)
    return doc


def test_minimal_config_gets_lan_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg = parse_agent_config(BASE, base_dir=tmp_path)
    assert cfg.node.address == "127.0.0.1:7470"  # advertise defaults to bind
    assert cfg.membership.probe_interval == 1.0 and cfg.membership.gossip_nodes == 3
    assert cfg.tls.ca == tmp_path / "ca.pem"


def test_profile_and_override() -> None:
    cfg = parse_agent_config(with_("membership", profile="wan", probe_timeout=2.0))
    assert cfg.membership.probe_interval == 5.0
    assert cfg.membership.probe_timeout == 2.0


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (with_("node", bind="7470"), "node.bind"),
        (with_("node", bind="127.0.0.1:99999"), "node.bind"),
        (with_("node", advertise="0.0.0.0:7470"), "node.advertise"),
        (with_("node", name="has space"), "node.name"),
        (with_("node", colour="blue"), "node.colour"),
        (with_("join", seeds=["10.0.0.1"]), "join.seeds[0]"),
        (with_("membership", profile="moon"), "membership.profile"),
        (with_("membership", probe_timeout=2.0), "membership.probe_timeout"),
        (with_("membership", gossip_nodes=0), "membership.gossip_nodes"),
        (with_("membership", warp=9), "warp"),
        (with_("agent", log_level="loud"), "agent.log_level"),
        (with_("agent", metrics_bind="nope"), "agent.metrics_bind"),
        (with_("agent", shutdown_grace=-1), "agent.shutdown_grace"),
        (with_("agent", shutdown_grace=True), "agent.shutdown_grace"),
        (with_("agent", shutdown_grace="5s"), "agent.shutdown_grace"),
        ({"node": BASE["node"]}, "tls.ca"),
        (with_("handlers", assistant="x"), "handlers.assistant: expected a table"),
        (with_("handlers", assistant={"headers": {"a": "b"}}), "handlers.assistant.headers"),
        (with_("handlers", assistant={"when": [[1]]}), "handlers.assistant.when"),
        (with_("handlers", assistant={"t": math.nan}), "handlers.assistant.t"),
        (with_("handlers", assistant={"api_key": "sk-1"}), "handlers.assistant.api_key: a secret"),
    ],
)
def test_bad_values_name_their_key(doc: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_agent_config(doc)
    assert key in str(info.value)


def test_handler_tables_are_kept_as_written() -> None:
    doc = with_("handlers", assistant={
        "base_url": "http://127.0.0.1:8000/v1", "api_key_env": "MODEL_KEY", "read_timeout": 30,
        "stream": True, "stop": ["\n\n", "END"],
    }, echo={})
    cfg = parse_agent_config(doc)
    assert cfg.handler_config == doc["handlers"]
    assert parse_agent_config(BASE).handler_config == {}


def test_a_secret_in_a_handler_table_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        parse_agent_config(with_("handlers", assistant={"token": "s3cr3t"}))
    assert "s3cr3t" not in str(info.value) and "token_env" in str(info.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[node\n")
    with pytest.raises(ConfigError, match="agent.toml: not valid TOML"):
        load_agent_config(path)


# --- rendering ------------------------------------------------------------------------

TRICKY = ['"', "\\", "\n", "\r\n", "\t", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff",
          "é", "日本", "😀", "'''", '"""', "#", "[x]", "a = 1", "\\u0041", " "]  # fmt: skip
"""What a TOML writer gets wrong: quotes, escapes, controls TOML forbids raw, line
breaks YAML or an editor would act on, characters beyond the BMP, TOML syntax."""
strings = st.text(max_size=10) | st.lists(
    st.sampled_from(TRICKY) | st.text(max_size=3), max_size=4
).map("".join)
host_ports = st.builds(
    lambda host, port: f"{host}:{port}", strings.filter(bool), st.integers(1, 65535)
)
ints = st.integers(0, 2**63 - 1)
non_negative = st.floats(0, 1e12) | st.sampled_from([math.inf, 0.1, 1e-300, 5e-324]) | ints
BASE_DIRS = [Path("/etc/skyfleet"), Path("."), Path("fleet/agents"), Path("/tmp/a b/agents")]

S = TypeVar("S", MembershipConfig, TaskSettings)


scalars = (strings | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False))
handler_tables = st.dictionaries(
    strings,
    st.dictionaries(strings.filter(lambda k: k not in SECRET_KEYS),
                    scalars | st.lists(scalars, max_size=3), max_size=4),
    max_size=2,
)


def changed(draw: st.DrawFn, start: S, values: dict[str, st.SearchStrategy[Any]]) -> S:
    """`start` with some of its settings changed, each change kept only if the result
    still validates: every draw is valid, and none is rejected."""
    for name in draw(st.lists(st.sampled_from(sorted(values)), unique=True, max_size=6)):
        candidate = replace(start, **{name: draw(values[name])})
        try:
            candidate.validate()
        except ValueError:
            continue
        start = candidate
    return start


@st.composite
def configs(draw: st.DrawFn) -> tuple[AgentConfig, Path]:
    """A valid config and the folder its file is read from; paths are made the way the
    parser makes them, relative ones under that folder, absolute ones anywhere."""
    base = draw(st.sampled_from(BASE_DIRS))
    texts = strings | st.sampled_from(["/etc/skyfleet/tls/ca.pem", "../tls/n0.pem", "//x", "."])
    paths = st.builds(lambda text: base / text, texts | st.just(str(base / "x")))
    profile = draw(st.sampled_from(["lan", "wan", "local"]))
    membership = changed(draw, membership_preset(profile), {
        f.name: st.integers(1, 2**63 - 1) if isinstance(f.default, int) else non_negative
        for f in fields(MembershipConfig)
    })
    tasks = changed(draw, TaskSettings(), {
        "capacity": st.integers(1, 2**63 - 1),
        "queue_limit": ints,
        "handlers": st.none() | st.lists(strings, max_size=3).map(tuple),
        "idempotency_ttl": non_negative,
        "latency_decay": non_negative,
        "sleep_distribution": st.sampled_from(["fixed", "exponential", "lognormal", "bimodal"]),
        "sleep_mean": non_negative,
        "sleep_scv": non_negative,
    })
    bind = draw(host_ports)
    advertise = draw(st.just(bind) | host_ports.filter(
        lambda a: a.rpartition(":")[0].strip("[]") not in ("0.0.0.0", "::")))
    config = AgentConfig(
        node=NodeIdentity(
            name=draw(st.from_regex(NODE_NAME, fullmatch=True)),
            cloud=draw(strings),
            region=draw(strings),
            zone=draw(strings),
            address=advertise,
            labels=draw(st.dictionaries(strings, strings, max_size=3)),
        ),
        bind=bind,
        seeds=tuple(draw(st.lists(host_ports, max_size=3))),
        tls=TlsFiles(ca=draw(paths), cert=draw(paths), key=draw(paths)),
        membership=membership,
        membership_profile=profile,
        policy=PolicySettings(
            trusted_keys=tuple(draw(st.lists(paths, max_size=3))),
            source=draw(st.none() | st.builds(lambda t: base / t, strings.filter(bool))),
        ),
        tasks=tasks,
        state_dir=draw(paths),
        metrics_bind=draw(st.just("") | host_ports),
        log_level=draw(st.sampled_from(["debug", "info", "warning", "error"])),
        shutdown_grace=draw(st.just(1.0) | st.floats(0, 3599, allow_nan=False)),
        handler_config=draw(handler_tables),
    )
    return config, base


@settings(max_examples=300, deadline=None)
@given(configs())
def test_the_parser_reads_back_every_rendered_config(drawn: tuple[AgentConfig, Path]) -> None:
    config, base = drawn
    text = render_agent_config(config, base)
    assert parse_agent_config(tomllib.loads(text), base) == config


def test_strings_are_written_as_toml_basic_strings() -> None:
    config = parse_agent_config(with_("node", zone='q"b\\s\nn\t\x00\x7f\u2028 é 😀'))
    line = next(x for x in render_agent_config(config).splitlines() if x.startswith("zone"))
    assert line == r'zone = "q\"b\\s\nn\t\u0000\u007F\u2028 é 😀"'


HOST = HostSpec(name="aws-us-east-1a-0", cloud="aws", region="us-east-1", zone="us-east-1a",
                subnet=IPv4Network("10.10.1.0/24"), address=IPv4Address("10.10.1.4"), port=7470,
                metrics_port=9470, seed=True)
CLOUD_TOML = """\
[node]
name = "aws-us-east-1a-0"
cloud = "aws"
region = "us-east-1"
zone = "us-east-1a"
bind = "10.10.1.4:7470"
advertise = "10.10.1.4:7470"
labels = { environment = "prod" }

[join]
seeds = ["10.20.1.4:7470", "10.30.1.4:7470"]

[tls]
ca = "/etc/skyfleet/tls/ca.pem"
cert = "/etc/skyfleet/tls/node.pem"
key = "/etc/skyfleet/tls/node.key"

[membership]
profile = "wan"

[policy]
trusted_keys = ["/etc/skyfleet/policy/keys/fleet.pub"]
source = "/etc/skyfleet/policy/current.json"

[agent]
state_dir = "/var/lib/skyfleet"
metrics_bind = "10.10.1.4:9470"
log_level = "info"
"""
"""A cloud host's config as infra published it before it shared the agent's renderer:
unchanged, or every host's config object in the store would change with it."""

SPEC = AgentSpec(name="n1", cloud="aws", zone="z", address="127.0.0.1:7001",
                 seeds=("127.0.0.1:7000",), metrics_port=9001,
                 overrides={"status_interval": 0.2, "leave_propagate_delay": 0.1})
LOCAL_TOML = """\
[node]
name = "n1"
cloud = "aws"
region = "local"
zone = "z"
bind = "127.0.0.1:7001"
advertise = "127.0.0.1:7001"

[join]
seeds = ["127.0.0.1:7000"]

[tls]
ca = "../tls/ca.pem"
cert = "../tls/n1.pem"
key = "../tls/n1.key"

[membership]
profile = "local"
leave_propagate_delay = 0.1
status_interval = 0.2

[policy]
trusted_keys = ["../policy/fleet.pub"]
source = "../policy/source"

[agent]
state_dir = "../state/n1"
metrics_bind = "127.0.0.1:9001"
log_level = "info"
"""


def test_cloud_hosts_and_local_fleets_write_through_the_one_renderer(tmp_path: Path) -> None:
    cloud = bootstrap.render_agent_config(
        HOST, ("10.20.1.4:7470", "10.30.1.4:7470"), bootstrap.AgentFiles(),
        profile="wan", environment="prod",
    )
    assert cloud == CLOUD_TOML
    assert cloud == render_agent_config(parse_agent_config(tomllib.loads(cloud)))
    layout = FleetLayout(tmp_path)
    path = layout.write_agent(SPEC)
    local = path.read_text("utf-8")
    assert local == LOCAL_TOML
    assert local == render_agent_config(layout.agent_config(SPEC), path.parent)
    assert load_agent_config(path) == layout.agent_config(SPEC)


@pytest.mark.parametrize(
    ("check", "key"),
    [
        (lambda: MembershipConfig().with_overrides({"probe_timeout": 5.0}), "probe_timeout"),
        (lambda: MembershipConfig(status_min_transmits=0).validate(), "status_min_transmits"),
        (lambda: TaskSettings(capacity=0).validate(), "capacity"),
    ],
)
def test_every_settings_class_raises_the_config_error_naming_its_key(
    check: Callable[[], object], key: str
) -> None:
    """The package's one error (config/errors.py), whichever class validates."""
    with pytest.raises(ConfigError, match=rf"^(membership|tasks)\.{key}: "):
        check()
