"""Real network isolation: agents in their own network namespaces, clouds joined by a
router namespace, and iptables cutting a cloud off or dropping packets between clouds.

Needs root, `ip netns` and iptables; skipped with the reason otherwise. Packets are
probed with UDP (one-way effects are invisible to TCP, which needs both directions);
membership is watched through each agent's admin API from the root namespace, which
the chaos rules never cut.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyfleet.client import MemberRow
from skyfleet.localfleet import netns
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.netns import FleetNetwork, NetnsError, unavailable_reason
from skyfleet.localfleet.procs import LocalFleet

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]

CLOUDS = ("aws", "azure", "gcp")
AGENTS = [(f"{cloud}-{i}", cloud) for cloud in CLOUDS for i in range(2)]

# Counts datagrams; answers each line on stdin with the count so far; exits on EOF.
RECEIVER = """
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print(0, flush=True)
got = 0
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [])
    if s in ready:
        s.recv(64)
        got += 1
    if sys.stdin in ready:
        if not sys.stdin.readline():
            break
        print(got, flush=True)
"""
SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""


@pytest.fixture(scope="module")
def netns_available() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def network(netns_available: None) -> Iterator[FleetNetwork]:
    net = FleetNetwork.create(AGENTS)
    try:
        yield net
    finally:
        net.teardown()


def ours_listed(prefix: str) -> list[str]:
    """Lines of `ip netns list` and `ip -o link` that carry the fleet's prefix."""
    lines = []
    for argv in (["ip", "netns", "list"], ["ip", "-o", "link", "show"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        lines += [line for line in out.splitlines() if f"{prefix}-" in line]
    return lines


def udp_probe(net: FleetNetwork, src: str, dst: str, count: int = 100) -> tuple[int, int]:
    """(dropped by our rules, received by dst) for `count` datagrams from src to dst,
    once every datagram is accounted for (or after 10 s)."""
    host, port = str(net.plan.address(dst)), "9999"
    with subprocess.Popen(
        [*net.exec_prefix(dst), sys.executable, "-c", RECEIVER, host, port],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as receiver:  # leaving closes its stdin (it exits) and waits for it
        assert receiver.stdin is not None and receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "0"  # bound and listening
        before = net.dropped_packets()
        sender = [*net.exec_prefix(src), sys.executable, "-c", SENDER, host, port, str(count)]
        subprocess.run(sender, check=True)
        deadline = time.monotonic() + 10
        while True:
            dropped = net.dropped_packets() - before
            receiver.stdin.write("?\n")
            receiver.stdin.flush()
            received = int(receiver.stdout.readline())
            if dropped + received >= count or time.monotonic() > deadline:
                return dropped, received


def test_cut_one_way_and_loss_act_on_packets_between_clouds(network: FleetNetwork):
    n = 100
    assert udp_probe(network, "aws-0", "gcp-0", n) == (0, n)

    network.cut("gcp", "out")  # gcp's packets to other clouds are dropped, not the reverse
    assert udp_probe(network, "gcp-0", "aws-0", n) == (n, 0)
    assert udp_probe(network, "aws-0", "gcp-1", n) == (0, n)
    assert udp_probe(network, "gcp-0", "gcp-1", n) == (0, n)  # inside the cloud: bridged
    network.heal()
    assert udp_probe(network, "gcp-0", "aws-0", n) == (0, n)

    network.set_loss("aws", "azure", 0.5)
    dropped, received = udp_probe(network, "azure-1", "aws-0", n)
    assert 0 < dropped < n and received == n - dropped  # P(all or none) = 2**-99
    assert udp_probe(network, "aws-0", "gcp-0", n) == (0, n)  # other pairs untouched
    network.set_loss("aws", "azure", 0.0)
    assert udp_probe(network, "aws-1", "azure-0", n) == (0, n)


def test_failed_build_removes_what_it_created(netns_available: None, monkeypatch):
    """A command failing half way (here: the last agent's default route) leaves nothing."""
    real_run = netns._run
    claimed: list[str] = []

    def failing_run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if argv[:3] == ("ip", "netns", "add") and argv[3].endswith("-router"):
            claimed.append(argv[3].removesuffix("-router"))
        if claimed and argv[:3] == ("ip", "-n", f"{claimed[0]}-agent-gcp-1") and "default" in argv:
            raise NetnsError("injected failure")
        return real_run(*argv, check=check)

    monkeypatch.setattr(netns, "_run", failing_run)
    with pytest.raises(NetnsError, match="injected failure"):
        FleetNetwork.create(AGENTS)
    monkeypatch.undo()
    assert len(claimed) == 1
    assert netns.leftovers(claimed[0]) == []
    assert ours_listed(claimed[0]) == []


def placed_specs(net: FleetNetwork) -> list[AgentSpec]:
    """Loopback specs as the local stack would give them, moved into the namespaces."""
    loopback = [
        AgentSpec(
            name=name,
            cloud=cloud,
            zone=f"{cloud}-z0",
            address=f"127.0.0.1:{7470 + i}",
            seeds=("127.0.0.1:7470", "127.0.0.1:7472"),
            profile="local",
        )
        for i, (name, cloud) in enumerate(AGENTS)
    ]
    return net.place(loopback)


def split(cloud: str):
    """Predicate: `cloud`'s agents see every other agent dead, and the others see them dead."""

    def holds(views: dict[str, dict[str, MemberRow]]) -> bool:
        def side(name: str) -> bool:
            return name.startswith(f"{cloud}-")

        return all(
            view[member].state == "dead"
            for observer, view in views.items()
            for member, _ in AGENTS
            if side(member) != side(observer)
        )

    return holds


async def test_real_agents_partitioned_and_healed(network: FleetNetwork, tmp_path: Path):
    specs = placed_specs(network)
    assert all(s.address.startswith(f"{network.plan.address(s.name)}:") for s in specs)
    names = [s.name for s in specs]
    with LocalFleet(tmp_path, specs) as fleet:
        fleet.start()
        await fleet.wait_converged(names, timeout=60)

        network.cut("gcp", "both")
        await fleet.wait_for(split("gcp"), names, timeout=60, what="gcp cut off both ways")
        network.heal()
        await fleet.wait_converged(names, timeout=60)

        # One way at the packet level is both ways for TCP (the handshake needs both),
        # so the membership splits just the same, and heals the same.
        network.cut("azure", "in")
        await fleet.wait_for(split("azure"), names, timeout=60, what="azure cut off one way")
        network.heal()
        await fleet.wait_converged(names, timeout=60)

        # Teardown while agents still run: it kills them, so nothing is left behind.
        network.teardown()
        assert fleet.running() == []
        assert network.leftovers() == []
        assert ours_listed(network.plan.prefix) == []
        network.teardown()  # idempotent
