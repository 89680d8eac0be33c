"""The baseline for routing overhead: a bare grpc.aio server with the same mTLS and the
same `Tasks.Submit` shape as an agent, answering every task with its payload at once.
No membership, no balancer, no forwarding: what is left is gRPC + TLS + protobuf.

    python bench/routing_echo_server.py --bind 127.0.0.1:PORT --tls DIR --name NAME

DIR holds ca.pem and NAME.pem / NAME.key (a node certificate of the same fleet CA).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.client import tls_files_in
from skyfleet.transport.tls import TlsMaterial

SUCCEEDED = tasks_pb2.TASK_OUTCOME_SUCCEEDED


class EchoTasks(tasks_pb2_grpc.TasksServicer):
    def __init__(self, name: str) -> None:
        self._name = name

    async def Submit(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTaskResponse:
        return tasks_pb2.SubmitTaskResponse(
            request_id=request.request_id,
            outcome=SUCCEEDED,
            output=request.payload,
            executed_by=self._name,
            attempts=1,
        )


async def serve(bind: str, tls_dir: Path, name: str) -> None:
    tls = TlsMaterial.load(tls_files_in(tls_dir, name))
    server = grpc.aio.server()
    tasks_pb2_grpc.add_TasksServicer_to_server(EchoTasks(name), server)
    server.add_secure_port(bind, tls.server_credentials())
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--tls", type=Path, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.bind, args.tls, args.name))


if __name__ == "__main__":
    main()
