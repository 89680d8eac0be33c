"""What a host needs to boot straight into the fleet, rendered as pure text.

Two artefacts: the agent config (the TOML contract of `skyfleet.config.agent`,
published in the store) and the cloud-init document that writes the node's key and the
scripts, and starts three systemd units: the install of the runtime bundle
(`infra.runtime_bundle`) from the cloud's store, checked by hash; the agent; and a timer
that copies the published policy from the same store into the file the agent watches.
The host image is Debian 12 (`infra.images`): python3 3.11 and curl are all it needs,
so first boot installs no package and reaches nothing but the fleet's store.

The policy itself is never in user data: a policy rollout must change a store object,
not an instance, or every `pulumi up` would reboot or replace the fleet. What is in user
data (config, certs, keys) changes only when a host's identity changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.publication import (
    CA_OBJECT,
    POLICY_OBJECT,
    TRUSTED_KEY_OBJECT,
    cert_object,
    config_object,
)
from infra.topology import HostSpec
from skyfleet.config.agent import AgentConfig, NodeIdentity, PolicySettings, TlsFiles
from skyfleet.config.agent import render_agent_config as render_toml
from skyfleet.config.membership import membership_preset
from skyfleet.config.tasks import TaskSettings

CONFIG_PATH = "/etc/skyfleet/agent.toml"
TLS_DIR = "/etc/skyfleet/tls"
POLICY_KEY_PATH = "/etc/skyfleet/policy/keys/fleet.pub"
POLICY_SOURCE = "/etc/skyfleet/policy/current.json"
STATE_DIR = "/var/lib/skyfleet"
VENV = "/opt/skyfleet"
FETCH_SCRIPT = "/usr/local/bin/skyfleet-fetch"
SYNC_SCRIPT = "/usr/local/bin/skyfleet-sync"
INSTALL_SCRIPT = "/usr/local/bin/skyfleet-install"
BUNDLE_DIR = "/var/cache/skyfleet"
FETCH_INTERVAL = "60s"
"""How often hosts poll the store: a rollout, a renewed certificate or a rotated key
reaches every host within about a minute, at four small GETs per host per minute."""


@dataclass(frozen=True, slots=True)
class AgentFiles:
    """Where a cloud host's agent files live (local agents use skyfleet.localfleet's
    layout instead, shared with `skyfleet local demo`)."""

    ca: str = f"{TLS_DIR}/ca.pem"
    cert: str = f"{TLS_DIR}/node.pem"
    key: str = f"{TLS_DIR}/node.key"
    trusted_key: str = POLICY_KEY_PATH
    policy_source: str = POLICY_SOURCE
    state_dir: str = STATE_DIR


def render_agent_config(
    host: HostSpec,
    seeds: tuple[str, ...],
    files: AgentFiles,
    *,
    profile: str,
    environment: str,
) -> str:
    """The agent's TOML config, written by the agent's own renderer so that what infra
    publishes is exactly what `skyfleet.config.agent` parses."""
    config = AgentConfig(
        node=NodeIdentity(
            name=host.name,
            cloud=host.cloud,
            region=host.region,
            zone=host.zone,
            address=host.endpoint,
            labels={"environment": environment},
        ),
        bind=f"{host.address}:{host.port}",
        seeds=seeds,
        tls=TlsFiles(ca=Path(files.ca), cert=Path(files.cert), key=Path(files.key)),
        membership=membership_preset(profile),
        membership_profile=profile,
        policy=PolicySettings(
            trusted_keys=(Path(files.trusted_key),), source=Path(files.policy_source)
        ),
        tasks=TaskSettings(handlers=host.handlers),
        state_dir=Path(files.state_dir),
        metrics_bind=f"{host.address}:{host.metrics_port}",
        handler_config=host.handler_settings,
    )
    return render_toml(config)


AGENT_UNIT = f"""[Unit]
Description=Skyfleet agent
Wants=network-online.target
After=network-online.target skyfleet-install.service
Requires=skyfleet-install.service

[Service]
User=skyfleet
ExecStart={VENV}/bin/skyfleet agent run --config {CONFIG_PATH}
Restart=always
RestartSec=2
StateDirectory=skyfleet
NoNewPrivileges=true
ProtectSystem=strict
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""

INSTALL_UNIT = f"""[Unit]
Description=Install the Skyfleet runtime bundle from the fleet's store
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={INSTALL_SCRIPT}
"""

FETCH_UNIT = f"""[Unit]
Description=Copy the policy, CA bundle, certificate and trusted key from the fleet's store

[Service]
Type=oneshot
ExecStart={SYNC_SCRIPT}
"""

FETCH_TIMER = f"""[Unit]
Description=Poll the fleet's store for the policy and credentials

[Timer]
OnBootSec=5s
OnUnitActiveSec={FETCH_INTERVAL}

[Install]
WantedBy=timers.target
"""

INSTALL_ATTEMPTS = 30
INSTALL_RETRY_SECONDS = 10
"""A new host's identity may take a minute or two to be granted read on the store
(IAM is eventually consistent on all three clouds): the install retries for 5 minutes."""


