"""An in-process agent on real gRPC with mTLS: what its RPCs accept and refuse."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from skyfleet._generated.skyfleet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
)
from skyfleet.client import AgentClient, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.config.errors import ConfigError
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent
from skyfleet.transport.tls import TlsMaterial, secure_channel


@pytest.fixture
def layout(tmp_path: Path, free_ports) -> tuple[FleetLayout, list[AgentSpec]]:
    layout = FleetLayout(tmp_path)
    ports = free_ports(2)
    specs = [
        AgentSpec(name=f"n{i}", cloud="aws", zone="z", address=f"127.0.0.1:{p}")
        for i, p in enumerate(ports)
    ]
    for spec in specs:
        layout.write_agent(spec)
    return layout, specs


def material(layout: FleetLayout, identity: str) -> TlsMaterial:
    return TlsMaterial.load(tls_files_in(layout.tls, identity))


async def test_rpcs_authenticate_validate_and_authorise(layout) -> None:
    layout, (n0, n1) = layout
    async with Agent(load_agent_config(layout.config_path("n0"))) as agent:
        # n1's certificate may speak for n1 only.
        creds = material(layout, "n1").channel_credentials()
        async with secure_channel(n0.address, creds, "n0") as channel:
            stub = membership_pb2_grpc.MembershipStub(channel)

            ping = membership_pb2.Packet(sender="n1", sender_address=n1.address)
            ping.ping.seq = 1
            await _exchange(stub, ping, ping)

            forged = membership_pb2.Packet(sender="n7", sender_address=n1.address)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await _exchange(stub, ping, forged)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "n7" in (denied.value.details() or "")

            bad = membership_pb2.Packet(sender="n1", sender_address="no-port")
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await _exchange(stub, bad)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "sender_address" in (invalid.value.details() or "")

            # An agent certificate cannot make another agent leave.
            admin = admin_pb2_grpc.AdminStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as not_admin:
                await admin.Leave(admin_pb2.LeaveRequest())
            assert not_admin.value.code() == grpc.StatusCode.PERMISSION_DENIED

        async with AgentClient(n0.address, material(layout, "admin"), agent_name="n0") as client:
            local, rows = await client.list_members()
            assert local == "n0" and [r.name for r in rows] == ["n0"]
            await client.leave()
        await agent.stopped()  # the admin's Leave asked the agent to stop


async def test_health_and_reflection_are_served(layout) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    layout, (n0, _) = layout
    async with Agent(load_agent_config(layout.config_path("n0"))):
        creds = material(layout, "admin").channel_credentials()
        async with secure_channel(n0.address, creds, "n0") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for answer in reflect.ServerReflectionInfo(iter([request])):
                names = {s.name for s in answer.list_services_response.service}
                break
            assert {"skyfleet.v1.Membership", "skyfleet.v1.Admin"} <= names


async def test_certificate_for_another_node_is_refused_at_start(layout) -> None:
    layout, (n0, _) = layout
    config = load_agent_config(layout.config_path("n0"))
    wrong = tls_files_in(layout.tls, "n1")
    with pytest.raises(ConfigError, match="tls.cert: certificate is for 'n1'"):
        await Agent(replace(config, tls=wrong)).start()


async def test_join_at_run_time_needs_an_admin_and_valid_seeds(layout, monkeypatch) -> None:
    from skyfleet.client import AgentError
    from skyfleet.services import admin as admin_service

    layout, (n0, n1) = layout
    async with (
        Agent(load_agent_config(layout.config_path("n0"))),
        Agent(load_agent_config(layout.config_path("n1"))),
    ):
        async with AgentClient(n1.address, material(layout, "n0"), agent_name="n1") as agent:
            with pytest.raises(AgentError, match="PERMISSION_DENIED|admin"):
                await agent.join([n0.address])
        async with AgentClient(n1.address, material(layout, "admin"), agent_name="n1") as admin:
            with pytest.raises(AgentError, match=r"seeds\[1\]"):
                await admin.join([n0.address, "no-port"])
            monkeypatch.setattr(admin_service, "JOIN_TIMEOUT", 0.5)
            with pytest.raises(AgentError, match="no seed answered"):
                await admin.join(["127.0.0.1:1"])
            assert await admin.join([n0.address]) == 2
            _, rows = await admin.list_members()
            assert [r.name for r in rows] == ["n0", "n1"]
        async with AgentClient(n0.address, material(layout, "admin"), agent_name="n0") as admin:
            _, rows = await admin.list_members()
            assert [(r.name, r.state) for r in rows] == [("n0", "alive"), ("n1", "alive")]


async def test_a_client_certificate_submits_and_reads_and_is_refused_all_else(layout) -> None:
    """The client role (`skyfleet certs issue --client`): tasks and the member table; no
    membership, no agent-to-agent Execute, no policy document, no admin call. Each
    refusal names the caller and its role."""
    from skyfleet._generated.skyfleet.v1 import (
        policy_pb2,
        policy_pb2_grpc,
        tasks_pb2,
        tasks_pb2_grpc,
    )
    from skyfleet.security.certs import issue_client_cert, write_cert_file, write_key_file

    layout, (n0, _) = layout
    cert, key = issue_client_cert((layout.tls / "ca.pem").read_bytes(),
                                  (layout.tls / "ca.key").read_bytes(), "app-7")
    write_cert_file(layout.tls / "app-7.pem", cert)
    write_key_file(layout.tls / "app-7.key", key)
    async with Agent(load_agent_config(layout.config_path("n0"))):
        creds = material(layout, "app-7").channel_credentials()
        async with secure_channel(n0.address, creds, "n0") as channel:
            tasks = tasks_pb2_grpc.TasksStub(channel)
            done = await tasks.Submit(tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"hi"))
            assert done.output == b"hi"
            streamed = [e async for e in tasks.Stream(
                tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"hi"))]
            assert [e.chunk.data for e in streamed[:-1]] == [b"hi"]
            assert streamed[-1].end.outcome == tasks_pb2.TASK_OUTCOME_SUCCEEDED
            started = await tasks.Start(tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"l"))
            ended = await tasks.WaitTask(tasks_pb2.TaskRef(task_id=started.task_id), timeout=10)
            assert (ended.state, ended.output) == (tasks_pb2.TASK_STATE_SUCCEEDED, b"l")
            members = await admin_pb2_grpc.AdminStub(channel).ListMembers(
                admin_pb2.ListMembersRequest())
            assert [m.node.name for m in members.members] == ["n0"]

            membership = membership_pb2_grpc.MembershipStub(channel)
            hello = membership_pb2.Packet(sender="app-7", sender_address="127.0.0.1:1")
            hello.push_pull.join = True
            calls = {
                "Exchange": lambda: _exchange(membership, hello),
                "Execute": lambda: tasks.Execute(tasks_pb2.ExecuteRequest(
                    task=tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"x"))),
                "ExecuteStream": lambda: _read_all(tasks.ExecuteStream(tasks_pb2.ExecuteRequest(
                    task=tasks_pb2.SubmitTaskRequest(handler="echo", payload=b"x")))),
                "StoreRecord": lambda: tasks.StoreRecord(tasks_pb2.TaskRecord(task_id="t")),
                "FetchRecord": lambda: tasks.FetchRecord(tasks_pb2.TaskRef(task_id="t")),
                "Launch": lambda: tasks.Launch(tasks_pb2.TaskRecord(task_id="t")),
                "Fetch": lambda: policy_pb2_grpc.PolicyStub(channel).Fetch(
                    policy_pb2.FetchPolicyRequest()),
                "Publish": lambda: policy_pb2_grpc.PolicyStub(channel).Publish(
                    policy_pb2.PublishPolicyRequest(envelope=b"{}")),
                "Leave": lambda: admin_pb2_grpc.AdminStub(channel).Leave(
                    admin_pb2.LeaveRequest()),
            }
            for method, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call()
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
                assert "app-7" in (refused.value.details() or ""), method
                assert "client" in (refused.value.details() or ""), method


async def _read_all(call: Any) -> list[Any]:
    return [event async for event in call]


async def _exchange(
    stub: membership_pb2_grpc.MembershipStub, *packets: membership_pb2.Packet
) -> list[membership_pb2.Packet]:
    """Send `packets` on one stream and read the agent's side to its end: the stream's
    status (a refusal raises) comes only after the packets the agent sent back on it."""
    call = stub.Exchange()
    for packet in packets:
        await call.write(packet)
    await call.done_writing()
    return [reply async for reply in call]
