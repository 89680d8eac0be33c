"""`skyfleet.v1.Policy`: peers pull the policy; admins publish one."""

from __future__ import annotations

import grpc

from skyfleet._generated.skyfleet.v1 import policy_pb2, policy_pb2_grpc
from skyfleet.policy.adoption import Outcome
from skyfleet.transport.policy_loop import PolicyKeeper
from skyfleet.transport.tls import require_admin, require_role


class PolicyService(policy_pb2_grpc.PolicyServicer):
    def __init__(self, keeper: PolicyKeeper) -> None:
        self._keeper = keeper

    async def Fetch(  # noqa: N802 - gRPC method name
        self, request: policy_pb2.FetchPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.FetchPolicyResponse:
        # Agents pull from peers, operators may look; the puller verifies the signature
        # itself. Clients read a policy's version and hash through ListMembers.
        await require_role(context, "agent", "admin", what="fetch the policy document")
        return policy_pb2.FetchPolicyResponse(
            envelope=self._keeper.current_envelope(),
            version=self._keeper.version,
            hash=self._keeper.hash,
        )

    async def Publish(  # noqa: N802 - gRPC method name
        self, request: policy_pb2.PublishPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.PublishPolicyResponse:
        identity = await require_admin(context)
        if not request.envelope:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "envelope: empty")
        decision = self._keeper.offer(request.envelope, f"admin:{identity.name}")
        if decision.outcome is Outcome.INVALID:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, decision.log_message())
        if decision.outcome in (Outcome.CONFLICT, Outcome.IGNORED_OLDER):
            # The agent runs a newer or a different document under this version: publish
            # a higher version to move the fleet.
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, decision.log_message())
        return policy_pb2.PublishPolicyResponse(
            outcome=str(decision.outcome),
            version=decision.version or 0,
            hash=decision.hash or "",
            reason=decision.reason,
            current_version=decision.current_version or 0,
        )
