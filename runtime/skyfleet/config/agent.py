"""The agent's configuration file (TOML) and its typed form.

This is the contract between infra (cloud-init writes `/etc/skyfleet/agent.toml`), the
local fleet and `skyfleet agent run`. Example:

    [node]
    name = "aws-1a-0"            # unique in the fleet; must equal the certificate's CN
    cloud = "aws"                # aws | azure | gcp (any label works on the local stack)
    region = "us-east-1"
    zone = "us-east-1a"
    bind = "10.10.1.5:7470"      # where the gRPC server listens
    advertise = "10.10.1.5:7470" # what peers dial; defaults to bind
    labels = { pool = "gpu" }

    [join]
    seeds = ["10.20.1.4:7470", "10.30.1.4:7470"]   # ideally one or more in every cloud

    [tls]
    ca = "/etc/skyfleet/tls/ca.pem"
    cert = "/etc/skyfleet/tls/node.pem"
    key = "/etc/skyfleet/tls/node.key"

    [membership]
    profile = "lan"              # lan | wan | local; any MembershipConfig field overrides it

    [policy]
    trusted_keys = ["/etc/skyfleet/policy/keys/fleet-2026.pub"]
    source = "/etc/skyfleet/policy/current.json"   # file or directory the agent watches

    [tasks]
    capacity = 4                 # tasks run at once (advertised to peers)
    queue_limit = 64             # waiting tasks beyond capacity, then RESOURCE_EXHAUSTED
    handlers = ["echo", "sleep", "cpu"]   # default: every installed handler

    [agent]
    state_dir = "/var/lib/skyfleet"
    metrics_bind = "127.0.0.1:9470"                # empty string disables the endpoint
    log_level = "info"
    shutdown_grace = 1.0         # seconds calls in flight may finish once the agent leaves

    [handlers.assistant]         # a handler's own settings: its `HandlerContext.config`
    base_url = "http://10.10.1.9:8000/v1"
    model = "llama-3.1-8b"
    api_key_env = "MODEL_API_KEY"  # the key itself is never written here (see below)

A `[handlers.<name>]` table is the named handler's to read (what its package documents);
the agent checks only its shape: strings, numbers, booleans and lists of those, for a
handler this agent serves. A secret has no place in it: the file is rendered by infra and
kept in the store in clear text, so `api_key`, `password`, `secret` and `token` are
refused; a handler takes the name of an environment variable or of a file holding one.

Every error names the offending key, e.g. `node.bind: expected host:port, got '7470'`.

`render_agent_config` writes this format and is the parser's inverse: every producer of
config files (infra's cloud hosts, the local fleet) goes through it, so none can write a
file the agent reads differently from what was meant.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from skyfleet.config.errors import ConfigError
from skyfleet.config.membership import MembershipConfig, membership_preset
from skyfleet.config.tasks import TaskSettings

DEFAULT_AGENT_PORT = 7470
"""gRPC port of an agent (membership, tasks, admin, health, reflection)."""

DEFAULT_METRICS_PORT = 9470
"""Prometheus text endpoint of an agent."""
CREDENTIALS_POLL = 5.0
"""Seconds between checks of the TLS files and trusted policy keys: a renewed
certificate, a new CA bundle or a new signing key is in use this soon after its file
changes (the host's fetch timer brings them from the store every minute)."""
SHUTDOWN_GRACE = 1.0
"""Seconds the gRPC server lets calls in flight finish when the agent stops (after its
leave has spread): long enough for a forwarded attempt's answer, short enough that a
restart is not held up by a stuck caller."""
CHANNEL_GRACE = 30.0
"""Seconds channels dialled with the old credentials keep serving their calls after a
reload, before they close and their streams reopen with the new ones."""


NODE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
"""What a node name may be: it is the CN and a DNS SAN of the node's certificate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    name: str
    """Unique node name; peers check it against the CN of the node's certificate."""
    cloud: str
    """Provider the node runs in; failover treats a cloud as one failure domain."""
    region: str
    zone: str
    address: str
    """host:port that peers dial (the advertise address)."""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    ca: Path
    """PEM of the fleet CA: the only issuer whose certificates an agent accepts."""
    cert: Path
    """PEM certificate of this node (or of an admin, for the CLI)."""
    key: Path
    """PEM private key; never logged or printed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySettings:
    trusted_keys: tuple[Path, ...] = ()
    """ed25519 public keys (PEM) whose signatures the agent accepts; several allow rotation."""
    source: Path | None = None
    """A file or directory the agent watches for policy documents delivered by infra."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    node: NodeIdentity
    bind: str
    """host:port the gRPC server listens on."""
    seeds: tuple[str, ...] = ()
    tls: TlsFiles
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    membership_profile: str = "lan"
    """The preset `[membership]` starts from: kept so that the file can be written back
    as the operator wrote it, a profile and the settings that differ from it."""
    policy: PolicySettings = field(default_factory=PolicySettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    state_dir: Path = Path("/var/lib/skyfleet")
    """Where the adopted policy and other durable state are kept."""
    metrics_bind: str = ""
    """host:port of the Prometheus endpoint; empty disables it."""
    log_level: str = "info"
    shutdown_grace: float = SHUTDOWN_GRACE
    handler_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each handler's `[handlers.<name>]` table, by handler name, as written."""


def split_host_port(value: str, key: str) -> tuple[str, int]:
    """Parse `host:port` (IPv6 as `[::1]:7470`), raising ConfigError naming `key`."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{key}: expected host:port, got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"{key}: port out of range in {value!r}")
    return host.strip("[]"), port


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table")
    return value


def _str(table: dict[str, Any], key: str, prefix: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{prefix}.{key}: required")
    if not isinstance(value, str):
        raise ConfigError(f"{prefix}.{key}: expected a string, got {type(value).__name__}")
    return value


def _check_known(table: dict[str, Any], prefix: str, known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key")


def parse_agent_config(doc: dict[str, Any], base_dir: Path = Path(".")) -> AgentConfig:
    """Build an AgentConfig from a parsed TOML document; relative paths are taken from
    `base_dir` (the config file's folder)."""
    _check_known(
        doc, "config",
        {"node", "join", "tls", "membership", "policy", "tasks", "agent", "handlers"},
    )
    node = _table(doc, "node")
    _check_known(node, "node", {"name", "cloud", "region", "zone", "bind", "advertise", "labels"})
    name = _str(node, "name", "node")
    if not NODE_NAME.fullmatch(name):
        raise ConfigError(
            f"node.name: {name!r} is not a node name (1-64 letters, digits, '.', '_', '-', "
            "starting and ending with a letter or digit; it becomes a certificate name)"
        )
    bind = _str(node, "bind", "node", f"127.0.0.1:{DEFAULT_AGENT_PORT}")
    split_host_port(bind, "node.bind")
    advertise = _str(node, "advertise", "node", bind)
    host, _ = split_host_port(advertise, "node.advertise")
    if host in ("0.0.0.0", "::"):
        raise ConfigError("node.advertise: a wildcard address cannot be dialled by peers")
    labels = node.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ConfigError("node.labels: expected a table of strings")
    identity = NodeIdentity(
        name=name,
        cloud=_str(node, "cloud", "node"),
        region=_str(node, "region", "node", ""),
        zone=_str(node, "zone", "node", ""),
        address=advertise,
        labels=dict(labels),
    )

    join = _table(doc, "join")
    _check_known(join, "join", {"seeds"})
    seeds = join.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
        raise ConfigError("join.seeds: expected a list of host:port strings")
    for i, seed in enumerate(seeds):
        split_host_port(seed, f"join.seeds[{i}]")

    tls = _table(doc, "tls")
    _check_known(tls, "tls", {"ca", "cert", "key"})
    tls_files = TlsFiles(
        ca=base_dir / _str(tls, "ca", "tls"),
        cert=base_dir / _str(tls, "cert", "tls"),
        key=base_dir / _str(tls, "key", "tls"),
    )

    mem = dict(_table(doc, "membership"))
    profile = mem.pop("profile", "lan")
    if not isinstance(profile, str):
        raise ConfigError(f"membership.profile: expected a string, got {type(profile).__name__}")
    try:
        membership = membership_preset(profile).with_overrides(mem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None

    pol = _table(doc, "policy")
    _check_known(pol, "policy", {"trusted_keys", "source"})
    keys = pol.get("trusted_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError("policy.trusted_keys: expected a list of paths")
    source = pol.get("source")
    if source is not None and not isinstance(source, str):
        raise ConfigError("policy.source: expected a path")
    policy = PolicySettings(
        trusted_keys=tuple(base_dir / k for k in keys),
        source=base_dir / source if source else None,
    )

    tasks = _parse_tasks(_table(doc, "tasks"))

    agent = _table(doc, "agent")
    _check_known(agent, "agent", {"state_dir", "metrics_bind", "log_level", "shutdown_grace"})
    metrics_bind = _str(agent, "metrics_bind", "agent", "")
    if metrics_bind:
        split_host_port(metrics_bind, "agent.metrics_bind")
    log_level = _str(agent, "log_level", "agent", "info")
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"agent.log_level: unknown level {log_level!r}")
    grace = agent.get("shutdown_grace", SHUTDOWN_GRACE)
    # A TOML boolean is an int to Python: `shutdown_grace = true` must not read as 1.
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < 3600:
        raise ConfigError(
            f"agent.shutdown_grace: expected seconds from 0 to under 3600, got {grace!r}"
        )
    return AgentConfig(
        node=identity,
        bind=bind,
        seeds=tuple(seeds),
        tls=tls_files,
        membership=membership,
        membership_profile=profile,
        policy=policy,
        tasks=tasks,
        state_dir=base_dir / _str(agent, "state_dir", "agent", "/var/lib/skyfleet"),
        metrics_bind=metrics_bind,
        log_level=log_level,
        shutdown_grace=float(grace),
        handler_config=_parse_handler_config(_table(doc, "handlers")),
    )


def _parse_tasks(table: dict[str, Any]) -> TaskSettings:
    known = {f.name for f in fields(TaskSettings)}
    _check_known(table, "tasks", known)
    values = dict(table)
    if "handlers" in values:
        handlers = values["handlers"]
        if not isinstance(handlers, list) or not all(isinstance(h, str) for h in handlers):
            raise ConfigError("tasks.handlers: expected a list of handler names")
        values["handlers"] = tuple(handlers)
    for name, value in values.items():
        default = getattr(TaskSettings(), name)
        # A TOML boolean is an int to Python: `sleep_mean = false` must not read as 0.
        if name != "handlers" and (
            isinstance(value, bool)
            or (
                type(value) is not type(default)
                and not (isinstance(default, float) and isinstance(value, int))
            )
        ):
            raise ConfigError(f"tasks.{name}: expected {type(default).__name__}")
    try:
        settings = TaskSettings(**values)
        settings.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings


SECRET_KEYS = frozenset({"api_key", "password", "secret", "token"})
"""Keys a handler table may not hold: their values would be secrets in a file that infra
publishes in clear text. The handler reads the secret from what `<key>_env` or
`<key>_file` names instead."""


def _parse_handler_config(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`[handlers.<name>]` tables. Values are what `_value` can write back (so a file
    rendered from the config reads the same): no nested tables, no dates, no NaN."""
    config: dict[str, dict[str, Any]] = {}
    for name, settings in table.items():
        prefix = f"handlers.{name}"
        if not isinstance(settings, dict):
            raise ConfigError(f"{prefix}: expected a table")
        for key, value in settings.items():
            problem = handler_setting_problem(key, value)
            if problem:
                raise ConfigError(f"{prefix}.{key}: {problem}")
        config[name] = dict(settings)
    return config


def handler_setting_problem(key: str, value: object) -> str:
    """What is wrong with one setting of a handler's table ("" if nothing): the rule of
    every producer of agent configs (infra's stack config checks it before any host
    exists) and of the agent itself."""
    if key in SECRET_KEYS:
        return (f"a secret is not kept in the config file (it is published in clear "
                f"text); name an environment variable ({key}_env) or a file ({key}_file) "
                "holding it")
    items = value if isinstance(value, list) else [value]
    if not all(_is_scalar(v) for v in items):
        return "expected a string, number, boolean or a list of them"
    return ""


def _is_scalar(value: object) -> bool:
    # A NaN is refused: it would not equal itself read back, nor mean any setting.
    return isinstance(value, str | bool | int) or (
        isinstance(value, float) and value == value
    )


def load_agent_config(path: Path) -> AgentConfig:
    """Read and validate an agent config file."""
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_agent_config(doc, base_dir=path.parent)


def render_agent_config(config: AgentConfig, base_dir: Path = Path(".")) -> str:
    """The TOML text (UTF-8) that `parse_agent_config(tomllib.loads(text), base_dir)`
    reads back as `config`. Paths under `base_dir` are written relative to it, so a
    folder of configs (a local fleet's) can move; other paths as they are. Tuning is
    written only where it departs from its default (membership settings from the
    profile's, [tasks], labels), so a file shows what was chosen; all else, advertise and
    log level included, always is, as infra wrote cloud hosts' configs before sharing
    this renderer (their text, published in the store, stays the same)."""

    def path(value: Path) -> str:
        # Lexical, like the parser's `base_dir / text`: os.path.relpath would fold `..`
        # away, and `base_dir / "../x"` is not equal to the folded path.
        try:
            return str(value.relative_to(base_dir))
        except ValueError:
            return str(value)

    node = config.node
    lines = [
        "[node]",
        _entry("name", node.name),
        _entry("cloud", node.cloud),
        _entry("region", node.region),
        _entry("zone", node.zone),
        _entry("bind", config.bind),
        _entry("advertise", node.address),
    ]
    if node.labels:
        labels = ", ".join(_entry(k, v) for k, v in node.labels.items())
        lines.append(f"labels = {{ {labels} }}")
    lines += ["", "[join]", _entry("seeds", list(config.seeds))]
    lines += [
        "",
        "[tls]",
        _entry("ca", path(config.tls.ca)),
        _entry("cert", path(config.tls.cert)),
        _entry("key", path(config.tls.key)),
    ]
    preset = membership_preset(config.membership_profile)
    lines += ["", "[membership]", _entry("profile", config.membership_profile)]
    changed = sorted(  # by name, as local fleets have always listed their overrides
        f.name for f in fields(MembershipConfig)
        if getattr(config.membership, f.name) != getattr(preset, f.name)
    )
    lines += [_entry(name, getattr(config.membership, name)) for name in changed]
    policy = config.policy
    lines += ["", "[policy]", _entry("trusted_keys", [path(k) for k in policy.trusted_keys])]
    if policy.source is not None:
        lines.append(_entry("source", path(policy.source)))
    defaults = TaskSettings()
    tasks = [
        _entry(f.name, getattr(config.tasks, f.name))
        for f in fields(TaskSettings)
        if getattr(config.tasks, f.name) != getattr(defaults, f.name)
    ]
    if tasks:
        lines += ["", "[tasks]", *tasks]
    lines += [
        "",
        "[agent]",
        _entry("state_dir", path(config.state_dir)),
        _entry("metrics_bind", config.metrics_bind),
        _entry("log_level", config.log_level),
    ]
    if config.shutdown_grace != SHUTDOWN_GRACE:
        lines.append(_entry("shutdown_grace", config.shutdown_grace))
    for name, settings in config.handler_config.items():
        lines += ["", f"[handlers.{_key(name)}]"]
        lines += [_entry(key, value) for key, value in settings.items()]
    return "\n".join(lines) + "\n"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
                  "\f": "\\f", "\r": "\\r"}


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _entry(key: str, value: object) -> str:
    return f"{_key(key)} = {_value(value)}"


def _value(value: object) -> str:
    """The TOML form of the value types a config holds: strings, integers, floats,
    booleans (handler tables only: no agent setting is one, and the parser refuses them
    there) and lists of those."""
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float; TOML spells the
        # infinities as Python does ("inf", "-inf"), and no valid config holds a NaN.
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _string(text: str) -> str:
    """A TOML basic string. Printable characters stay as they are (the file is UTF-8);
    the rest, which TOML forbids raw or a reader could not see, are escaped."""
    out = []
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ValueError(f"{text!r}: a lone surrogate is not text TOML can hold")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(f"\\U{ord(ch):08X}")
    return '"' + "".join(out) + '"'
