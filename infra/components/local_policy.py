"""LocalPolicyFile: the local stack's policy store, the file every local agent watches.

Clouds publish the signed policy as an object per cloud (SSM, Blob, GCS); on this machine
it is `<state>/policy/source/policy.json`, which each agent's `policy.source` names. The
resource carries the version and canonical hash beside the signed text, so:

- `check` refuses a publication that would move the fleet backwards or give a published
  version another document (`infra.policy_rollout`); `pulumi preview` fails naming
  `skyfleet:policyVersion` and nothing is written;
- an update is an update in place (never a replacement), written atomically, and returns
  once every agent of the stack reports the new version, like `kubectl rollout status`:
  `pulumi up` ends when the rollout has, or fails naming the agents that lag.

The file is created before any agent starts (the agents depend on it), so a new fleet's
first statuses already carry its policy.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra.policy_rollout import Published, refusal

ROLLOUT_TIMEOUT = 60.0
"""Seconds an update waits for every agent to run the new version."""
_POLL = 0.1


def write_atomically(path: Path, content: str) -> None:
    """Local agents watch this file: they must never see half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def lagging(endpoints: dict[str, str], admin_tls_dir: Path, version: int) -> list[str]:
    """Agents that do not (yet) report `version` as their own, as 'name (why)'."""
    from skyfleet.client import AgentClient, AgentError, tls_files_in
    from skyfleet.transport.tls import TlsMaterial

    if not endpoints:
        return []
    tls = TlsMaterial.load(tls_files_in(admin_tls_dir, "admin"))

    async def one(name: str, endpoint: str) -> str | None:
        async with AgentClient(endpoint, tls, agent_name=name) as client:
            try:
                _, rows = await client.list_members(timeout=2.0)
            except AgentError as exc:
                return f"{name} ({exc})"
        own = next((r for r in rows if r.name == name), None)
        running = own.policy_version if own else 0
        return None if running == version else f"{name} (runs v{running})"

    async def all_of() -> list[str]:
        found = await asyncio.gather(*(one(n, e) for n, e in sorted(endpoints.items())))
        return [f for f in found if f is not None]

    return asyncio.run(all_of())


class LocalPolicyFileProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        current = (Published(int(olds["version"]), olds["hash"])
                   if olds.get("version") is not None else None)
        why = refusal(current, Published(int(news["version"]), news["hash"]))
        return CheckResult(news, [CheckFailure("version", why)] if why else [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        write_atomically(Path(props["path"]), props["content"])
        return CreateResult(id_=props["path"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("content", "version", "hash", "endpoints", "state_dir")
                   if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed) or olds.get("path") != news.get("path"),
                          replaces=["path"] if olds.get("path") != news.get("path") else [])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from skyfleet.config.fleet_files import FleetPaths

        write_atomically(Path(news["path"]), news["content"])
        if olds.get("endpoints") != news.get("endpoints"):
            # The agents are being replaced in this very update (a new network), and the
            # new ones start after this file is written: they read it at start.
            return UpdateResult(outs=news)
        deadline = time.monotonic() + ROLLOUT_TIMEOUT
        tls_dir = FleetPaths(Path(news["state_dir"])).tls
        while behind := lagging(news["endpoints"], tls_dir, int(news["version"])):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"policy v{news['version']} written to {news['path']}, but after "
                    f"{ROLLOUT_TIMEOUT:.0f}s these agents do not run it: {', '.join(behind)}")
            time.sleep(_POLL)
        return UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(id_)
        content = path.read_text() if path.is_file() else ""
        return ReadResult(id_=id_, outs={**props, "path": id_, "content": content})

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        Path(id_).unlink(missing_ok=True)


class LocalPolicyFile(Resource, module="skyfleet", name="LocalPolicyFile"):
    def __init__(self, name: str, *, path: str, content: pulumi.Input[str], version: int,
                 hash: str, endpoints: pulumi.Input[dict[str, str]], state_dir: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalPolicyFileProvider(), name, {
            "path": path, "content": content, "version": version, "hash": hash,
            "endpoints": endpoints, "state_dir": state_dir,
        }, opts)
