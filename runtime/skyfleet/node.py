"""The agent: one gRPC server over mTLS (membership, admin, health, reflection) and the
loops that drive the protocol cores.

Lifecycle: `async with Agent(config) as agent: await agent.stopped()`; leaving the block
announces a graceful leave, lets it spread, then stops the server with a grace period.
One life per object (`AgentState`): a restarted agent is a new process, a new incarnation.
The loops run in one TaskGroup: if one fails, the others stop and the agent leaves, its
`failure` saying why — an agent that gossips but no longer keeps its policy would look
healthy to the fleet while routing by a stale one, worse than a restart by its supervisor.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from skyfleet._generated.skyfleet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from skyfleet.config.agent import (
    CHANNEL_GRACE,
    CREDENTIALS_POLL,
    AgentConfig,
    load_agent_config,
)
from skyfleet.config.errors import ConfigError
from skyfleet.config.policy_sync import policy_sync_timings
from skyfleet.membership.members import EventKind, MemberEvent
from skyfleet.membership.messages import NodeMeta, Packet, StatusReport
from skyfleet.membership.swim import Swim
from skyfleet.observability.metrics import Metrics, MetricSources
from skyfleet.observability.refusals import Refusals
from skyfleet.policy.adoption import PolicyAdopter
from skyfleet.policy.model import PolicyDocument
from skyfleet.policy.store import PolicyStore, read_trusted_keys
from skyfleet.policy.sync import PolicySync
from skyfleet.security.certs import CertificateError
from skyfleet.security.claim_keys import CertificateKeys
from skyfleet.security.file_watch import FileWatch
from skyfleet.security.revocation import Revocations
from skyfleet.services.admin import AdminService
from skyfleet.services.call_gate import CallGate
from skyfleet.services.membership import MembershipService
from skyfleet.services.policy import PolicyService
from skyfleet.services.tasks import TasksService
from skyfleet.status.publication import StatusAdvertiser
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.handlers import HandlerRegistry, UnknownHandler
from skyfleet.tasks.long_tasks import LongTasks
from skyfleet.tasks.router import Router
from skyfleet.transport.peers import QUEUE_LIMIT, SERVER_OPTIONS, PeerChannels, PeerSender
from skyfleet.transport.policy_fetch import GrpcPolicyFetch
from skyfleet.transport.policy_loop import PolicyKeeper
from skyfleet.transport.port_check import PortChecks
from skyfleet.transport.return_paths import ReturnPaths
from skyfleet.transport.swim_loop import SwimLoop
from skyfleet.transport.task_execute import GrpcTaskExecute
from skyfleet.transport.task_records import GrpcRecordPeers
from skyfleet.transport.tls import ReloadableServerCredentials, TlsMaterial

log = logging.getLogger("skyfleet.agent")

_SERVICES = (
    membership_pb2.DESCRIPTOR.services_by_name["Membership"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    policy_pb2.DESCRIPTOR.services_by_name["Policy"].full_name,
    tasks_pb2.DESCRIPTOR.services_by_name["Tasks"].full_name,
)
_Part = TypeVar("_Part")


class AgentState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    LEAVING = "leaving"
    STOPPED = "stopped"


async def _best_effort(what: str, step: Awaitable[None]) -> None:
    try:
        await step
    except Exception:
        log.exception(f"shutdown: {what} failed; carrying on")


def boot_incarnation() -> int:
    """Milliseconds since the epoch: every restart outbids any news about a previous life
    of the same name, without persisting a counter (memberlist#311)."""
    return time.time_ns() // 1_000_000


def _load_tls(config: AgentConfig) -> TlsMaterial:
    """The agent's TLS files, checked to be an agent certificate for this very node."""
    tls = TlsMaterial.load(config.tls)
    if tls.identity.name != config.node.name or tls.identity.role != "agent":
        raise ConfigError(
            f"tls.cert: certificate is for {tls.identity.name!r} ({tls.identity.role}), "
            f"but node.name is {config.node.name!r}"
        )
    return tls


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        incarnation: int | None = None,
        registry: HandlerRegistry | None = None,
        config_path: Path | None = None,
    ) -> None:
        """`registry` replaces the handlers found through entry points (tests inject
        recording handlers; an embedding application may bring its own). `config_path`,
        the file `config` was read from, is watched: new seeds are taken up live."""
        self.config = config
        self._config_path = config_path
        self._clock = clock
        self._rng = rng or random.Random()
        node = config.node
        meta = NodeMeta(
            node.name,
            node.address,
            cloud=node.cloud,
            region=node.region,
            zone=node.zone,
            labels=tuple(sorted(node.labels.items())),
        )
        # Read at construction, not at start: the membership core signs with the key.
        tls = _load_tls(config)
        self._tls = tls
        self._claim_keys = CertificateKeys(tls.ca, tls.cert, tls.key)
        self._revocations = Revocations()
        self.refusals = Refusals(clock)
        self.swim = Swim(
            meta,
            config.membership,
            random.Random(self._rng.random()),
            keys=self._claim_keys,
            incarnation=boot_incarnation() if incarnation is None else incarnation,
            warm=self._connected,
        )
        self._stop = asyncio.Event()
        self.state = AgentState.NEW
        self.failure: BaseException | None = None
        """Why the loops stopped on their own (None: they did not)."""
        self._supervisor: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        """Set once `start` has finished, either way."""
        self._server: grpc.aio.Server | None = None
        self._channels: PeerChannels | None = None
        self._sender: PeerSender | None = None
        self._loop: SwimLoop | None = None
        self._keeper: PolicyKeeper | None = None
        self._router: Router | None = None
        self._long_tasks: LongTasks | None = None
        self._metrics: Metrics | None = None
        self._advertiser = StatusAdvertiser(config.membership.status_refresh_interval)
        if registry is None:
            try:
                registry = HandlerRegistry.from_entry_points(config.tasks.handlers)
            except UnknownHandler as exc:
                raise ConfigError(str(exc)) from None
        # A table for a handler not served here is a typo or a stale file: failing the
        # start names it, where running on would leave the handler with its defaults.
        unserved = sorted(set(config.handler_config) - set(registry.names()))
        if unserved:
            raise ConfigError(
                f"handlers.{unserved[0]}: no such handler served here "
                f"(serves: {', '.join(registry.names())})"
            )
        self.executor = Executor(
            registry, config.tasks, clock=clock, rng=random.Random(self._rng.random()),
            handler_config=config.handler_config,
        )
        self._health = HealthServicer()
        self._server_credentials = ReloadableServerCredentials(tls)
        self._watch = FileWatch(
            [config.tls.ca, config.tls.cert, config.tls.key, *config.policy.trusted_keys,
             *([config_path] if config_path else [])]
        )

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    @property
    def loop(self) -> SwimLoop:
        return self._part(self._loop)

    @property
    def sender(self) -> PeerSender:
        return self._part(self._sender)

    @property
    def policy(self) -> PolicyKeeper:
        return self._part(self._keeper)

    @property
    def long_tasks(self) -> LongTasks:
        return self._part(self._long_tasks)

    def _part(self, part: _Part | None) -> _Part:
        """A part that exists once the agent has started."""
        if part is None:
            raise RuntimeError(f"agent is {self.state.value}: its parts exist once started")
        return part

    async def start(self) -> None:
        if self.state is not AgentState.NEW:
            raise RuntimeError(f"agent is {self.state.value}: an agent starts once")
        self.state = AgentState.STARTING
        try:
            await self._start()
        except BaseException:
            # Whatever was built stops with it: a failed start leaves no port open.
            await self._stop_parts(grace=0)
            self.state = AgentState.STOPPED
            raise
        finally:
            self._settled.set()
        self.state = AgentState.RUNNING

    async def _start(self) -> None:
        cfg = self.config
        tls = self._tls
        self._channels = PeerChannels(tls.channel_credentials())
        return_paths = ReturnPaths(QUEUE_LIMIT)
        self._sender = PeerSender(
            self._channels,
            send_timeout=max(1.0, cfg.membership.probe_interval),
            deliver=self._deliver,
            return_paths=return_paths,
            clock=self._clock,
            port_checks=PortChecks(cfg.membership.probe_timeout, self._refused),
        )
        self._loop = SwimLoop(self.swim, self._sender.send, self._clock)
        self._loop.add_listener(self._on_member_event)
        self._keeper = self._policy_keeper()
        self._apply_revocations()
        self._loop.add_status_listener(self._keeper.nudge)
        self._router = Router(
            swim=self.swim,
            executor=self.executor,
            remote=GrpcTaskExecute(self.swim.name, self._channels),
            policy=self._keeper.adopter.current or PolicyDocument(version=0),
            clock=self._clock,
            rng=random.Random(self._rng.random()),
        )
        self._long_tasks = LongTasks(
            swim=self.swim, router=self._router, executor=self.executor,
            peers=GrpcRecordPeers(self._channels), settings=cfg.tasks, clock=self._clock,
        )
        server = grpc.aio.server(
            options=SERVER_OPTIONS, interceptors=[CallGate(self._revocations, self.refusals)]
        )
        membership_pb2_grpc.add_MembershipServicer_to_server(
            MembershipService(
                self._loop, return_paths, self._revocations, self._sender.port_checks.check
            ),
            server,
        )
        admin_pb2_grpc.add_AdminServicer_to_server(
            AdminService(self._loop, self._clock, self._stop, self.refusals), server
        )
        policy_pb2_grpc.add_PolicyServicer_to_server(PolicyService(self._keeper), server)
        tasks_pb2_grpc.add_TasksServicer_to_server(
            TasksService(self._router, self.executor, self._long_tasks), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                *_SERVICES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        try:
            server.add_secure_port(cfg.bind, self._server_credentials.credentials)
        except RuntimeError as exc:
            raise ConfigError(f"node.bind: cannot listen on {cfg.bind}: {exc}") from None
        await server.start()
        self._server = server
        if cfg.metrics_bind:
            self._metrics = Metrics(MetricSources(
                swim=self.swim, refusals=self.refusals, sender=self._sender,
                policy_version=lambda: self.policy.version, ledger=self._router.ledger,
                executor=self.executor,
            ))
            self._router.on_result = self._metrics.observe
            try:
                await self._metrics.serve(cfg.metrics_bind)
            except OSError as exc:
                raise ConfigError(
                    f"agent.metrics_bind: cannot listen on {cfg.metrics_bind}: {exc.strerror}"
                ) from None
        for service in ("", *_SERVICES):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._loop.start(cfg.seeds)
        self.publish_status()
        self._supervisor = asyncio.get_running_loop().create_task(self._run_loops())
        self._supervisor.add_done_callback(self._loops_ended)
        log.info(
            "agent started",
            extra={"bind": cfg.bind, "address": cfg.node.address, "seeds": list(cfg.seeds)},
        )

    async def _run_loops(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.loop.run(), name="membership")
            group.create_task(self.policy.run(), name="policy")
            group.create_task(self._advertise(), name="status")
            group.create_task(self._watch_credentials(), name="credentials")
            group.create_task(self.long_tasks.supervise(), name="long tasks")

    def _loops_ended(self, supervisor: asyncio.Task[None]) -> None:
        if supervisor.cancelled():
            return  # shutdown stopped them
        failure = supervisor.exception()
        if isinstance(failure, BaseExceptionGroup):
            failure = failure.exceptions[0]
        self.failure = failure or RuntimeError("the agent's loops ended on their own")
        log.error("agent loop failed, leaving", exc_info=self.failure)
        self.request_stop()

    async def _watch_credentials(self) -> None:
        while True:
            await asyncio.sleep(CREDENTIALS_POLL)
            self.reload_credentials()

    def reload_credentials(self) -> None:
        """Take up changed TLS files and trusted keys without a restart: new handshakes
        present the new certificate and trust the new CA bundle, new dials use them,
        claims are signed with the new key, the next policy is checked against the new
        keys. A file that does not fit (a key without its certificate yet, another
        node's certificate) is refused with its key named and the old ones stay."""
        changed = self._watch.changed()
        cfg = self.config
        if self._config_path is not None and self._config_path in changed:
            self._reload_config(self._config_path)
        if changed & {cfg.tls.ca, cfg.tls.cert, cfg.tls.key}:
            try:
                tls = _load_tls(cfg)
                self._claim_keys.rotate(tls.ca, tls.cert, tls.key)
            except (ConfigError, CertificateError) as exc:
                log.error(f"TLS files not reloaded, keeping the current ones: {exc}")
            else:
                self._tls = tls
                self._server_credentials.replace(tls)
                self.channels.set_credentials(tls.channel_credentials(), CHANNEL_GRACE)
                log.info("TLS credentials reloaded",
                         extra={"serial": tls.identity.serial, "cert": str(cfg.tls.cert)})
        if changed & set(cfg.policy.trusted_keys):
            try:
                trusted = read_trusted_keys(cfg.policy.trusted_keys)
            except ValueError as exc:
                log.error(f"policy.trusted_keys not reloaded, keeping the current ones: {exc}")
            else:
                self.policy.adopter.set_trusted_keys(trusted)
                log.info("trusted policy keys reloaded",
                         extra={"files": [str(p) for p in cfg.policy.trusted_keys]})

    def _reload_config(self, path: Path) -> None:
        """A changed config file: the seeds apply now (what a fleet that grows a zone
        changes); anything else is named and waits for a restart, as binding a new
        address or a new name cannot happen under running connections."""
        try:
            new = load_agent_config(path)
        except (ConfigError, OSError) as exc:
            log.error(f"config not reloaded, keeping the running one: {exc}")
            return
        if new.seeds != self.config.seeds:
            self.swim.set_seeds(new.seeds)
            log.info("seeds reloaded", extra={"seeds": list(new.seeds)})
        waiting = [f.name for f in fields(AgentConfig)
                   if f.name != "seeds" and getattr(new, f.name) != getattr(self.config, f.name)]
        self.config = replace(self.config, seeds=new.seeds)
        if waiting:
            log.warning(f"config changes that apply at the next restart: {', '.join(waiting)}",
                        extra={"fields": waiting})

    def _policy_keeper(self) -> PolicyKeeper:
        """The adopter starts on the persisted policy, so a restarted agent routes by the
        last policy it accepted before it hears from anyone."""
        cfg = self.config
        try:
            trusted = read_trusted_keys(cfg.policy.trusted_keys)
        except ValueError as exc:
            raise ConfigError(f"policy.trusted_keys: {exc}") from None
        store = PolicyStore(cfg.state_dir)
        loaded = store.load(trusted)
        timings = policy_sync_timings(cfg.membership)
        return PolicyKeeper(
            adopter=PolicyAdopter(trusted_keys=trusted, current=loaded.envelope),
            store=store,
            swim=self.swim,
            fetch=GrpcPolicyFetch(self.channels),
            sync=PolicySync(
                random.Random(self._rng.random()),
                retry_after=timings.retry_after,
                fetch_timeout=timings.fetch_timeout,
            ),
            clock=self._clock,
            source=cfg.policy.source,
            on_change=self._policy_changed,
            timings=timings,
        )

    @property
    def channels(self) -> PeerChannels:
        return self._part(self._channels)

    @property
    def router(self) -> Router:
        return self._part(self._router)

    def _policy_changed(self) -> None:
        document = self.policy.adopter.current
        if document is not None and self._router is not None:
            self._router.set_policy(document)
        self._apply_revocations()
        self.publish_status()

    def _apply_revocations(self) -> None:
        """The policy's revoked serials: calls from them refused from now on (the call
        gate, open membership streams), their certificates no longer sign claims, and
        the members that held them leave our table."""
        document = self.policy.adopter.current
        serials = document.revoked_certificates if document is not None else frozenset()
        version = document.version if document is not None else 0
        if not serials and not self._revocations.serials:
            return
        added = self._revocations.update(serials, version)
        if self._tls.identity.serial in serials:
            log.error(
                f"our own certificate (serial {self._tls.identity.serial}) is revoked by "
                f"policy version {version}: peers refuse this agent; issue a new one"
            )
        forgotten = self._claim_keys.revoke(serials) - {self.swim.name}
        self.swim.forget(sorted(forgotten), self._clock())
        if added:
            log.warning(
                f"policy version {version} revokes {len(added)} certificate(s); "
                f"members dropped: {', '.join(sorted(forgotten)) or 'none'}",
                extra={"revoked": sorted(added), "members": sorted(forgotten)},
            )

    def status_report(self) -> StatusReport:
        return self.executor.report(self.policy.version, self.policy.hash)

    def _connected(self, peer: NodeMeta) -> bool:
        """Whether a packet to `peer` would go out without a new handshake."""
        return self._sender is not None and self._sender.connected(peer.address, peer.name)

    def _deliver(self, packet: Packet) -> None:
        """A packet a peer sent back on one of our streams."""
        if self._loop is not None:
            self._loop.deliver(packet)

    def _refused(self, name: str, address: str) -> None:
        """A peer's port refused our connect: membership's evidence."""
        if self._loop is not None:
            self._loop.refused(name, address)

    def _on_member_event(self, event: MemberEvent) -> None:
        """A member that (re)joins has none of our news (the advertiser tells it our
        status at the next tick, so its balancer can route to us at once). A forged
        claim is a refusal of its sender's."""
        self._advertiser.on_member_event(event.kind)
        if event.kind in (EventKind.FAILED, EventKind.LEFT, EventKind.REVOKED):
            self.long_tasks.nudge()  # a run or a supervisor may have gone with it
        if event.kind == EventKind.FORGED:
            sender = self.swim.member(event.source)
            self.refusals.record(
                "forged claim",
                identity=event.source,
                peer=sender.meta.address if sender is not None else "",
                detail=f"a claim about {event.node} not signed by {event.node}, dropped",
            )

    def publish_status(self) -> None:
        """Advertise our status now (also called when the policy changes)."""
        report = self.status_report()
        self.loop.publish_status(report)
        self._advertiser.published(report, self._clock())

    async def _advertise(self) -> None:
        while True:
            await asyncio.sleep(self.config.membership.status_interval)
            report = self.status_report()
            if self._advertiser.tick(report, self._clock()):
                self.loop.publish_status(report)

    def request_stop(self) -> None:
        """Ask the agent to leave (signal handlers, the admin Leave call)."""
        self._stop.set()

    async def stopped(self) -> None:
        """Wait until someone asks the agent to stop."""
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Graceful leave: tell the fleet, let the news spread, drain, stop serving. Once
        only; an agent not running has nothing to leave, and one still starting leaves
        once it has started. Each step of the leave is best-effort (the loop that failed
        may fail again as it says goodbye); the server stops whatever happens."""
        if self.state is AgentState.STARTING:
            self.request_stop()
            await self._settled.wait()
        if self.state is not AgentState.RUNNING:
            return
        self.state = AgentState.LEAVING
        try:
            for service in ("", *_SERVICES):
                await self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
            supervisor = self._part(self._supervisor)
            supervisor.cancel()
            await asyncio.wait([supervisor])  # its failure, if any, is `failure` already
            await _best_effort("announcing the leave", self.loop.leave(
                self.config.membership.leave_propagate_delay))
            await _best_effort("draining peer streams", self.sender.drain())
        finally:
            await self._stop_parts(grace=self.config.shutdown_grace)
            self.state = AgentState.STOPPED
            log.info("agent stopped")

    async def _stop_parts(self, *, grace: float) -> None:
        """Stop every part that exists, each on its own: loops, channels, metrics, server."""
        if self._supervisor is not None and not self._supervisor.done():
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
        if self._long_tasks is not None:
            await _best_effort("stopping long-running tasks", self._long_tasks.stop())
        if self._channels is not None:
            await _best_effort("closing peer channels", self._channels.close())
        if self._metrics is not None:
            await _best_effort("closing the metrics endpoint", self._metrics.close())
        if self._server is not None:
            await self._server.stop(grace)
