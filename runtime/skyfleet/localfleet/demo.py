"""The end-to-end walk-through of the `local` environment, every step through the Pulumi
engine: `pulumi up` builds the fleet (3 clouds x 3 zones), a steady workload runs, the
policy rolls out by `pulumi config set` + `pulumi preview` + `pulumi up`, a whole cloud is
lost (its agents `kill -9`ed, or cut off with iptables), `pulumi refresh` + `pulumi up`
bring it back, and `pulumi destroy` ends it. Around the loss, sessions of the `assistant`
handler stream their turns through random agents, with the rolled-out policy's session
affinity (`skyfleet.localfleet.sessions`), against the stand-in model server that the
agents' `[handlers.assistant]` table names (`skyfleet:handlerSettings`), run by the demo
as a process of its own.

Every figure in the summary is measured on this run: engine steps by the wall clock
around each command, detection and convergence by polling every agent's own view,
latencies and outcomes from the client's records (one outcome per task; `lost` counts
tasks that never got one and must be 0). The rollout edits Pulumi.local.yaml as an
operator would; the demo puts the file back as it found it when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyfleet.client import AgentClient, MemberRow
from skyfleet.config.agent import load_agent_config
from skyfleet.config.fleet_files import FleetPaths
from skyfleet.fleet_client import Entry, FleetClient
from skyfleet.localfleet import ops
from skyfleet.localfleet.netns import FleetNetwork
from skyfleet.localfleet.netplan import NetworkPlan
from skyfleet.localfleet.sessions import HANDLER, SessionRun, SessionStats, session_stats
from skyfleet.localfleet.stack import STACK, EngineStep, FleetOutputs, LocalStack
from skyfleet.localfleet.workload import Record, Workload

PHASES = ("steady", "rollout", "cloud-loss", "recovery")
STANDIN = "standin-model"
"""The stand-in model server's log name in the fleet's logs folder."""
LOSSES = ("kill", "cut")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    phase_seconds: float = 12.0
    """Length of each phase's workload after its event."""
    rate: float = 40.0
    """Tasks per second submitted through random agents."""
    service_mean: float = 0.03
    """Mean service time of the `sleep` tasks (exponential)."""
    victim_cloud: str = "gcp"
    timeout: float = 10.0
    """Client deadline of each task."""
    rollout_file: str = "policies/sticky-sessions.json"
    """The document the rollout names; its own version is the one rolled out. It is in
    force during the loss, so its `sessions.affinity` is what the sessions show."""
    loss: str = "kill"
    """How the cloud is lost: `kill` (-9 of its agents; refresh + up bring them back) or
    `cut` (iptables between its namespaces and the rest; netns fleets only)."""
    sessions: int = 12
    """Sessions of the `assistant` handler streamed during the loss (0: none)."""
    session_turns: int = 5
    """Turns per session, one after another: the first before the loss (each session's
    owner), the second streaming when it comes, the rest spread over the phase."""
    token_delay: float = 0.06
    """Seconds between the stand-in's tokens: a turn's stream lasts about a second, so
    the loss cuts the streams in flight mid-way."""


@dataclass(frozen=True, slots=True)
class PhaseStats:
    submitted: int
    succeeded: int
    failed: int
    deadline_exceeded: int
    rejected: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    retried: int
    """Tasks that needed more than one executor or entry agent (failover)."""
    top_error: str = ""
    """The most frequent reason among tasks that did not succeed."""


@dataclass(slots=True)
class DemoReport:
    phases: dict[str, PhaseStats] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    engine: list[EngineStep] = field(default_factory=list)
    """Every engine command the demo ran, in order, with its time."""
    rollout_preview: list[str] = field(default_factory=list)
    """What `pulumi preview` said the rollout changes, one line per resource."""
    join_seconds: float = 0.0
    policy_convergence_seconds: float = 0.0
    detection_seconds: float = 0.0
    rejoin_seconds: float = 0.0
    submitted: int = 0
    lost: int = 0
    leftovers: list[str] = field(default_factory=list)
    """What `pulumi destroy` left behind (processes, namespaces); must be empty."""
    sessions: SessionStats | None = None
    """The sessions streamed across the loss; None when they were not run."""
    sessions_skipped: str = ""
    """Why the sessions did not run, if they did not."""
    victim_cloud: str = ""
    """The cloud lost, as the sessions' summary names it."""
    chart: Path | None = None


