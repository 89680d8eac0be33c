"""The refusal log: counted by reason and identity, one line per identity and reason per
interval, naming the peer."""

from __future__ import annotations

import logging

import grpc
import pytest

from skyfleet.observability.refusals import Refusals
from skyfleet.services.call_gate import refusal_reason


def test_refusals_are_counted_and_floods_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = Refusals(lambda: now[0])
    with caplog.at_level(logging.WARNING, "skyfleet.refusals"):
        for _ in range(50):
            refusals.record("wrong role", identity="app", peer="ipv4:10.0.0.9:4000",
                            detail="/skyfleet.v1.Admin/Leave: no")
        refusals.record("no identity", identity="", peer="ipv4:10.0.0.8:1", detail="x")
        now[0] = 11.0
        refusals.record("wrong role", identity="app", peer="ipv4:10.0.0.9:4001", detail="y")
    assert refusals.by_reason == {"wrong role": 51, "no identity": 1}
    assert refusals.by_identity == {"app": 51}
    assert [r.getMessage() for r in caplog.records] == [
        "refused wrong role from app (ipv4:10.0.0.9:4000): /skyfleet.v1.Admin/Leave: no",
        "refused no identity from ipv4:10.0.0.8:1: x",
        "refused wrong role from app (ipv4:10.0.0.9:4001): y (49 more since the last line)",
    ]


@pytest.mark.parametrize(
    ("code", "details", "reason"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "caller not identified: none", "no identity"),
        (grpc.StatusCode.PERMISSION_DENIED,
         "ops (admin certificate, serial 1f) is revoked by policy version 3", "revoked"),
        (grpc.StatusCode.PERMISSION_DENIED,
         "app (client certificate) may not call Execute", "wrong role"),
        (grpc.StatusCode.PERMISSION_DENIED,
         "sender 'n7' does not match the caller's certificate (n1, agent)", "wrong sender"),
        (grpc.StatusCode.PERMISSION_DENIED, "something else", "denied"),
    ],
)
def test_refusal_reasons(code: grpc.StatusCode, details: str, reason: str) -> None:
    assert refusal_reason(code, details) == reason
