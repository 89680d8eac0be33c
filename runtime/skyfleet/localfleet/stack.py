"""The `local` stack driven through the Pulumi engine (the Automation API): the one way a
local fleet comes to be. `skyfleet local up|status|down|demo` and the tests call this;
an operator gets the same stack with `eval "$(skyfleet local env)"; pulumi up -s local`.

Nothing here plans hosts or starts agents: the program (`infra/`) does, under the
engine, and this module reads what it did from the stack outputs. Where the engine keeps
its state is fixed per project folder, so the front end and the operator's own `pulumi`
commands meet the same stack:

    <project>/.skyfleet/pulumi/         the file backend (PULUMI_BACKEND_URL)
    <project>/.skyfleet/pulumi-home/    the CLI's own folder (PULUMI_HOME): workspace
                                        selection, logs; nothing lands in ~/.pulumi
    <project>/<skyfleet:localStateDir>  the fleet's files (CA, agents, logs, policy)

The local stack's passphrase is empty on purpose (Pulumi.local.yaml says why).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

STACK = "local"
PASSPHRASE = ""
ENGINE_DIR = Path(".skyfleet")
"""Relative to the project folder: the backend and the CLI's home live below it."""


class StackError(RuntimeError):
    """An engine command failed; the message is the engine's own diagnostics."""


@dataclass(frozen=True, slots=True)
class AgentRecord:
    pid: int
    config: str
    log: str
    netns: str


@dataclass(frozen=True, slots=True)
class FleetOutputs:
    """The local stack's outputs, typed."""

    endpoints: dict[str, str]
    clouds: dict[str, str]
    """Agent name -> its cloud."""
    agents: dict[str, AgentRecord]
    seeds: list[str]
    state_dir: Path
    network: dict[str, Any]
    """mode, prefix, block, gateway, clouds, agents (see infra/components/local_network.py)."""
    policy_version: int
    policy_hash: str
    ca_cert: str

    @classmethod
    def of(cls, outputs: dict[str, Any]) -> FleetOutputs:
        def value(key: str) -> Any:
            if key not in outputs:
                raise StackError(f"the local stack has no output {key!r}: run `skyfleet "
                                 "local up` (or `pulumi up -s local`) first")
            return outputs[key].value if isinstance(outputs[key], auto.OutputValue) \
                else outputs[key]

        hosts: dict[str, list[str]] = value("hosts")
        return cls(
            endpoints=dict(value("endpoints")),
            clouds={name: cloud for cloud, names in hosts.items() for name in names},
            agents={n: AgentRecord(int(a["pid"]), a["config"], a["log"], a["netns"] or "")
                    for n, a in value("agents").items()},
            seeds=list(value("seeds")),
            state_dir=Path(value("stateDir")),
            network=dict(value("network")),
            policy_version=int(value("policyVersion")),
            policy_hash=value("policyHash"),
            ca_cert=value("caCert"),
        )


@dataclass(frozen=True, slots=True)
class EngineStep:
    """One engine command as it ran: what, how long, what it changed."""

    command: str
    seconds: float
    changes: dict[str, int] = field(default_factory=dict)
    """Operation -> resource count (create, update, delete, same, ...)."""

    def describe(self) -> str:
        done = ", ".join(f"{n} {op}" for op, n in sorted(self.changes.items()) if n)
        return f"{self.command}: {self.seconds:.2f}s ({done or 'nothing to do'})"