def phase_stats(records: list[Record], phase: str) -> PhaseStats:
    mine = [r for r in records if r.phase == phase]
    ok = [(r.finished - r.started) * 1000 for r in mine if r.outcome.status == "succeeded"]
    pct = np.percentile(ok, [50, 99, 99.9]) if ok else np.zeros(3)

    def count(status: str) -> int:
        return sum(1 for r in mine if r.outcome.status.startswith(status))

    return PhaseStats(
        submitted=len(mine),
        succeeded=count("succeeded"),
        failed=count("failed"),
        deadline_exceeded=count("deadline_exceeded"),
        rejected=count("rejected"),
        p50_ms=float(pct[0]),
        p99_ms=float(pct[1]),
        p999_ms=float(pct[2]),
        retried=sum(1 for r in mine if r.outcome.attempts > 1 or r.outcome.entries > 1),
        top_error=_top_error(mine),
    )


def _top_error(records: list[Record]) -> str:
    reasons = Counter(
        f"{r.outcome.status}: {r.outcome.error[:160]}"
        for r in records
        if r.outcome.status != "succeeded"
    )
    if not reasons:
        return ""
    ((reason, n),) = reasons.most_common(1)
    return f"{n} x {reason}"



class Demo:
    def __init__(self, stack: LocalStack, settings: DemoSettings,
                 say: Callable[[str], None]) -> None:
        if settings.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {settings.loss!r}")
        self.stack = stack
        self.settings = settings
        self.say = say
        self.report = DemoReport()
        self.records: list[Record] = []
        self._workload: Workload | None = None
        self._stack_file = stack.project / f"Pulumi.{STACK}.yaml"

    def _event(self, label: str) -> None:
        assert self._workload is not None
        self.report.events.append((self._workload.now(), label))
        self.say(label)

    async def _engine(self, call: Callable[[], EngineStep]) -> EngineStep:
        """Run one engine command off the event loop (the workload keeps running)."""
        step = await asyncio.to_thread(call)
        self.report.engine.append(step)
        self.say(step.describe())
        return step

    async def run(self) -> DemoReport:
        """The whole walk-through; the stack is destroyed and Pulumi.local.yaml restored
        however it ends."""
        original = self._stack_file.read_bytes()
        outputs: FleetOutputs | None = None
        model: subprocess.Popen[bytes] | None = None
        try:
            outputs = await self._bring_up()
            model = await self._start_model(outputs)
            await self._under_load(outputs, model is not None)
        finally:
            if model is not None:
                _stop(model)
            self._stack_file.write_bytes(original)
            await self._engine(self.stack.destroy)
            if outputs is not None:
                self.report.leftovers = ops.leftovers(outputs)
        return self.report

    async def _bring_up(self) -> FleetOutputs:
        report = self.report
        await self._engine(lambda: self.stack.up(refresh=self.stack.exists()))
        outputs = self.stack.outputs()
        clouds = sorted(set(outputs.clouds.values()))
        where = ("each in its own network namespace, clouds joined by "
                 f"{outputs.network['prefix']}-router" if outputs.network["mode"] == "netns"
                 else "on loopback")
        self.say(f"{len(outputs.endpoints)} agents in {len(clouds)} clouds "
                 f"({', '.join(clouds)}), {where}")
        report.join_seconds, policy = await ops.settled(outputs)
        self.say(f"all agents see each other after {report.join_seconds:.2f}s; policy "
                 f"v{outputs.policy_version} on every agent {policy:.2f}s later")
        return outputs

    async def _start_model(self, outputs: FleetOutputs) -> subprocess.Popen[bytes] | None:
        """The stand-in model server, started where the agents' `[handlers.assistant]`
        table says their model is (the stack config's `{host}` filled in by the engine:
        loopback, or the root namespace's address in the fleet's network); None, with the
        reason in the report, when the sessions are not to run."""
        if not self.settings.sessions:
            self.report.sessions_skipped = "no sessions asked for"
            return None
        found = _model_address(outputs)
        if isinstance(found, str):
            self.report.sessions_skipped = found
            self.say(f"sessions skipped: {found}")
            return None
        host, port = found
        log = FleetPaths(outputs.state_dir).log_path(STANDIN)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            model = subprocess.Popen(
                [sys.executable, "-m", "skyfleet_assistant.standin", "--host", host,
                 "--port", str(port), "--delay", str(self.settings.token_delay)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            await asyncio.to_thread(_await_port, host, port, model, log)
        except BaseException:
            _stop(model)
            raise
        self.say(f"stand-in model server (pid {model.pid}) at http://{host}:{port}/v1, "
                 f"{self.settings.token_delay:g}s between tokens")
        return model

    async def _under_load(self, outputs: FleetOutputs, with_sessions: bool) -> None:
        s, report = self.settings, self.report
        admin = ops.watch(outputs)
        entries = [Entry(n, a) for n, a in outputs.endpoints.items()]
        client = FleetClient(entries, admin.tls, rng=random.Random(7))
        payload = json.dumps({"mean": s.service_mean, "dist": "exponential"}).encode()
        workload = Workload(client, s.rate, payload, timeout=s.timeout, rng=random.Random(11))
        self._workload = workload
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(workload.run(stop))
        ticker = asyncio.get_running_loop().create_task(self._progress(workload))
        try:
            async with AsyncExitStack() as clients:
                sessions = {n: await clients.enter_async_context(
                                AgentClient(a, admin.tls, agent_name=n))
                            for n, a in outputs.endpoints.items()} if with_sessions else {}
                await self._phases(workload, outputs, sessions)
        finally:
            stop.set()
            await runner
            ticker.cancel()
            await client.close()
        self.records = workload.records
        for phase in PHASES:
            report.phases[phase] = phase_stats(workload.records, phase)
        report.submitted, report.lost = workload.submitted, workload.lost

    async def _progress(self, workload: Workload, every: float = 2.0) -> None:
        """A line every few seconds: what was submitted, what came back, what is open."""
        while True:
            await asyncio.sleep(every)
            done = workload.records
            ok = sum(1 for r in done if r.outcome.status == "succeeded")
            self.say(
                f"  [{workload.phase}] submitted {workload.submitted}, succeeded {ok}, "
                f"not succeeded {len(done) - ok}, in flight {workload.submitted - len(done)}"
            )

    async def _phases(self, workload: Workload, outputs: FleetOutputs,
                      sessions: dict[str, AgentClient]) -> None:
        s, report = self.settings, self.report
        fleet, names = ops.watch(outputs), list(outputs.endpoints)
        workload.phase = "steady"
        self._event(f"steady: {s.rate:.0f} tasks/s through random agents")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "rollout"
        version = int(json.loads((self.stack.project / s.rollout_file).read_text())["version"])
        self._event(f"rollout: pulumi config set skyfleet:policyFile {s.rollout_file}, "
                    f"skyfleet:policyVersion {version}")
        await asyncio.to_thread(self.stack.set_config, "skyfleet:policyFile", s.rollout_file)
        await asyncio.to_thread(self.stack.set_config, "skyfleet:policyVersion", str(version))
        step, changes = await asyncio.to_thread(self.stack.preview)
        report.engine.append(step)
        report.rollout_preview = changes
        self.say(step.describe())
        for line in changes:
            self.say(f"  preview: {line}")
        started = workload.now()
        await self._engine(self.stack.up)
        await fleet.wait_for(_on_version(version), names, timeout=60,
                             what=f"policy v{version} everywhere")
        report.policy_convergence_seconds = workload.now() - started
        self.say(f"every agent runs v{version} {report.policy_convergence_seconds:.2f}s "
                 "after `pulumi up` began")
        await asyncio.sleep(s.phase_seconds)

        workload.phase = "cloud-loss"
        victims = [n for n in names if outputs.clouds[n] == s.victim_cloud]
        survivors = [n for n in names if n not in victims]
        network = _network(outputs) if s.loss == "cut" else None
        lost = asyncio.Event()
        conversations: asyncio.Task[None] | None = None
        try:
            if sessions:
                run = SessionRun(sessions, s.sessions, s.session_turns, lost.is_set,
                                 timeout=s.timeout, pause=s.phase_seconds / s.session_turns,
                                 rng=random.Random(13))
                conversations = asyncio.get_running_loop().create_task(
                    self._sessions(run, frozenset(victims)))
                self._event(f"sessions: {s.sessions} sessions of `{HANDLER}`, "
                            f"{s.session_turns} turns each, streamed through random agents")
                await asyncio.wait_for(run.first_turns.wait(), timeout=s.timeout * 2)
                # Every session's second turn is streaming now: let it deliver a few tokens.
                await asyncio.sleep(s.token_delay * 4)
            lost.set()
            if network is not None:
                self._event(f"{s.victim_cloud} cut: cut off from the other clouds (iptables)")
                network.cut(s.victim_cloud)
            else:
                self._event(f"{s.victim_cloud} lost: kill -9 of its {len(victims)} agents")
                for name in victims:
                    _kill(outputs.agents[name].pid)
            report.detection_seconds = await fleet.wait_for(
                lambda views: all(v[x].state == "dead" for v in views.values() for x in victims),
                survivors, timeout=120, what=f"{s.victim_cloud} seen dead by all others")
            self.say(f"all survivors marked {s.victim_cloud} failed after "
                     f"{report.detection_seconds:.2f}s")
            await asyncio.sleep(s.phase_seconds)
            if conversations is not None:
                await conversations  # their last turns, before recovery moves sessions back
        finally:
            if conversations is not None and not conversations.done():
                conversations.cancel()  # the phase failed: its sessions end with it

        workload.phase = "recovery"
        started = workload.now()
        if network is not None:
            self._event(f"{s.victim_cloud} back: reconnected")
            network.heal()
        else:
            self._event(f"{s.victim_cloud} back: pulumi refresh (the engine notices the dead "
                        "agents), pulumi up (starts them again)")
            await self._engine(self.stack.refresh)
            await self._engine(self.stack.up)
            # The restarted agents have new pids: the stack's outputs say which.
            outputs = self.stack.outputs()
        await fleet.wait_converged(names, timeout=120)
        await fleet.wait_for(_on_version(version), names, timeout=60,
                             what=f"policy v{version} after rejoin")
        report.rejoin_seconds = workload.now() - started
        self.say(f"{s.victim_cloud} back in the fleet on v{version} "
                 f"{report.rejoin_seconds:.2f}s after recovery began")
        await asyncio.sleep(s.phase_seconds)

    async def _sessions(self, run: SessionRun, victims: frozenset[str]) -> None:
        turns = await run.run()
        self.report.sessions = session_stats(turns, victims)
        self.report.victim_cloud = self.settings.victim_cloud
        self.say(f"sessions done: {len(turns)} turns")


def _model_address(outputs: FleetOutputs) -> tuple[str, int] | str:
    """(host, port) of the model server every agent's `[handlers.assistant]` names, or why
    the sessions cannot run."""
    urls = {load_agent_config(Path(a.config)).handler_config.get(HANDLER, {}).get("base_url")
            for a in outputs.agents.values()} - {None}
    if not urls:
        return (f"no agent has a [handlers.{HANDLER}] base_url (skyfleet:handlerSettings "
                "names no model)")
    if len(urls) != 1:
        return f"the agents name different models: {', '.join(sorted(map(str, urls)))}"
    (url,) = urls
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        return f"{url}: the stand-in serves http://HOST:PORT/v1 only"
    return parts.hostname, parts.port


def _await_port(host: str, port: int, process: subprocess.Popen[bytes], log: Path,
                timeout: float = 15.0) -> None:
    """Until the server started as `process` accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in model server exited ({process.returncode}): "
                               + log.read_text(errors="replace")[-1000:])
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stand-in model server does not answer on "
                                   f"{host}:{port} after {timeout:g}s") from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """End the stand-in (started by the demo, so signalled by its pid only)."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _network(outputs: FleetOutputs) -> FleetNetwork:
    """The stack's namespaced network, to cut and heal (a `cut` needs netns)."""
    if outputs.network.get("mode") != "netns":
        raise ValueError("loss: `cut` needs the netns network (root; skyfleet:localNetwork)")
    return FleetNetwork(NetworkPlan.of_record(outputs.network))


def _on_version(version: int) -> Callable[[dict[str, dict[str, MemberRow]]], bool]:
    """Every observer reports itself on `version`."""
    return lambda views: all(v[n].policy_version == version for n, v in views.items())
