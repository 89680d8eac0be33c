"""Credentials change under running agents: a CA rotation (new CA added, certificates
re-issued from it, old CA dropped) and a policy signing-key rotation, each taken up
without a restart and without an agent losing the fleet; files that do not fit are
refused and the working ones kept."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from skyfleet.client import AgentClient, AgentError, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.membership.members import MemberState
from skyfleet.node import Agent
from skyfleet.policy.signing import generate_signing_key, sign_policy
from skyfleet.security.certs import create_ca, issue_admin_cert, issue_node_cert
from skyfleet.transport.tls import TlsMaterial
from tests.runtime.joined_agents import joined_layout, until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet(tmp_path: Path, free_ports) -> tuple[FleetLayout, list[AgentSpec]]:
    return joined_layout(tmp_path, free_ports(2))


def served_serial(address: str, layout: FleetLayout, identity: str) -> int:
    """The serial of the certificate an agent presents to a new connection now."""
    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(layout.tls / "ca.pem")
    context.load_cert_chain(layout.tls / f"{identity}.pem", layout.tls / f"{identity}.key")
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def reissue(layout: FleetLayout, name: str, ca: tuple[bytes, bytes], host: str | None) -> int:
    if host is None:
        cert, key = issue_admin_cert(*ca, name)
    else:
        cert, key = issue_node_cert(*ca, name, [host])
    # Key first, then certificate, as a fetch timer may deliver them: the agent must not
    # take up half a pair.
    (layout.tls / f"{name}.key").write_bytes(key)
    (layout.tls / f"{name}.pem").write_bytes(cert)
    return x509.load_pem_x509_certificate(cert).serial_number


async def alive_both_ways(a0: Agent, a1: Agent) -> None:
    def ok() -> bool:
        m0, m1 = a0.swim.member("n1"), a1.swim.member("n0")
        return bool(m0 and m1 and m0.state is MemberState.ALIVE
                    and m1.state is MemberState.ALIVE)
    await until(ok, "n0 and n1 to see each other alive")


async def test_ca_rotation_reaches_running_agents_without_losing_the_fleet(fleet) -> None:
    layout, (n0, n1) = fleet
    old_ca = ((layout.tls / "ca.pem").read_bytes(), (layout.tls / "ca.key").read_bytes())
    new_ca = create_ca("rotated fleet CA")
    async with (
        Agent(load_agent_config(layout.config_path("n0"))) as a0,
        Agent(load_agent_config(layout.config_path("n1"))) as a1,
    ):
        await alive_both_ways(a0, a1)
        first = served_serial(n1.address, layout, "admin")

        # 1. Trust both CAs.
        (layout.tls / "ca.pem").write_bytes(old_ca[0] + new_ca[0])
        a0.reload_credentials()
        a1.reload_credentials()
        # 2. Re-issue every certificate from the new CA; n1's key arrives first, alone.
        (layout.tls / "n1.key").write_bytes(issue_node_cert(*new_ca, "n1", ["127.0.0.1"])[1])
        a1.reload_credentials()
        assert served_serial(n1.address, layout, "admin") == first  # half a pair: kept
        renewed = {name: reissue(layout, name, new_ca, "127.0.0.1") for name in ("n0", "n1")}
        reissue(layout, "admin", new_ca, None)
        a0.reload_credentials()
        a1.reload_credentials()
        assert served_serial(n1.address, layout, "admin") == renewed["n1"]
        assert served_serial(n0.address, layout, "admin") == renewed["n0"]
        # 3. Drop the old CA: a certificate it issued is refused at the handshake now.
        stale_dir = layout.root / "stale"
        stale_dir.mkdir()
        stale_cert, stale_key = issue_admin_cert(*old_ca, "admin")
        (stale_dir / "ca.pem").write_bytes(old_ca[0] + new_ca[0])
        (stale_dir / "admin.pem").write_bytes(stale_cert)
        (stale_dir / "admin.key").write_bytes(stale_key)
        (layout.tls / "ca.pem").write_bytes(new_ca[0])
        a0.reload_credentials()
        a1.reload_credentials()
        stale = TlsMaterial.load(tls_files_in(stale_dir, "admin"))
        with pytest.raises(AgentError):
            async with AgentClient(n1.address, stale, agent_name="n1") as client:
                await client.list_members(timeout=3)
        # The fleet never noticed: both alive both ways, and a new admin call works.
        admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
        async with AgentClient(n1.address, admin, agent_name="n1") as client:
            local, rows = await client.list_members()
        assert local == "n1" and {r.name: r.state for r in rows}["n0"] == "alive"
        await alive_both_ways(a0, a1)


async def test_a_certificate_for_another_node_is_refused_and_the_old_one_kept(fleet) -> None:
    layout, (n0, n1) = fleet
    ca = ((layout.tls / "ca.pem").read_bytes(), (layout.tls / "ca.key").read_bytes())
    async with Agent(load_agent_config(layout.config_path("n1"))) as a1:
        before = served_serial(n1.address, layout, "admin")
        cert, key = issue_node_cert(*ca, "n0", ["127.0.0.1"])
        (layout.tls / "n1.key").write_bytes(key)
        (layout.tls / "n1.pem").write_bytes(cert)
        a1.reload_credentials()
        assert served_serial(n1.address, layout, "admin") == before


async def test_a_new_signing_key_is_trusted_for_the_next_policy(fleet) -> None:
    layout, (n0, _) = fleet
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    private, public = generate_signing_key()
    admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
    async with Agent(load_agent_config(layout.config_path("n0"))) as a0:
        version = a0.policy.version + 1
        envelope = json.dumps(sign_policy({**doc, "version": version}, private)).encode()
        async with AgentClient(n0.address, admin, agent_name="n0") as client:
            with pytest.raises(AgentError) as refused:
                await client.publish_policy(envelope)
            assert "invalid/untrusted" in str(refused.value)
            layout.trusted_key.write_bytes(public)
            a0.reload_credentials()
            await client.publish_policy(envelope)
        assert a0.policy.version == version


async def test_the_agent_polls_its_files(fleet, monkeypatch) -> None:
    """The wiring: without anyone calling reload, a changed certificate is served once
    the poll has turned."""
    import skyfleet.node

    monkeypatch.setattr(skyfleet.node, "CREDENTIALS_POLL", 0.05)
    layout, (_, n1) = fleet
    ca = ((layout.tls / "ca.pem").read_bytes(), (layout.tls / "ca.key").read_bytes())
    async with Agent(load_agent_config(layout.config_path("n1"))):
        renewed = reissue(layout, "n1", ca, "127.0.0.1")
        await until(lambda: served_serial(n1.address, layout, "admin") == renewed,
                    "n1 to serve its renewed certificate")


async def test_new_seeds_apply_live_and_other_changes_wait_for_a_restart(fleet,
                                                                        caplog) -> None:
    layout, (n0, n1) = fleet
    path = layout.config_path("n1")
    async with Agent(load_agent_config(path), config_path=path) as a1:
        assert a1.swim.seeds == (n0.address,)
        text = path.read_text()
        path.write_text(text.replace(f'seeds = ["{n0.address}"]',
                                     f'seeds = ["{n0.address}", "10.9.9.9:7470"]')
                        .replace('log_level = "info"', 'log_level = "debug"'))
        a1.reload_credentials()
        assert a1.swim.seeds == (n0.address, "10.9.9.9:7470")
        assert a1.config.seeds == a1.swim.seeds
        assert a1.config.log_level == "info"
        assert "apply at the next restart: log_level" in caplog.text
        # A config that does not parse changes nothing and says which key is wrong.
        path.write_text(text.replace("[join]", "[join]\nbogus = 1"))
        a1.reload_credentials()
        assert a1.swim.seeds == (n0.address, "10.9.9.9:7470")
        assert "config not reloaded" in caplog.text and "bogus" in caplog.text
