"""The agent config file: what parses, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyfleet.config.agent import ConfigError, load_agent_config, parse_agent_config

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
        ({"node": BASE["node"]}, "tls.ca"),
    ],
)
def test_bad_values_name_their_key(doc: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_agent_config(doc)
    assert key in str(info.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[node\n")
    with pytest.raises(ConfigError, match="agent.toml: not valid TOML"):
        load_agent_config(path)
