"""The stack configuration, read once into a frozen, validated `StackConfig`.

`Pulumi.yaml` declares every key with its type, default and description; this module adds
what a schema cannot say: regions and zones that exist, the redundancy each environment
demands, disjoint address ranges, and a policy file whose version matches the config.
Every error is a `StackConfigError` whose message starts with the offending key
(`skyfleet:awsZones: prod needs at least 3 zones, got 2`), so a bad edit fails the
preview before any resource is touched.

Loading is a pure function of a key -> raw string lookup (`ConfigSource`), so tests feed a
dict and `__main__` feeds `pulumi.Config`; nothing happens at import time. Secrets (the
fleet signing key, the CA, the VPN secret) are not here: they stay Pulumi Outputs, see
`infra.stack_secrets`.
"""

from __future__ import annotations

import difflib
import json
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import skyfleet
from infra import ipam, regions
from infra.instance_sizes import check_instance_size
from infra.ipam import CLOUDS, ENVIRONMENTS, AddressPlanError
from infra.mesh_plan import plan_mesh
from skyfleet.config.agent import (
    DEFAULT_AGENT_PORT,
    DEFAULT_METRICS_PORT,
    handler_setting_problem,
)
from skyfleet.tasks.handlers import builtin_handlers, installed_handlers

NAMESPACE = "skyfleet"
REPO_ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = "policies"

HandlerValue = str | int | float | bool | list[str | int | float | bool]
"""What a handler setting may be: what the agent's `[handlers.<name>]` tables hold."""

ConfigSource = Callable[[str], str | None]
"""Returns the raw stack config value of `skyfleet:<key>` (arrays as JSON), or None."""


class StackConfigError(ValueError):
    """The stack config is invalid; the message starts with the `skyfleet:<key>` at fault."""


@dataclass(frozen=True, slots=True)
class Redundancy:
    """What an environment must survive, expressed as minimum counts."""

    min_clouds: int
    """Clouds that must be enabled: prod survives the loss of a whole provider."""
    min_zones: int
    """Zones per cloud: a zone outage must leave hosts in that cloud."""
    min_hosts_per_zone: int
    """Hosts per zone: prod keeps N+1 so one host can be replaced without losing a zone."""


REDUNDANCY: dict[str, Redundancy] = {
    "local": Redundancy(min_clouds=1, min_zones=1, min_hosts_per_zone=1),
    "dev": Redundancy(min_clouds=1, min_zones=2, min_hosts_per_zone=1),
    "staging": Redundancy(min_clouds=2, min_zones=2, min_hosts_per_zone=1),
    "prod": Redundancy(min_clouds=3, min_zones=3, min_hosts_per_zone=2),
}

LOCAL_REGION = "local"
"""The only region of the `local` environment: every 'cloud' is a label on this machine."""


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """One enabled cloud of the environment."""

    cloud: str
    region: str
    zones: tuple[str, ...]
    hosts_per_zone: int
    instance_size: str
    cidr: IPv4Network
    handlers: tuple[str, ...] | None
    """Task handlers this cloud's hosts serve (`skyfleet:<cloud>Handlers`); None: every
    built-in one, left to the agent's default so configs stay as they were before the key."""


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Everything the program needs except secrets; built by `load_stack_config`."""

    environment: str
    clouds: tuple[CloudConfig, ...]
    policy_file: Path
    """Absolute path of the policy document (always under `policies/`)."""
    policy_version: int
    policy_document: dict[str, Any]
    agent_port: int
    metrics_port: int
    runtime_version: str
    """The runtime every host installs: the wheel this program builds (`infra.runtime_bundle`)."""
    runtime_index: str
    """A private index to take `runtime_version`'s wheel from instead; "" for none."""
    admin_ranges: tuple[IPv4Network, ...]
    """Operator networks allowed to reach the agent port in addition to the fleet."""
    local_state_dir: Path
    """Local stack: the fleet's folder, absolute (`skyfleet:localStateDir`)."""
    local_network: str
    """Local stack: `auto`, `netns` or `loopback` (`skyfleet:localNetwork`)."""
    tunnel_key_generations: dict[str, int]
    """Tunnel label -> generation of its pre-shared key (`infra.components.mesh`)."""
    handler_settings: dict[str, dict[str, HandlerValue]]
    """Handler name -> its `[handlers.<name>]` table, the same on every host that serves
    it (`skyfleet:handlerSettings`); on the local stack a string may hold `{host}`
    (`LOCAL_HOST_PLACEHOLDER`)."""

    def cloud(self, name: str) -> CloudConfig | None:
        return next((c for c in self.clouds if c.cloud == name), None)

    @property
    def fleet_ranges(self) -> tuple[IPv4Network, ...]:
        return tuple(c.cidr for c in self.clouds)


