"""A cloud host boots into the fleet: the user data the program renders for each cloud
(the prod stack, under Pulumi's mocks) applied by the real cloud-init inside a real
Debian 12 root filesystem, booted by systemd-nspawn with systemd as PID 1.

The guest sits at its planned private address in its own network namespace; on the
other side of its link run real agents at the addresses its seeds name (certificates
from the stack's CA), and `cloud_standin` playing the cloud's metadata service and
store, which serves the runtime bundle and the signed policy that `pulumi up` would
have published. The host must install the bundle by hash, start the agent under its
systemd unit, join the agents over mTLS and adopt the policy, seen by the fleet through
`skyfleet policy status`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from infra import bootstrap, publication
from infra.config import load_stack_config
from infra.topology import HostSpec, plan_hosts
from skyfleet.config.agent import parse_agent_config
from skyfleet.policy.signing import generate_signing_key
from skyfleet.security.certs import create_ca, issue_admin_cert, issue_node_cert
from tests.boot.boot_network import METADATA, STORE, BootNetwork
from tests.boot.rootfs import ensure_rootfs
from tests.infra.mocks import (
    HOST_TYPES,
    StackRun,
    StackSecretsFixture,
    host_name,
    published,
    run_committed,
    stack_file_config,
    user_data,
)

pytestmark = [pytest.mark.boot, pytest.mark.netns, pytest.mark.slow,
              pytest.mark.timeout(900)]

STACK = "prod"
JOIN_DEADLINE = 420.0
"""Boot, install of the bundle (~30 MB of wheels, numpy's the most) and join, on a loaded
2-core machine: a minute is typical; the deadline only bounds a failure."""


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, systemd-nspawn)"
    for tool in ("debootstrap", "systemd-nspawn", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/test.sh installs it)"
    return None


@dataclass
class ProdStack:
    run: StackRun
    secrets: StackSecretsFixture
    hosts: dict[str, HostSpec]
    config: dict[str, str]


@pytest.fixture(scope="module")
def rootfs() -> Path:
    if (reason := _missing_tools()) is not None:
        if os.geteuid() != 0:
            pytest.skip(reason)
        pytest.fail(reason)
    return ensure_rootfs()


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> ProdStack:
    ca_cert, ca_key = create_ca("boot test fleet CA")
    private, public = generate_signing_key()
    secrets = StackSecretsFixture(ca_cert.decode(), ca_key.decode(), private.decode(),
                                  public.decode())
    root = tmp_path_factory.mktemp("prod")
    run = run_committed(STACK, secrets, root)
    config = stack_file_config(STACK)
    cfg = load_stack_config(lambda k: config.get(f"skyfleet:{k}"), STACK, root)
    return ProdStack(run, secrets, {h.name: h for h in plan_hosts(cfg)}, config)


def _first_host(prod: ProdStack, cloud: str) -> tuple[str, str]:
    """The user data of the cloud's first host, and its agent config (from the store)."""
    record = min(prod.run.mocks.of_type(HOST_TYPES[cloud]), key=lambda r: r.name)
    return user_data(record), published(prod.run, cloud, f"config-{host_name(record)}")


class Processes:
    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def procs() -> Iterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        p.close()


def _fleet_agent(prod: ProdStack, host: HostSpec, peers: list[HostSpec], folder: Path,
                 envelope: Path, trusted: Path) -> Path:
    """A real agent for one of the booted host's seeds, configured as its own host would
    be (the same renderer), with files in `folder`."""
    folder.mkdir()
    cert, key = issue_node_cert(prod.secrets.ca_cert.encode(), prod.secrets.ca_key.encode(),
                                host.name, [str(host.address)])
    (folder / "ca.pem").write_text(prod.secrets.ca_cert)
    (folder / "node.pem").write_bytes(cert)
    (folder / "node.key").write_bytes(key)
    (folder / "node.key").chmod(0o600)
    files = bootstrap.AgentFiles(ca=str(folder / "ca.pem"), cert=str(folder / "node.pem"),
                                 key=str(folder / "node.key"), trusted_key=str(trusted),
                                 policy_source=str(envelope), state_dir=str(folder / "state"))
    config = folder / "agent.toml"
    config.write_text(bootstrap.render_agent_config(
        host, tuple(p.endpoint for p in peers if p != host), files, profile="wan",
        environment=STACK))
    return config


STORE_NAME = {"aws:s3/bucketObjectv2:BucketObjectv2": "key",
              "azure-native:storage:Blob": "blobName",
              "gcp:storage/bucketObject:BucketObject": "name"}


def _store_objects(run: StackRun, cloud: str, folder: Path) -> dict[str, Path]:
    """What `pulumi up` would have put in the cloud's store (`FleetStore`), as files."""
    folder.mkdir()
    out: dict[str, Path] = {}
    for record in run.mocks.resources:
        if record.typ not in STORE_NAME or not record.name.startswith(f"policy-{cloud}-"):
            continue
        name = record.inputs[STORE_NAME[record.typ]]
        source = record.inputs.get("source")
        if source is not None and hasattr(source, "path"):
            out[name] = Path(source.path)
            continue
        path = folder / name.replace("/", "_")
        path.write_text(source.text if source is not None else record.inputs["content"])
        out[name] = path
    return out


def _standin_tls(folder: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA the guest trusts (bound over its CA bundle) and the stores' server certificate."""
    ca_cert, ca_key = create_ca("boot test cloud stores")
    cert, key = issue_node_cert(ca_cert, ca_key, "cloud-stores", names)
    paths = folder / "stores-ca.pem", folder / "stores.pem", folder / "stores.key"
    for path, data in zip(paths, (ca_cert, cert, key), strict=True):
        path.write_bytes(data)
    return paths


def _cli(net: BootNetwork, admin_dir: Path, agent: HostSpec, *command: str) -> dict | None:
    """`skyfleet <command> --json` against `agent`, from the fleet side, as an admin."""
    done = subprocess.run(net.in_fleet([
        sys.executable, "-m", "skyfleet", *command, "--agent", agent.endpoint,
        "--tls-dir", str(admin_dir), "--identity", "admin", "--json"]),
        capture_output=True, text=True, timeout=30)
    return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.mark.parametrize("cloud", ["aws", "azure", "gcp"])
def test_cloud_host_boots_installs_by_hash_joins_and_adopts_the_policy(
        cloud: str, prod: ProdStack, rootfs: Path, procs: Processes, tmp_path: Path) -> None:
    text, config_text = _first_host(prod, cloud)
    agent = parse_agent_config(tomllib.loads(config_text))
    guest = prod.hosts[agent.node.name]
    by_endpoint = {h.endpoint: h for h in prod.hosts.values()}
    seeds = [by_endpoint[s] for s in agent.seeds]
    assert {s.cloud for s in seeds} >= {"aws", "azure", "gcp"} - {cloud}

    exports = prod.run.exports
    envelope = tmp_path / "policy.json"
    envelope.write_text(exports["policyEnvelope"])
    trusted = tmp_path / "fleet.pub"
    trusted.write_text(prod.secrets.signing_pub)
    store = _store_objects(prod.run, cloud, tmp_path / "store")

    net = BootNetwork(guest.address, guest.subnet, [s.address for s in seeds])
    try:
        # The fleet: an agent at every seed address, joined to one another.
        for seed in seeds:
            config = _fleet_agent(prod, seed, seeds, tmp_path / seed.name, envelope, trusted)
            procs.start(net.in_fleet([sys.executable, "-m", "skyfleet", "agent", "run",
                                      "--config", str(config)]), tmp_path / f"{seed.name}.log")
        admin_dir = tmp_path / "admin"
        admin_dir.mkdir()
        cert, key = issue_admin_cert(prod.secrets.ca_cert.encode(),
                                     prod.secrets.ca_key.encode(), "admin")
        (admin_dir / "ca.pem").write_text(prod.secrets.ca_cert)
        (admin_dir / "admin.pem").write_bytes(cert)
        (admin_dir / "admin.key").write_bytes(key)

        # The cloud: metadata service and store, serving what `pulumi up` published.
        aws_region = prod.config["skyfleet:awsRegion"]
        names = {
            "aws": f"{publication.aws_bucket(STACK, 'skyfleet', STACK)}.s3.{aws_region}"
                   ".amazonaws.com",
            "azure": f"{publication.azure_storage_account(STACK, 'skyfleet', STACK)}"
                     ".blob.core.windows.net",
            "gcp": "storage.googleapis.com",
        }
        ca, server_cert, server_key = _standin_tls(tmp_path, list(names.values()))
        standin_log = tmp_path / "standin.jsonl"
        standin_config = tmp_path / "standin.json"
        standin_config.write_text(json.dumps({
            "objects": {name: str(path) for name, path in store.items()},
            "aws": {"bucket": publication.aws_bucket(STACK, "skyfleet", STACK),
                    "region": aws_region},
            "azure": {"account": publication.azure_storage_account(STACK, "skyfleet", STACK),
                      "container": publication.AZURE_CONTAINER, "client_id": "client-1"},
            "gcp": {"bucket": publication.gcs_bucket(STACK, "skyfleet", STACK)},
            "tls_cert": str(server_cert), "tls_key": str(server_key),
            "metadata_bind": str(METADATA), "store_bind": str(STORE), "log": str(standin_log),
        }))
        standin = procs.start(net.in_fleet([sys.executable, "-m", "tests.boot.cloud_standin",
                                            str(standin_config)]), tmp_path / "standin.out")

        # The guest: NoCloud seed with the user data, /etc/hosts and CA bundle of its cloud.
        seed_dir = tmp_path / "nocloud"
        seed_dir.mkdir()
        (seed_dir / "user-data").write_text(text)
        (seed_dir / "meta-data").write_text(
            f"instance-id: {guest.name}-{tmp_path.name}\nlocal-hostname: {guest.name}\n")
        hosts_file = tmp_path / "hosts"
        hosts_file.write_text(
            f"127.0.0.1 localhost\n{METADATA} metadata.google.internal\n"
            + "".join(f"{STORE} {n}\n" for n in names.values()))
        console = tmp_path / "console.log"
        started = time.monotonic()
        guest_proc = procs.start([
            "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
            "--volatile=overlay", "--console=read-only", f"--directory={rootfs}",
            f"--machine={guest.name}", f"--network-namespace-path=/run/netns/{net.guest_ns}",
            f"--bind-ro={seed_dir}:/var/lib/cloud/seed/nocloud",
            f"--bind-ro={hosts_file}:/etc/hosts",
            f"--bind-ro={ca}:/etc/ssl/certs/ca-certificates.crt",
        ], console)

        joined: dict | None = None
        while time.monotonic() - started < JOIN_DEADLINE:
            assert guest_proc.poll() is None, f"the guest stopped:\n{_tail(console)}"
            assert standin.poll() is None, (
                f"the stand-in stopped:\n{_tail(tmp_path / 'standin.out')}")
            # Joined: the fleet lists the host alive. Adopted: the host's own status says
            # the published version (the fleet learns it later, at the pace of status
            # gossip, which is not what this test is about).
            members = _cli(net, admin_dir, seeds[0], "members")
            alive = {m["name"] for m in (members or {}).get("members", [])
                     if m["state"] == "alive"}
            own = _cli(net, admin_dir, guest, "policy", "status") if guest.name in alive else None
            rows = {m["name"]: m for m in (own or {}).get("members", [])}
            row = rows.get(guest.name)
            if row and row["version"] == exports["policyVersion"]:
                joined = row
                break
            time.sleep(2)
        requests = [json.loads(line) for line in standin_log.read_text().splitlines()] if (
            standin_log.exists()) else []
        assert joined is not None, (
            f"{guest.name} did not join with policy v{exports['policyVersion']} in "
            f"{JOIN_DEADLINE:.0f} s\nstand-in requests: {requests[-8:]}\n"
            f"console:\n{_tail(console)}")
        took = time.monotonic() - started
        print(f"{cloud}: {guest.name} joined and adopted the policy {took:.1f} s after boot")
        assert joined["hash"] == exports["policyHash"]
        # What the host asked of its cloud: only its own store, with its own identity.
        fetched = {r["path"].split("/")[-1].split("?")[0]: r for r in requests
                   if r["kind"] == "store" and r["status"] == 200}
        assert {r["host"] for r in fetched.values()} == {names[cloud]}
        objects = {name.replace("%2F", "/") for name in fetched}
        assert publication.POLICY_OBJECT in objects
        assert any(exports["runtimeBundle"]["object"].endswith(o) for o in objects)
        # The agent runs under its unit, as the unit's command line says.
        assert _in_guest(guest_proc, "systemctl", "is-active", "skyfleet-install.service",
                         "skyfleet-agent.service").split() == ["active", "active"]
        main_pid = _in_guest(guest_proc, "systemctl", "show", "--value", "--property=MainPID",
                             "skyfleet-agent.service").strip()
        command = _in_guest(guest_proc, "cat", f"/proc/{main_pid}/cmdline").split("\0")[:-1]
        assert command[-4:] == ["agent", "run", "--config", bootstrap.CONFIG_PATH]
        assert command[1].endswith(f"{bootstrap.VENV}/bin/skyfleet")
    finally:
        procs.close()
        net.close()


def _in_guest(nspawn: subprocess.Popen[bytes], *argv: str) -> str:
    """Run a command inside the booted guest (its PID 1's namespaces), as `machinectl
    shell` would if nspawn could register with machined here."""
    init = subprocess.run(["pgrep", "-P", str(nspawn.pid)], capture_output=True,
                          text=True).stdout.split()
    assert init, "no init process under systemd-nspawn"
    done = subprocess.run(["nsenter", "-t", init[0], "-a", *argv], capture_output=True,
                          text=True, timeout=30)
    return done.stdout


def _plain(path: Path) -> str:
    """The console without its colour codes."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", path.read_text(errors="replace"))


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(_plain(path).splitlines()[-lines:]) if path.exists() else "(none)"


def test_boot_network_is_removed(tmp_path: Path) -> None:
    """Leftovers would pile up across runs: the namespaces go with the network."""
    if (reason := _missing_tools()) is not None:
        pytest.skip(reason)
    from ipaddress import IPv4Network

    net = BootNetwork(IPv4Address("10.250.0.10"), IPv4Network("10.250.0.0/24"), [])
    names = (net.guest_ns, net.fleet_ns)
    net.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
