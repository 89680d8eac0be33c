"""What one new mTLS connection costs an agent, next to a call on an open one.

A forming fleet of N agents opens up to N(N-1)/2 connections (one per pair, see
`transport/return_paths.py`); this measures, in one process, the CPU of creating a gRPC
channel to a real agent and making one `Admin.ListMembers` call on it (TLS handshake with
client certificates included), against the same call on a warm channel. Client and
agent share the process, so each figure is both sides' CPU.

Run from the repository root:
    .venv/bin/python bench/grpc_channel_cost.py          # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

from skyfleet._generated.skyfleet.v1 import admin_pb2, admin_pb2_grpc
from skyfleet.client import tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.node import Agent
from skyfleet.transport.tls import TlsMaterial, secure_channel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(cold_calls: int, warm_calls: int) -> tuple[float, float]:
    """(CPU ms per new channel + first call, CPU ms per call on a warm channel)."""
    layout = FleetLayout(Path(tempfile.mkdtemp(prefix="skyfleet-channel-cost-")))
    spec = AgentSpec(name="n0", cloud="aws", zone="z", address=f"127.0.0.1:{_free_port()}")
    layout.write_agent(spec)
    request = admin_pb2.ListMembersRequest()
    async with Agent(load_agent_config(layout.config_path("n0"))):
        creds = TlsMaterial.load(tls_files_in(layout.tls, "admin")).channel_credentials()
        async with secure_channel(spec.address, creds, "n0") as channel:
            stub = admin_pb2_grpc.AdminStub(channel)
            await stub.ListMembers(request)
            start = time.process_time()
            for _ in range(warm_calls):
                await stub.ListMembers(request)
            warm = (time.process_time() - start) / warm_calls
        start = time.process_time()
        for _ in range(cold_calls):
            async with secure_channel(spec.address, creds, "n0") as channel:
                await admin_pb2_grpc.AdminStub(channel).ListMembers(request)
        cold = (time.process_time() - start) / cold_calls
    return cold * 1e3, warm * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", type=int, default=100, help="new channels to open")
    parser.add_argument("--warm", type=int, default=500, help="calls on one warm channel")
    args = parser.parse_args()
    cold, warm = asyncio.run(measure(args.cold, args.warm))
    print("| call | CPU per call (ms, client + agent) |\n|---|---|")
    print(f"| new mTLS channel + first call | {cold:.2f} |")
    print(f"| call on a warm channel | {warm:.2f} |")
    print(f"\nnew / warm: {cold / warm:.1f}x; a new connection alone: {cold - warm:.2f} ms")


if __name__ == "__main__":
    main()