def key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


class _Reader:
    """Typed access to raw config strings; every error names the full key."""

    def __init__(self, source: ConfigSource) -> None:
        self._source = source

    def string(self, name: str, default: str | None = None) -> str:
        value = self._source(name)
        if value is None or value == "":
            if default is None:
                raise StackConfigError(f"{key(name)}: required")
            return default
        return value

    def integer(self, name: str, default: int | None = None) -> int:
        raw = self._source(name)
        if raw is None:
            if default is None:
                raise StackConfigError(f"{key(name)}: required")
            return default
        try:
            return int(raw)
        except ValueError:
            raise StackConfigError(f"{key(name)}: expected an integer, got {raw!r}") from None

    def strings(self, name: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        raw = self._source(name)
        if raw is None:
            if default is None:
                raise StackConfigError(f"{key(name)}: required")
            return default
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise StackConfigError(f"{key(name)}: expected a list of strings, got {raw!r}")
        return tuple(value)


def _https_url(value: str, name: str) -> str:
    """"" or an https URL with a host: a package index reached in clear text could hand
    hosts any code."""
    if not value:
        return ""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise StackConfigError(f"{key(name)}: expected an https:// URL, got {value!r}")
    return value


def _nearest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=3, cutoff=0.6)
    return f"; nearest: {', '.join(sorted(close))}" if close else ""


def _check_zones(cloud: str, region: str, zones: tuple[str, ...]) -> None:
    if region == LOCAL_REGION:
        bad = [z for z in zones if not (z and z.isalnum())]
        if bad:
            raise StackConfigError(f"{key(cloud + 'Zones')}: {bad[0]!r} is not a zone name")
        return
    known = regions.ZONES[cloud][region]
    for zone in zones:
        if zone not in known:
            raise StackConfigError(
                f"{key(cloud + 'Zones')}: {zone!r} is not a zone of {region} "
                f"(its zones: {', '.join(known)})"
            )


def _load_cloud(r: _Reader, environment: str, cloud: str) -> CloudConfig:
    need = REDUNDANCY[environment]
    enabled = f"required when {cloud} is in {key('clouds')}"
    region = r.string(f"{cloud}Region", "")
    if not region:
        raise StackConfigError(f"{key(cloud + 'Region')}: {enabled}")
    allowed = {LOCAL_REGION} if environment == "local" else set(regions.ZONES[cloud])
    if region not in allowed:
        raise StackConfigError(
            f"{key(cloud + 'Region')}: unknown {cloud} region {region!r} for {environment}"
            + _nearest(region, allowed)
        )
    zones = r.strings(f"{cloud}Zones", ())
    if not zones:
        raise StackConfigError(f"{key(cloud + 'Zones')}: {enabled}")
    _check_zones(cloud, region, zones)
    if len(set(zones)) != len(zones):
        raise StackConfigError(f"{key(cloud + 'Zones')}: zones repeat")
    if len(zones) < need.min_zones:
        raise StackConfigError(
            f"{key(cloud + 'Zones')}: {environment} needs at least {need.min_zones} zones, "
            f"got {len(zones)}"
        )
    hosts = r.integer(f"{cloud}HostsPerZone", 1)
    if hosts < need.min_hosts_per_zone:
        raise StackConfigError(
            f"{key(cloud + 'HostsPerZone')}: {environment} needs at least "
            f"{need.min_hosts_per_zone} hosts per zone, got {hosts}"
        )
    cidr_key = key(cloud + "Cidr")
    planned = ipam.cloud_cidr(environment, cloud)
    raw_cidr = r.string(f"{cloud}Cidr", str(planned))
    try:
        cidr = ipam.parse_cidr(raw_cidr, cidr_key)
        if cidr.prefixlen > 16:
            raise AddressPlanError(f"{cidr_key}: needs a /16 or larger, got {cidr}")
        zone_net = ipam.zone_subnets(cidr, len(zones))[0]
    except AddressPlanError as exc:
        raise StackConfigError(str(exc)) from None
    room = zone_net.num_addresses - RESERVED_PER_SUBNET
    if hosts > room:
        raise StackConfigError(
            f"{key(cloud + 'HostsPerZone')}: {hosts} hosts do not fit a zone's {zone_net.prefixlen}"
            f" subnet ({room} usable addresses)"
        )
    size = r.string(f"{cloud}InstanceSize", DEFAULT_INSTANCE_SIZES[cloud])
    # The local stack ignores it (its hosts are processes), like the CLI's default.
    if environment != "local" and (problem := check_instance_size(cloud, size)):
        raise StackConfigError(f"{key(cloud + 'InstanceSize')}: {problem}")
    return CloudConfig(
        cloud=cloud,
        region=region,
        zones=zones,
        hosts_per_zone=hosts,
        instance_size=size,
        cidr=cidr,
        handlers=_handlers(r, cloud),
    )


