"""`skyfleet.v1.Admin`: the operator's view of an agent. Reads are open to any fleet
certificate; calls that change the fleet need an admin certificate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import grpc

from skyfleet._generated.skyfleet.v1 import admin_pb2, admin_pb2_grpc, membership_pb2
from skyfleet.config.agent import split_host_port
from skyfleet.config.errors import ConfigError
from skyfleet.observability.refusals import Refusals
from skyfleet.transport.codec import meta_to_proto, status_to_proto
from skyfleet.transport.swim_loop import SwimLoop
from skyfleet.transport.tls import require_admin

JOIN_TIMEOUT = 10.0
"""Seconds a Join call waits for a seed to answer (the core keeps retrying after)."""


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(
        self,
        loop: SwimLoop,
        clock: Callable[[], float],
        stop: asyncio.Event,
        refusals: Refusals,
    ) -> None:
        self._loop = loop
        self._swim = loop.swim
        self._clock = clock
        self._stop = stop
        self._refusals = refusals

    async def ListMembers(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListMembersResponse:
        now = self._clock()
        statuses = self._swim.statuses()
        members = []
        for m in self._swim.members():
            member = admin_pb2.Member(
                node=meta_to_proto(m.meta),
                state=cast(membership_pb2.MemberState, int(m.state)),  # protoc's stubs omit numbers
                incarnation=m.incarnation,
                state_age_seconds=max(0.0, now - m.state_since),
                refusals=self._refusals.by_identity[m.name],
            )
            if m.name in statuses:
                status, received = statuses[m.name]
                # Its age_ms: how long ago its origin measured it, as of this answer.
                member.status.CopyFrom(status_to_proto(status, now))
                member.status_age_seconds = max(0.0, now - received)
            members.append(member)
        return admin_pb2.ListMembersResponse(
            local_node=self._swim.name, health_score=self._swim.health_score, members=members
        )

    async def Leave(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.LeaveRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.LeaveResponse:
        await require_admin(context)
        self._stop.set()
        return admin_pb2.LeaveResponse()

    async def Join(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.JoinRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.JoinResponse:
        await require_admin(context)
        if not request.seeds:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "seeds: give at least one")
        for i, seed in enumerate(request.seeds):
            try:
                split_host_port(seed, f"seeds[{i}]")
            except ConfigError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not await self._loop.join(tuple(request.seeds), JOIN_TIMEOUT):
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"no seed answered within {JOIN_TIMEOUT:.0f} s ({', '.join(request.seeds)}); "
                "the agent keeps retrying",
            )
        return admin_pb2.JoinResponse(members_up=self._swim.num_up())
