"""An agent's Prometheus endpoint answers in text format with the named series."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from skyfleet.client import AgentClient, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent
from skyfleet.transport.tls import TlsMaterial


async def http_get(host: str, port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    head, _, body = raw.partition("\r\n\r\n")
    return head, body


async def test_metrics_endpoint_serves_the_named_series(tmp_path: Path, free_ports) -> None:
    port, metrics_port = free_ports(2)
    layout = FleetLayout(tmp_path)
    spec = AgentSpec(
        name="m0",
        cloud="aws",
        zone="z",
        address=f"127.0.0.1:{port}",
        metrics_port=metrics_port,
    )
    layout.write_agent(spec)
    async with Agent(load_agent_config(layout.config_path("m0"))):
        admin = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
        async with AgentClient(spec.address, admin, agent_name="m0") as client:
            reply = await client.submit("echo", b"x")
            assert reply.executed_by == "m0"
        head, body = await http_get("127.0.0.1", metrics_port, "/metrics")
        assert head.startswith("HTTP/1.1 200") and "text/plain; version=0.0.4" in head
        families = {f.name: f for f in text_string_to_metric_families(body)}
        members = {s.labels["state"]: s.value for s in families["skyfleet_members"].samples}
        assert members["alive"] == 1
        tasks = {
            s.labels["outcome"]: s.value
            for s in families["skyfleet_tasks"].samples
            if s.name == "skyfleet_tasks_total"
        }
        assert tasks["succeeded"] == 1
        latency = families["skyfleet_task_latency_seconds"]
        counts = [s for s in latency.samples if s.name.endswith("_count")]
        assert counts and counts[0].value == 1
        for name in (
            "skyfleet_membership_probes",
            "skyfleet_membership_forged_claims",
            "skyfleet_policy_version",
            "skyfleet_tasks_retried",
            "skyfleet_tasks_failed_over",
            "skyfleet_health_score",
        ):
            assert name in families, name
        head, _ = await http_get("127.0.0.1", metrics_port, "/nope")
        assert head.startswith("HTTP/1.1 404")