def _handlers(r: _Reader, cloud: str) -> tuple[str, ...] | None:
    """`skyfleet:<cloud>Handlers`, per cloud like the instance size that decides what a
    host can run (a GPU model's handler on GPU sizes). Every name must be one the agents'
    registry loads (else each agent would fail its start), and the list may not be empty:
    a host that serves nothing has no business in the fleet. Every built-in handler, the
    default, is None: the agent's own default, so no config changes by the key's arrival."""
    name = f"{cloud}Handlers"
    builtin = builtin_handlers()
    names = r.strings(name, builtin)
    if not names:
        raise StackConfigError(f"{key(name)}: empty; a host that serves no handler has no "
                               "business in the fleet")
    known = installed_handlers()
    for handler in names:
        if handler not in known:
            raise StackConfigError(
                f"{key(name)}: no handler named {handler!r} (installed: "
                f"{', '.join(sorted(known))})")
    if len(set(names)) != len(names):
        raise StackConfigError(f"{key(name)}: handlers repeat")
    return None if sorted(names) == list(builtin) else names


DEFAULT_INSTANCE_SIZES = {"aws": "t3.small", "azure": "Standard_B2s", "gcp": "e2-small"}
"""The smallest sizes that hold an agent comfortably; Pulumi.yaml declares the same."""

LOCAL_NETWORKS = ("auto", "netns", "loopback")
"""`skyfleet:localNetwork`: auto is network namespaces when run as root, else loopback."""

DEFAULT_LOCAL_STATE_DIR = ".skyfleet/local"

RESERVED_PER_SUBNET = 5
"""Addresses a cloud keeps in every subnet (AWS and Azure reserve 5, GCP 4)."""


def _port(r: _Reader, name: str, default: int) -> int:
    port = r.integer(name, default)
    if not 0 < port < 65536:
        raise StackConfigError(f"{key(name)}: a port is 1-65535, got {port}")
    return port


def _check_ranges(environment: str, clouds: tuple[CloudConfig, ...]) -> None:
    """Our ranges must not overlap each other nor any other environment's planned range."""
    ranges = {key(c.cloud + "Cidr"): c.cidr for c in clouds}
    for env in ENVIRONMENTS:
        if env == environment:
            continue
        for cloud in CLOUDS:
            ranges[f"plan:{env}/{cloud}"] = ipam.cloud_cidr(env, cloud)
    try:
        ipam.check_disjoint(ranges)
    except AddressPlanError as exc:
        message = str(exc)
        if message.startswith("plan:"):
            # Name the operator's key, never the plan's internal label.
            ours = next(k for k, v in ranges.items() if k.startswith(NAMESPACE) and k in message)
            message = f"{ours}: {message}"
        raise StackConfigError(message) from None


