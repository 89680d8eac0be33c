"""A submitted task's fields are checked before routing; the error names the field."""

from __future__ import annotations

import pytest

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.errors import Refusal, TaskRejected
from skyfleet.tasks.requests import check_request


def request(**fields: object) -> tasks_pb2.SubmitTaskRequest:
    constraints = fields.pop("constraints", {})
    return tasks_pb2.SubmitTaskRequest(
        handler=str(fields.pop("handler", "echo")),
        constraints=tasks_pb2.Constraints(**constraints),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (request(handler=""), "handler: required"),
        (request(handler="h" * 257), "handler: over 256"),
        (request(kind="k" * 257), "kind: over 256"),
        (request(idempotency_key="k" * 257), "idempotency_key: over 256"),
        (request(request_id="r" * 257), "request_id: over 256"),
        (request(session="s" * 257), "session: over 256"),
        (request(constraints={"clouds": ["aws", ""]}), "constraints.clouds[1]"),
        (request(constraints={"regions": ["x" * 257]}), "constraints.regions[0]"),
    ],
)
def test_bad_fields_are_named(req: tasks_pb2.SubmitTaskRequest, field: str) -> None:
    with pytest.raises(TaskRejected) as caught:
        check_request(req)
    assert caught.value.why is Refusal.INVALID
    assert str(caught.value).startswith(field)


def test_a_full_request_passes() -> None:
    check_request(
        request(
            idempotency_key="k" * 256,
            kind="batch",
            request_id="r1",
            session="s" * 256,
            constraints={"clouds": ["aws", "gcp"], "regions": ["eu-west-1"]},
        )
    )
