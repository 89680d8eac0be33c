"""`skyfleet.v1.Policy`: peers pull the policy; admins publish one."""

from __future__ import annotations

import grpc

from skyfleet._generated.skyfleet.v1 import policy_pb2, policy_pb2_grpc
from skyfleet.policy.adoption import Outcome
from skyfleet.transport.policy_loop import PolicyKeeper
from skyfleet.transport.tls import require_admin, require_role

_REFUSALS = {
    Outcome.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    # The agent runs a newer or a different document under this version: publish a
    # higher version to move the fleet.
    Outcome.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.IGNORED_OLDER: grpc.StatusCode.FAILED_PRECONDITION,
}


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
        decision = self._keeper.offer(request.envelope, f"admin:{identity.name}")
        code = _REFUSALS.get(decision.outcome)
        if code is not None:
            # One form for every refusal (policy.proto): the decision's line as details,
            # its parts as trailing metadata for programs.
            context.set_trailing_metadata((
                ("skyfleet-policy-outcome", str(decision.outcome)),
                ("skyfleet-policy-reject-reason", str(decision.reject_reason or "")),
                ("skyfleet-policy-current-version", str(decision.current_version or 0)),
            ))
            await context.abort(code, decision.log_message())
        return policy_pb2.PublishPolicyResponse(
            outcome=str(decision.outcome),
            version=decision.version or 0,
            hash=decision.hash or "",
            reason=decision.reason,
            current_version=decision.current_version or 0,
        )