def render_fetch_script(download: str) -> str:
    """`skyfleet-fetch OBJECT DEST`: wrap a cloud-specific download (object "$1" to
    "$tmp") in an atomic replace: readers only ever see a whole file, and an unchanged
    one is not rewritten so the agent's watcher stays quiet. The agent, not this script,
    verifies policy signatures; the install checks the bundle's hash."""
    return f"""#!/bin/sh
set -eu
dest=$2
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp "$dest.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{download}
if ! cmp -s "$tmp" "$dest"; then
  chmod 0644 "$tmp"
  mv "$tmp" "$dest"
fi
"""


def host_objects(node: str, files: AgentFiles) -> list[tuple[str, str]]:
    """(store object, host file) of everything that may change after first boot."""
    return [
        (config_object(node), CONFIG_PATH),
        (POLICY_OBJECT, files.policy_source),
        (CA_OBJECT, files.ca),
        (cert_object(node), files.cert),
        (TRUSTED_KEY_OBJECT, files.trusted_key),
    ]


def render_sync_script(objects: list[tuple[str, str]]) -> str:
    """`skyfleet-sync`: fetch every object, each on its own (one missing object must not
    hold back the others); fails if any failed, so the install retries and the timer's
    failures show in `systemctl --failed`."""
    lines = "".join(f"{FETCH_SCRIPT} {obj} {dest} || status=1\n" for obj, dest in objects)
    return f"#!/bin/sh\nstatus=0\n{lines}exit $status\n"


def render_install_script(bundle_object: str, bundle_sha256: str) -> str:
    """Fetch the host's credentials and policy, then install exactly the bundle
    `pulumi up` published: fetched from the store, checked
    against the SHA-256 in user data, and installed offline with every wheel's hash
    required (the bundle's own requirements file). pip runs from its wheel in the bundle,
    so the host needs neither python3-venv nor pip from Debian."""
    bundle = f"{BUNDLE_DIR}/runtime.tar"
    unpacked = f"{BUNDLE_DIR}/runtime"
    return f"""#!/bin/sh
set -eu
marker={VENV}/.bundle-{bundle_sha256}
[ -e "$marker" ] && exit 0
attempt=1
until {SYNC_SCRIPT} && {FETCH_SCRIPT} {bundle_object} {bundle} && \\
      echo "{bundle_sha256}  {bundle}" | sha256sum -c --quiet -; do
  if [ "$attempt" -ge {INSTALL_ATTEMPTS} ]; then
    echo "skyfleet-install: {bundle_object} not fetched with sha256 {bundle_sha256}" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep {INSTALL_RETRY_SECONDS}
done
rm -rf {unpacked} {VENV}
mkdir -p {unpacked}
tar -xf {bundle} -C {unpacked}
python3 -m venv --without-pip {VENV}
{VENV}/bin/python "$(ls {unpacked}/pip-*.whl)/pip" install --quiet --no-index \\
  --no-cache-dir --require-hashes --find-links {unpacked} -r {unpacked}/requirements.txt
rm -rf {unpacked} {bundle}
touch "$marker"
"""


def render_cloud_init(
    *,
    node: str,
    key_pem: str,
    fetch_download: str,
    bundle_object: str,
    bundle_sha256: str,
) -> str:
    """The #cloud-config document for one host: what first boot needs and nothing that
    changes later (the agent config, the CA bundle, the certificate, the trusted key and
    the policy come from the store, `host_objects`), so renewals, rotations and new
    seeds never touch user data."""
    files = [
        (f"{TLS_DIR}/node.key", key_pem, "0600"),
        (FETCH_SCRIPT, render_fetch_script(fetch_download), "0755"),
        (SYNC_SCRIPT, render_sync_script(host_objects(node, AgentFiles())), "0755"),
        (INSTALL_SCRIPT, render_install_script(bundle_object, bundle_sha256), "0755"),
        ("/etc/systemd/system/skyfleet-install.service", INSTALL_UNIT, "0644"),
        ("/etc/systemd/system/skyfleet-agent.service", AGENT_UNIT, "0644"),
        ("/etc/systemd/system/skyfleet-policy-fetch.service", FETCH_UNIT, "0644"),
        ("/etc/systemd/system/skyfleet-policy-fetch.timer", FETCH_TIMER, "0644"),
    ]
    document = {
        "users": ["default", {"name": "skyfleet", "system": True, "shell": "/sbin/nologin"}],
        "write_files": [
            {"path": path, "content": content, "permissions": mode, "owner": "root:root"}
            for path, content, mode in files
        ],
        "runcmd": [
            ["chown", "skyfleet", f"{TLS_DIR}/node.key"],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "--no-block", "skyfleet-policy-fetch.timer"],
            # The agent pulls in the install; --no-block: cloud-init's final stage does
            # not wait for a download.
            ["systemctl", "enable", "--now", "--no-block", "skyfleet-agent.service"],
        ],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
