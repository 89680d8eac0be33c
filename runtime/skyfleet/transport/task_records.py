"""The two sides of the long-running tasks' `RecordPeers` seam: record calls to peers'
`Tasks.StoreRecord`, `FetchRecord`, `Launch` and `CancelTask` over gRPC; and the same
calls in memory, to other `LongTasks` of this process (tests, embedding)."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.tasks.long_tasks import PEER_CALL_TIMEOUT, LongTasks, TaskNotFound
from skyfleet.tasks.record_store import StoreFull
from skyfleet.tasks.verdict import AttemptResult, Verdict
from skyfleet.transport.peers import PeerChannels
from skyfleet.transport.task_execute import failed_call


class GrpcRecordPeers:
    def __init__(self, channels: PeerChannels) -> None:
        self._channels = channels

    def _stub(self, peer: str, address: str) -> tasks_pb2_grpc.TasksStub:
        return tasks_pb2_grpc.TasksStub(self._channels.for_tasks(address, peer))

    async def store(self, peer: str, address: str, record: tasks_pb2.TaskRecord) -> bool | None:
        try:
            reply = await self._stub(peer, address).StoreRecord(record, timeout=PEER_CALL_TIMEOUT)
        except grpc.aio.AioRpcError:
            return None
        return reply.stored

    async def fetch(self, peer: str, address: str, task_id: str) -> tasks_pb2.TaskRecord | None:
        try:
            return await self._stub(peer, address).FetchRecord(
                tasks_pb2.TaskRef(task_id=task_id), timeout=PEER_CALL_TIMEOUT)
        except grpc.aio.AioRpcError:
            return None

    async def launch(self, peer: str, address: str, record: tasks_pb2.TaskRecord
                     ) -> AttemptResult:
        try:
            await self._stub(peer, address).Launch(record, timeout=PEER_CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            return failed_call(exc)
        return AttemptResult(Verdict.OK)

    async def cancel(self, peer: str, address: str, task_id: str) -> None:
        try:
            await self._stub(peer, address).CancelTask(
                tasks_pb2.TaskRef(task_id=task_id), timeout=PEER_CALL_TIMEOUT)
        except grpc.aio.AioRpcError:
            return


class LocalRecordPeers:
    """Record calls to the `LongTasks` of this process, by peer name; a peer in
    `refusing` (or not in the table) is out of reach, as a dead host is."""

    def __init__(self, agents: Mapping[str, LongTasks] | None = None) -> None:
        self.agents: dict[str, LongTasks] = dict(agents or {})
        self.refusing: set[str] = set()

    def _reach(self, peer: str) -> LongTasks | None:
        return None if peer in self.refusing else self.agents.get(peer)

    async def store(self, peer: str, address: str, record: tasks_pb2.TaskRecord) -> bool | None:
        agent = self._reach(peer)
        if agent is None:
            return None
        sent = tasks_pb2.TaskRecord()
        sent.CopyFrom(record)  # what a wire would do: no shared message
        try:
            return agent.take(sent)
        except StoreFull:
            return None

    async def fetch(self, peer: str, address: str, task_id: str) -> tasks_pb2.TaskRecord | None:
        agent = self._reach(peer)
        return None if agent is None else agent.store.get(task_id)

    async def launch(self, peer: str, address: str, record: tasks_pb2.TaskRecord
                     ) -> AttemptResult:
        agent = self._reach(peer)
        if agent is None:
            return AttemptResult(Verdict.UNREACHABLE, error=f"{peer}: connection refused")
        sent = tasks_pb2.TaskRecord()
        sent.CopyFrom(record)
        return agent.launched_here(sent)

    async def cancel(self, peer: str, address: str, task_id: str) -> None:
        agent = self._reach(peer)
        if agent is not None:
            try:
                await agent.cancel(task_id)
            except TaskNotFound:
                return
