"""A typed client for an agent's operator API, used by the CLI, the local fleet, the
benchmarks and the tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc

from skyfleet._generated.skyfleet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from skyfleet.config.agent import TlsFiles
from skyfleet.config.fleet_files import CA_CERT, cert_name, key_name
from skyfleet.membership.messages import UP_STATES, MemberState
from skyfleet.transport.tls import TlsMaterial, describe_rpc_error, secure_channel


@dataclass(frozen=True, slots=True)
class MemberRow:
    name: str
    cloud: str
    region: str
    zone: str
    address: str
    state: str
    incarnation: int
    state_age: float
    policy_version: int
    """0 when no status has arrived yet or the member runs no policy."""
    policy_hash: str
    status_age: float | None
    """Seconds since the member's latest status arrived at the answering agent."""
    inflight: int = 0
    queued: int = 0
    capacity: int = 0
    latency_ms: float = 0.0
    refusals: int = 0
    """Calls and claims from this member that the answering agent refused."""

    @property
    def is_up(self) -> bool:
        """Alive or suspect, as membership counts it (`UP_STATES`)."""
        return MemberState[self.state.upper()] in UP_STATES


class AgentError(Exception):
    """An RPC to an agent failed; the message names the agent and why, `code` is the
    call's gRPC status (a task refused by the fleet and an agent out of reach differ)."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


def tls_files_in(directory: Path, identity: str) -> TlsFiles:
    """The TLS folder's files for `identity` (`skyfleet.config.fleet_files`)."""
    return TlsFiles(
        ca=directory / CA_CERT,
        cert=directory / cert_name(identity),
        key=directory / key_name(identity),
    )


_OUTCOME_NAMES = {number: name.removeprefix("TASK_OUTCOME_").lower()
                  for name, number in tasks_pb2.TaskOutcome.items()}


def outcome_name(outcome: int) -> str:
    """How a task's outcome is spelled for people and scripts: succeeded, failed,
    deadline_exceeded, rejected; a number this client does not know (a newer agent's) is
    read as failed, never as success."""
    name = _OUTCOME_NAMES.get(outcome, "failed")
    return "failed" if name == "unspecified" else name


def task_request(
    handler: str,
    payload: bytes,
    *,
    idempotency_key: str = "",
    kind: str = "",
    clouds: tuple[str, ...] = (),
    regions: tuple[str, ...] = (),
    session: str = "",
) -> tasks_pb2.SubmitTaskRequest:
    return tasks_pb2.SubmitTaskRequest(
        handler=handler,
        payload=payload,
        idempotency_key=idempotency_key,
        kind=kind,
        constraints=tasks_pb2.Constraints(clouds=list(clouds), regions=list(regions)),
        session=session,
    )