def load_policy(path_text: str, version: int, root: Path) -> tuple[Path, dict[str, Any]]:
    """Read and validate the policy document; its version must equal the config's."""
    from skyfleet.policy.model import PolicyValidationError, parse_policy

    if "\x00" in path_text:
        raise StackConfigError(f"{key('policyFile')}: contains a NUL byte")
    path = (root / path_text).resolve()
    policy_root = (root / POLICY_DIR).resolve()
    if not path.is_relative_to(policy_root):
        raise StackConfigError(f"{key('policyFile')}: must be under {POLICY_DIR}/, got {path_text}")
    if not path.is_file():
        raise StackConfigError(f"{key('policyFile')}: no such file {path_text}")
    from skyfleet.config.policy_defaults import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH
    from skyfleet.policy.adoption import nesting_depth

    text = path.read_text()
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise StackConfigError(f"{key('policyFile')}: {path_text} is larger than the "
                               f"{MAX_DOCUMENT_BYTES} byte limit of a policy")
    if nesting_depth(text, MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH:
        raise StackConfigError(f"{key('policyFile')}: {path_text} nests deeper than the "
                               f"limit of {MAX_DOCUMENT_DEPTH}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackConfigError(f"{key('policyFile')}: {path_text} is not JSON: {exc}") from None
    if isinstance(document, dict) and {"document", "signatures"} <= document.keys():
        # The stack signs with skyfleet:fleetSigningKey; a signature made elsewhere would
        # publish a key the fleet may not trust, and an envelope's version would dodge the
        # check below.
        raise StackConfigError(
            f"{key('policyFile')}: {path_text} is a signed envelope; name the plain document "
            "(the stack signs it with its fleet key)")
    try:
        parsed = parse_policy(document)
    except PolicyValidationError as exc:
        raise StackConfigError(f"{key('policyFile')}: {path_text}: {exc}") from None
    if parsed.version != version:
        raise StackConfigError(
            f"{key('policyVersion')}: {version} does not match version {parsed.version} "
            f"in {path_text}"
        )
    return path, document


def load_stack_config(
    source: ConfigSource, environment: str, root: Path = REPO_ROOT
) -> StackConfig:
    """Validate the whole stack config; raise StackConfigError naming the first bad key."""
    r = _Reader(source)
    environment = r.string("environment", environment)
    if environment not in ENVIRONMENTS:
        raise StackConfigError(
            f"{key('environment')}: unknown environment {environment!r}; "
            f"expected one of {', '.join(ENVIRONMENTS)}"
        )
    names = r.strings("clouds")
    for name in names:
        if name not in CLOUDS:
            raise StackConfigError(
                f"{key('clouds')}: unknown cloud {name!r}; expected {', '.join(CLOUDS)}"
            )
    if len(set(names)) != len(names):
        raise StackConfigError(f"{key('clouds')}: clouds repeat")
    need = REDUNDANCY[environment]
    if len(names) < need.min_clouds:
        raise StackConfigError(
            f"{key('clouds')}: {environment} needs at least {need.min_clouds} clouds, "
            f"got {len(names)}"
        )
    clouds = tuple(_load_cloud(r, environment, name) for name in CLOUDS if name in names)
    _check_ranges(environment, clouds)
    admin_ranges = []
    for i, raw in enumerate(r.strings("adminRanges", ())):
        try:
            net = ipam.parse_cidr(raw, f"{key('adminRanges')}[{i}]")
        except AddressPlanError as exc:
            raise StackConfigError(str(exc)) from None
        if net.prefixlen == 0:
            raise StackConfigError(f"{key('adminRanges')}[{i}]: the whole internet is not admin")
        admin_ranges.append(net)
    version = r.integer("policyVersion")
    policy_file, document = load_policy(r.string("policyFile"), version, root)
    local_network = r.string("localNetwork", "auto")
    if local_network not in LOCAL_NETWORKS:
        raise StackConfigError(f"{key('localNetwork')}: expected one of "
                               f"{', '.join(LOCAL_NETWORKS)}, got {local_network!r}")
    return StackConfig(
        environment=environment,
        clouds=clouds,
        policy_file=policy_file,
        policy_version=version,
        policy_document=document,
        agent_port=_port(r, "agentPort", DEFAULT_AGENT_PORT),
        metrics_port=_port(r, "metricsPort", DEFAULT_METRICS_PORT),
        runtime_version=r.string("runtimeVersion", skyfleet.__version__),
        runtime_index=_https_url(r.string("runtimeIndex", ""), "runtimeIndex"),
        admin_ranges=tuple(admin_ranges),
        local_state_dir=(root / r.string("localStateDir", DEFAULT_LOCAL_STATE_DIR)).absolute(),
        local_network=local_network,
        tunnel_key_generations=_key_generations(
            r.string("tunnelKeyGenerations", "{}"), environment,
            tuple(c.cloud for c in clouds)),
        handler_settings=_handler_settings(r.string("handlerSettings", "{}"), environment,
                                           clouds),
    )


def _key_generations(raw: str, environment: str, clouds: tuple[str, ...]) -> dict[str, int]:
    """`{"<tunnel label>": n}`: raise n to re-key that tunnel; labels are the planned
    tunnels' (`pulumi stack output tunnels`)."""
    name = key("tunnelKeyGenerations")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()):
        raise StackConfigError(f"{name}: expected an object of tunnel label -> generation "
                               f"(an integer >= 0), got {raw!r}")
    known = [t.label for t in plan_mesh(environment, clouds)] if len(clouds) > 1 else []
    for label in value:
        if label not in known:
            raise StackConfigError(f"{name}: no tunnel {label!r} in this stack"
                                   + (_nearest(label, known) if known else " (one cloud)"))
    return dict(value)


LOCAL_HOST_PLACEHOLDER = "{host}"
"""In a handler setting of the local stack: this machine as its agents reach it. A local
fleet's agents reach the operator's machine (where a stand-in model server runs) at
127.0.0.1 on loopback, but from their namespaces only at the root namespace's address in
the fleet's block, which `pulumi up` claims when it builds the network; so the stack
config names the machine, and the local hosts fill in the address (`resolve_host`)."""


def _handler_settings(raw: str, environment: str, clouds: tuple[CloudConfig, ...]
                      ) -> dict[str, dict[str, HandlerValue]]:
    """`{"<handler>": {"<key>": value}}`: each handler's settings, in one place for the
    environment and rendered into every host's agent config that serves the handler. The
    agent's own rules for the tables are checked here too (it would refuse its start
    on them, after the hosts exist): scalars or lists of them, and no secret, since the
    config is published in clear text; the handler is one the hosts install and some
    enabled cloud serves (a table for a handler no host runs configures nothing)."""
    name = key("handlerSettings")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise StackConfigError(f"{name}: expected an object of handler name -> its settings "
                               f"(an object), got {raw!r}")
    known = installed_handlers()
    settings: dict[str, dict[str, HandlerValue]] = {}
    for handler, table in value.items():
        where = f"{name}.{handler}"
        if handler not in known:
            raise StackConfigError(f"{where}: no handler named {handler!r} (installed: "
                                   f"{', '.join(sorted(known))})")
        if not any(c.handlers is None or handler in c.handlers for c in clouds):
            raise StackConfigError(f"{where}: no enabled cloud serves {handler!r} (see "
                                   f"{key('<cloud>Handlers')})")
        if not isinstance(table, dict):
            raise StackConfigError(f"{where}: expected an object of settings, got {table!r}")
        for setting, item in table.items():
            _check_setting(f"{where}.{setting}", setting, item, environment)
        settings[handler] = dict(table)
    return settings


def _check_setting(where: str, setting: str, value: object, environment: str) -> None:
    problem = handler_setting_problem(setting, value)
    if problem:
        raise StackConfigError(f"{where}: {problem}")
    items = value if isinstance(value, list) else [value]
    if environment != "local" and any(
            isinstance(item, str) and LOCAL_HOST_PLACEHOLDER in item for item in items):
        raise StackConfigError(f"{where}: {LOCAL_HOST_PLACEHOLDER} (this machine) means "
                               "something on the local stack only; name the address")


def resolve_host(settings: dict[str, dict[str, HandlerValue]], host: str
                 ) -> dict[str, dict[str, HandlerValue]]:
    """`settings` with `LOCAL_HOST_PLACEHOLDER` replaced by `host` in every string."""
    def fill(value: HandlerValue) -> HandlerValue:
        if isinstance(value, str):
            return value.replace(LOCAL_HOST_PLACEHOLDER, host)
        if isinstance(value, list):
            return [v.replace(LOCAL_HOST_PLACEHOLDER, host) if isinstance(v, str) else v
                    for v in value]
        return value

    return {handler: {k: fill(v) for k, v in table.items()}
            for handler, table in settings.items()}
