"""Prometheus metrics of an agent, read from the protocol cores' own counters at scrape
time (one source of truth: nothing is counted twice), plus a task-latency histogram fed
by the router's results.

Served as text format 0.0.4 on `agent.metrics_bind` by a minimal asyncio HTTP endpoint:
GET /metrics only, no thread, closed with the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from skyfleet.config.agent import split_host_port
from skyfleet.membership.messages import MemberState
from skyfleet.membership.swim import Swim
from skyfleet.observability.refusals import Refusals
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.ledger import Ledger
from skyfleet.tasks.router import Result
from skyfleet.transport.peers import PeerSender

log = logging.getLogger("skyfleet.metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True, slots=True)
class MetricSources:
    """What the metrics read, handed over by the agent once its parts exist: the
    collector depends on these, not on the agent that owns them."""

    swim: Swim
    refusals: Refusals
    sender: PeerSender
    policy_version: Callable[[], int]
    ledger: Ledger
    executor: Executor


class AgentCollector(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        a = self._sources
        states = Counter(m.state for m in a.swim.members())
        members = GaugeMetricFamily(
            "skyfleet_members", "Members of the fleet by state, as seen here", labels=["state"]
        )
        for state in MemberState:
            members.add_metric([state.name.lower()], states.get(state, 0))
        yield members
        yield GaugeMetricFamily(
            "skyfleet_health_score", "Lifeguard local health (0 = healthy)", a.swim.health_score
        )
        s = a.swim.stats
        for name, value, doc in (
            ("probes", s.probes, "Direct probes sent"),
            ("probe_failures", s.probe_failures, "Probes that got no ack, direct or indirect"),
            ("indirect_probes", s.indirect_probes, "Indirect probe requests sent"),
            ("suspicions", s.suspicions, "Members this agent started suspecting"),
            ("refutations", s.refutations, "Times this agent refuted news of its own death"),
            ("push_pulls", s.push_pulls, "Periodic full-state exchanges started"),
            ("refused_connections", s.refused_connections,
             "Connects to members held up that their hosts refused (taken as evidence)"),
            ("refused_claims", s.refused_claims,
             "Membership claims dropped by the incarnation rule (beyond step or ceiling)"),
            ("forged_claims", s.forged_claims,
             "Self-claims (alive, leave) dropped: not signed by the node they speak for"),
            ("claims_asked", s.claims_asked,
             "Signed claims asked of peers (a signer's key not held, an unsigned table row)"),
            ("refused_certificates", s.refused_certificates,
             "Certificates sent with self-claims that the fleet CA did not issue"),
        ):
            yield CounterMetricFamily(f"skyfleet_membership_{name}", doc, value)
        refusals = CounterMetricFamily(
            "skyfleet_refusals",
            "Calls and self-claims refused for who sent them, by reason (no identity, "
            "wrong role, wrong sender, revoked, forged claim)",
            labels=["reason"],
        )
        for reason, count in sorted(a.refusals.by_reason.items()):
            refusals.add_metric([reason], count)
        yield refusals
        yield CounterMetricFamily(
            "skyfleet_packets_sent", "Membership packets sent", a.sender.packets_sent
        )
        yield CounterMetricFamily(
            "skyfleet_packet_bytes_sent", "Membership bytes sent (protobuf)", a.sender.bytes_sent
        )
        yield GaugeMetricFamily(
            "skyfleet_policy_version", "Version of the policy in force (0: none)",
            a.policy_version(),
        )
        ledger = a.ledger
        outcomes = CounterMetricFamily(
            "skyfleet_tasks", "Tasks submitted here, by terminal outcome", labels=["outcome"]
        )
        for outcome in ("succeeded", "failed", "deadline_exceeded", "rejected"):
            outcomes.add_metric([outcome], getattr(ledger, outcome))
        yield outcomes
        yield CounterMetricFamily("skyfleet_tasks_submitted", "Tasks submitted", ledger.submitted)
        yield CounterMetricFamily("skyfleet_tasks_routed", "Attempts placed", ledger.attempts)
        yield CounterMetricFamily("skyfleet_tasks_retried", "Retry attempts", ledger.retried)
        yield CounterMetricFamily(
            "skyfleet_tasks_failed_over", "Retries sent to another cloud", ledger.failed_over
        )
        e = a.executor
        yield GaugeMetricFamily("skyfleet_executor_inflight", "Tasks running here", e.inflight)
        yield GaugeMetricFamily("skyfleet_executor_queued", "Tasks waiting here", e.queued)
        yield GaugeMetricFamily(
            "skyfleet_executor_capacity", "Task slots here", e.settings.capacity
        )
        yield CounterMetricFamily("skyfleet_executor_executed", "Tasks run here", e.executed)
        yield CounterMetricFamily(
            "skyfleet_executor_failed", "Tasks whose handler failed here", e.failed
        )


class Metrics:
    def __init__(self, sources: MetricSources) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(sources))
        self._latency = Histogram(
            "skyfleet_task_latency_seconds",
            "Latency of tasks routed by this agent, by outcome",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._server: asyncio.Server | None = None

    def observe(self, result: Result) -> None:
        self._latency.labels(result.outcome.name.lower()).observe(result.latency)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(self, bind: str) -> None:
        host, port = split_host_port(bind, "agent.metrics_bind")
        self._server = await asyncio.start_server(self._handle, host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = request.split(b" ", 2) + [b""]
            if method == b"GET" and path.split(b"?")[0] == b"/metrics":
                body, status = self.render(), b"200 OK"
                ctype = b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"not found: try /metrics\n", b"404 Not Found", b"text/plain"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + ctype
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        writer.close()