class AgentClient:
    def __init__(self, address: str, tls: TlsMaterial, *, agent_name: str | None = None) -> None:
        self.address = address
        self._label = f"{agent_name} ({address})" if agent_name else address
        self._channel = secure_channel(address, tls.channel_credentials(), agent_name)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._policy = policy_pb2_grpc.PolicyStub(self._channel)
        self.tasks = tasks_pb2_grpc.TasksStub(self._channel)
        """Raw task stub, for callers that handle gRPC status codes themselves."""

    def _failed(self, exc: grpc.aio.AioRpcError) -> AgentError:
        return AgentError(describe_rpc_error(exc, self._label), exc.code())

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._channel.close(grace=None)

    async def list_members(self, timeout: float = 5.0) -> tuple[str, list[MemberRow]]:
        """(the agent's own name, its member table)."""
        try:
            resp = await self._admin.ListMembers(admin_pb2.ListMembersRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None
        rows = [
            MemberRow(
                name=m.node.name,
                cloud=m.node.cloud,
                region=m.node.region,
                zone=m.node.zone,
                address=m.node.address,
                state=MemberState(m.state).name.lower(),
                incarnation=m.incarnation,
                state_age=m.state_age_seconds,
                policy_version=m.status.policy_version,
                policy_hash=m.status.policy_hash,
                status_age=m.status_age_seconds if m.HasField("status") else None,
                inflight=m.status.inflight,
                queued=m.status.queued,
                capacity=m.status.capacity,
                latency_ms=m.status.latency_ms,
                refusals=m.refusals,
            )
            for m in resp.members
        ]
        return resp.local_node, rows

    async def publish_policy(
        self, envelope: bytes, timeout: float = 10.0
    ) -> policy_pb2.PublishPolicyResponse:
        """Offer a signed policy (admin identity); AgentError carries the agent's verdict
        when it refuses (invalid, conflict, older)."""
        request = policy_pb2.PublishPolicyRequest(envelope=envelope)
        try:
            return await self._policy.Publish(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def submit(
        self,
        handler: str,
        payload: bytes = b"",
        *,
        timeout: float = 30.0,
        idempotency_key: str = "",
        kind: str = "",
        clouds: tuple[str, ...] = (),
        regions: tuple[str, ...] = (),
        session: str = "",
    ) -> tasks_pb2.SubmitTaskResponse:
        """Run one task in the fleet through this agent; `timeout` is its deadline."""
        request = task_request(handler, payload, idempotency_key=idempotency_key, kind=kind,
                               clouds=clouds, regions=regions, session=session)
        try:
            return await self.tasks.Submit(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def stream(
        self,
        handler: str,
        payload: bytes = b"",
        *,
        timeout: float | None = 30.0,
        idempotency_key: str = "",
        kind: str = "",
        clouds: tuple[str, ...] = (),
        regions: tuple[str, ...] = (),
        session: str = "",
    ) -> AsyncGenerator[tasks_pb2.TaskStreamEvent, None]:
        """Run one task through this agent and give its events as they come: chunks, then
        one `end`. A status (refused before the first chunk, the deadline, the agent lost)
        is AgentError. Closing the generator hangs up, which cancels the task."""
        request = task_request(handler, payload, idempotency_key=idempotency_key, kind=kind,
                               clouds=clouds, regions=regions, session=session)
        call = self.tasks.Stream(request, timeout=timeout)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None
        finally:
            call.cancel()

    async def start(
        self,
        handler: str,
        payload: bytes = b"",
        *,
        deadline: float = 0.0,
        timeout: float = 10.0,
        idempotency_key: str = "",
        kind: str = "",
        clouds: tuple[str, ...] = (),
        regions: tuple[str, ...] = (),
        session: str = "",
    ) -> tasks_pb2.TaskRecord:
        """Start a long-running task and return its record at once; `deadline` is the
        task's (seconds, 0: none), `timeout` this call's."""
        request = task_request(handler, payload, idempotency_key=idempotency_key, kind=kind,
                               clouds=clouds, regions=regions, session=session)
        request.deadline_seconds = deadline
        try:
            return await self.tasks.Start(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def task(self, task_id: str, *, timeout: float = 10.0) -> tasks_pb2.TaskRecord:
        """A long-running task's record, as its holders have it."""
        try:
            return await self.tasks.GetTask(tasks_pb2.TaskRef(task_id=task_id), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def wait_task(self, task_id: str, *, timeout: float) -> tasks_pb2.TaskRecord:
        """The record once the task has ended, or as it is after `timeout` seconds."""
        try:
            return await self.tasks.WaitTask(tasks_pb2.TaskRef(task_id=task_id), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def cancel_task(self, task_id: str, *, timeout: float = 10.0) -> tasks_pb2.TaskRecord:
        try:
            return await self.tasks.CancelTask(tasks_pb2.TaskRef(task_id=task_id),
                                               timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def leave(self, timeout: float = 5.0) -> None:
        try:
            await self._admin.Leave(admin_pb2.LeaveRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None

    async def join(self, seeds: list[str], timeout: float = 15.0) -> int:
        """Have the agent join a fleet through `seeds` (admin identity); the number of
        members it then knows up, itself included."""
        try:
            reply = await self._admin.Join(admin_pb2.JoinRequest(seeds=seeds), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc) from None
        return reply.members_up
