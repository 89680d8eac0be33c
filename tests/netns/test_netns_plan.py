"""The namespaced fleet's address and name plan: pure, so it runs without root."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from skyfleet.localfleet.netplan import MAX_AGENTS, NetworkPlan, PlanError

BLOCK = IPv4Network("10.200.0.0/16")
AGENTS = (("aws-0", "aws"), ("gcp-0", "gcp"), ("aws-1", "aws"), ("azure-0", "azure"))


def plan(**changes: object) -> NetworkPlan:
    args: dict[str, object] = {"prefix": "sf3a9c", "block": BLOCK, "agents": AGENTS}
    args.update(changes)
    return NetworkPlan.for_agents(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("agent", "address", "gateway", "port", "inner"),
    [
        ("aws-0", "10.200.1.1", "10.200.1.254/24", "sf3a9c-p0", "sf3a9c-a0"),
        ("aws-1", "10.200.1.2", "10.200.1.254/24", "sf3a9c-p2", "sf3a9c-a2"),
        ("azure-0", "10.200.2.1", "10.200.2.254/24", "sf3a9c-p3", "sf3a9c-a3"),
        ("gcp-0", "10.200.3.1", "10.200.3.254/24", "sf3a9c-p1", "sf3a9c-a1"),
    ],
)
def test_agent_addresses_and_names(agent, address, gateway, port, inner):
    p = plan()
    cloud = p.cloud_of(agent)
    assert str(p.address(agent)) == address
    assert str(p.gateway(cloud)) == gateway
    assert p.address(agent) in p.subnet(cloud)
    assert p.namespace(agent) == f"sf3a9c-agent-{agent}"
    assert p.router_port(agent) == port
    assert p.agent_interface(agent) == inner


def test_fixed_parts_of_the_plan():
    p = plan()
    assert p.clouds == ("aws", "azure", "gcp")  # sorted unless given
    assert (str(p.host_address), str(p.router_address)) == ("10.200.0.1/30", "10.200.0.2/30")
    assert p.router_namespace == "sf3a9c-router"
    assert (p.host_interface, p.router_uplink, p.bridge("gcp")) == (
        "sf3a9c-h",
        "sf3a9c-r",
        "sf3a9c-b2",
    )
    assert plan(clouds=("gcp", "aws", "azure")).subnet("gcp") == IPv4Network("10.200.1.0/24")
    assert plan().agents_in("aws") == ["aws-0", "aws-1"]


def test_longest_names_fit_linux_interface_names():
    many = tuple((f"n{i}", f"cloud{i % 4}") for i in range(MAX_AGENTS))
    p = plan(prefix="abcdefghij", agents=many)
    last = many[-1][0]
    names = [p.router_port(last), p.agent_interface(last), p.bridge("cloud3"), p.router_uplink]
    assert max(len(n) for n in names) == 15


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prefix": "SF-1"}, "prefix: 'SF-1'"),
        ({"prefix": "abcdefghijk"}, "prefix: 'abcdefghijk'"),
        ({"block": IPv4Network("10.200.0.0/24")}, "block: expected an IPv4 /16"),
        ({"agents": AGENTS + (("aws-0", "aws"),)}, "agents: 'aws-0' is listed twice"),
        ({"agents": (("../etc", "aws"),)}, "agents: '../etc' is not a node name"),
        ({"clouds": ("aws", "gcp")}, "agents: 'azure-0' is in cloud 'azure'"),
        ({"clouds": ("aws", "aws", "gcp", "azure")}, "clouds: listed twice"),
        ({"agents": (), "clouds": ()}, "clouds: at least one cloud"),
        ({"agents": tuple((f"a{i}", "aws") for i in range(254))}, "cloud 'aws' has 254"),
        ({"agents": tuple((f"a{i}", "aws") for i in range(1000))}, "1000 agents, at most 999"),
    ],
)
def test_bad_plans_name_the_bad_value(changes, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        plan(**changes)


def test_unknown_agent_or_cloud_is_named():
    with pytest.raises(PlanError, match="agent: 'nope' is not in this network"):
        plan().address("nope")
    with pytest.raises(PlanError, match="cloud: 'ibm' is not one of"):
        plan().subnet("ibm")