def engine_env(project: Path) -> dict[str, str]:
    """The environment every engine command of the local stack runs with."""
    engine = (project / ENGINE_DIR).absolute()
    return {
        "PULUMI_BACKEND_URL": f"file://{engine / 'pulumi'}",
        "PULUMI_HOME": str(engine / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # Analyzer plugins (the guardrail pack's launcher) are found on PATH.
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def pulumi_command() -> auto.PulumiCommand:
    """The CLI the project installed beside its interpreter (.venv/bin/pulumi, linked by
    tools/pulumi/install.sh), else whatever `pulumi` is on PATH."""
    venv = Path(sys.prefix)
    if (venv / "bin" / "pulumi").exists():
        return auto.PulumiCommand(root=str(venv))
    return auto.PulumiCommand()


def find_project(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "Pulumi.yaml").exists() and (folder / f"Pulumi.{STACK}.yaml").exists():
            return folder
    raise StackError(f"no Pulumi.yaml with a Pulumi.{STACK}.yaml in {start} or above; "
                     "pass --project")


class LocalStack:
    """The local stack of one project folder."""

    def __init__(self, project: Path, *, on_output: Callable[[str], None] | None = None) -> None:
        self.project = project.absolute()
        self.env = engine_env(self.project)
        self._on_output = on_output
        self._workspace: auto.LocalWorkspace | None = None
        self._stack: auto.Stack | None = None

    @property
    def workspace(self) -> auto.LocalWorkspace:
        if self._workspace is None:
            (self.project / ENGINE_DIR / "pulumi").mkdir(parents=True, exist_ok=True)
            self._workspace = self._run(lambda: auto.LocalWorkspace(
                work_dir=str(self.project), pulumi_command=pulumi_command(),
                env_vars=self.env))
        return self._workspace

    @property
    def stack(self) -> auto.Stack:
        if self._stack is None:
            self._stack = self._run(lambda: auto.Stack.create_or_select(STACK, self.workspace))
        return self._stack

    def exists(self) -> bool:
        """Whether the backend holds this stack (asking without creating it)."""
        return any(s.name == STACK for s in self._run(self.workspace.list_stacks))

    def preview(self) -> tuple[EngineStep, list[str]]:
        """The step and one line per resource the update would change (`~ policy update
        [version, content, hash]`)."""
        changes: list[str] = []

        def on_event(event: auto.EngineEvent) -> None:
            pre = event.resource_pre_event
            if pre is None or pre.metadata.op in (auto.OpType.SAME, auto.OpType.READ):
                return
            if pre.metadata.type.startswith("pulumi:providers:"):
                return  # the engine's own provider bookkeeping, not a change of ours
            meta = pre.metadata
            name = meta.urn.rsplit("::", 1)[-1]
            kind = meta.type.rsplit(":", 1)[-1]
            keys = list(meta.diffs or ())
            if not keys and meta.old is not None and meta.new is not None:
                # Dynamic providers report no property names: compare the inputs.
                old, new = meta.old.inputs or {}, meta.new.inputs or {}
                keys = sorted(k for k in set(old) | set(new)
                              if k != "__provider" and old.get(k) != new.get(k))
            diffs = f" [{', '.join(keys)}]" if keys else ""
            changes.append(f"{meta.op.value} {name} ({kind}){diffs}")

        start = time.monotonic()
        result = self._run(lambda: self.stack.preview(on_event=on_event, **self._streams()))
        return EngineStep("pulumi preview", time.monotonic() - start,
                          dict(result.change_summary)), changes

    def up(self, *, refresh: bool = False) -> EngineStep:
        start = time.monotonic()
        result = self._run(lambda: self.stack.up(refresh=refresh, **self._streams()))
        return EngineStep("pulumi up" + (" --refresh" if refresh else ""),
                          time.monotonic() - start, dict(result.summary.resource_changes or {}))

    def refresh(self) -> EngineStep:
        start = time.monotonic()
        result = self._run(lambda: self.stack.refresh(**self._streams()))
        return EngineStep("pulumi refresh", time.monotonic() - start,
                          dict(result.summary.resource_changes or {}))

    def destroy(self) -> EngineStep:
        start = time.monotonic()
        result = self._run(lambda: self.stack.destroy(**self._streams()))
        return EngineStep("pulumi destroy", time.monotonic() - start,
                          dict(result.summary.resource_changes or {}))

    def set_config(self, key: str, value: str, *, path: bool = False) -> None:
        """`pulumi config set [--path] key value` (with `path`, `key[0]` sets a list item)."""
        self._run(lambda: self.stack.set_config(key, auto.ConfigValue(value), path=path))

    def remove_config(self, key: str) -> None:
        """`pulumi config rm key`: the key falls back to Pulumi.yaml's default."""
        self._run(lambda: self.stack.remove_config(key))

    def get_config(self, key: str) -> str:
        return self._run(lambda: self.stack.get_config(key)).value

    def outputs(self) -> FleetOutputs:
        return FleetOutputs.of(self._run(lambda: self.stack.outputs()))

    def _streams(self) -> dict[str, Any]:
        return {"color": "never", "on_output": self._on_output} if self._on_output else {
            "color": "never"}

    @staticmethod
    def _run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except auto.CommandError as exc:
            raise StackError(diagnostics(exc)) from None


def diagnostics(exc: auto.CommandError) -> str:
    """The engine's own words on what failed, without the Automation API's wrapping: the
    'Diagnostics:' block of stdout if there is one, else stderr."""
    stdout = getattr(exc, "stdout", "") or ""
    stderr = getattr(exc, "stderr", "") or ""
    if "Diagnostics:" in stdout:
        block = stdout.split("Diagnostics:", 1)[1]
        block = block.split("\nResources:", 1)[0]
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        return "\n".join(lines)
    text = stderr.strip() or stdout.strip() or str(exc)
    return "\n".join(line for line in text.splitlines() if line.strip())


def env_lines(project: Path) -> list[str]:
    """`export` lines that point a shell's `pulumi` at this project's local stack."""
    env = engine_env(project)
    del env["PATH"]
    lines = [export_line(k, v) for k, v in env.items()]
    lines.append(f'export PATH={_quote(str(Path(sys.prefix) / "bin"))}:"$PATH"')
    return lines


def export_line(name: str, value: str) -> str:
    """`export NAME='value'`, quoted for any value a shell's `eval` may meet."""
    return f"export {name}={_quote(value)}"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
