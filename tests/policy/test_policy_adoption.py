"""PolicyAdopter: which offered envelope becomes the policy in force, and which never does."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from policy_keys import KeyPair

from skyfleet.config.policy_defaults import MAX_DOCUMENT_BYTES
from skyfleet.policy.adoption import Decision, Outcome, PolicyAdopter, log_decision
from skyfleet.policy.canonical import policy_hash
from skyfleet.policy.errors import PolicyRejected, RejectReason
from skyfleet.policy.signing import add_signature, sign_policy


class Clock:
    """Injected time; the adopter never reads a real clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def tick(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signed(old_key: KeyPair, make_doc: Callable[..., dict]) -> Callable[..., dict]:
    def sign(version: int = 1, **fields: Any) -> dict[str, Any]:
        return sign_policy(make_doc(version, **fields), old_key.private)

    return sign


@pytest.fixture
def adopter(old_key: KeyPair) -> PolicyAdopter:
    return PolicyAdopter(trusted_keys=[old_key.public])


def offer(adopter: PolicyAdopter, envelope: Any, clock: Clock, origin: str = "file:/p") -> Decision:
    return adopter.offer(envelope, origin, clock.tick())


def test_first_valid_policy_is_adopted(
    adopter: PolicyAdopter, signed: Callable, clock: Clock
) -> None:
    envelope = signed(3)
    decision = offer(adopter, envelope, clock, origin="peer:aws-1a-0")
    assert decision.outcome is Outcome.ADOPTED and decision.adopted
    assert decision.version == 3 == decision.current_version
    assert decision.hash == policy_hash(envelope["document"]) == adopter.current_hash
    assert decision.origin == "peer:aws-1a-0"
    assert decision.at == clock.now
    assert decision.reason == "replaces no policy"
    assert adopter.current is not None and adopter.current.version == 3
    assert adopter.current_envelope == envelope


def test_higher_version_replaces(adopter: PolicyAdopter, signed: Callable, clock: Clock) -> None:
    offer(adopter, signed(1), clock)
    decision = offer(adopter, signed(2, drained_clouds=["gcp"]), clock)
    assert decision.outcome is Outcome.ADOPTED
    assert decision.reason == "replaces version 1"
    assert adopter.current.drained_clouds == ("gcp",)


def test_lower_version_is_ignored(adopter: PolicyAdopter, signed: Callable, clock: Clock) -> None:
    offer(adopter, signed(5), clock)
    current = adopter.current_hash
    decision = offer(adopter, signed(4), clock)
    assert decision.outcome is Outcome.IGNORED_OLDER
    assert decision.version == 4 and decision.current_version == 5
    assert adopter.current_hash == current


def test_same_document_again_is_a_duplicate(
    adopter: PolicyAdopter, signed: Callable, clock: Clock, new_key: KeyPair
) -> None:
    envelope = signed(2)
    offer(adopter, envelope, clock)
    assert offer(adopter, envelope, clock).outcome is Outcome.DUPLICATE_SAME
    # Re-signed by another key as well (rotation): same content, still a duplicate.
    resigned = add_signature(envelope, new_key.private)
    assert offer(adopter, resigned, clock).outcome is Outcome.DUPLICATE_SAME


def test_same_version_different_content_is_a_conflict(
    adopter: PolicyAdopter, signed: Callable, clock: Clock
) -> None:
    first = signed(2)
    offer(adopter, first, clock)
    decision = offer(adopter, signed(2, drained_clouds=["aws"]), clock)
    assert decision.outcome is Outcome.CONFLICT
    assert decision.hash != decision.current_hash == policy_hash(first["document"])
    assert "publish a higher version" in decision.reason
    assert adopter.current.drained_clouds == ()
    assert adopter.current_envelope == first


def forged_envelopes(
    old_key: KeyPair, rogue_key: KeyPair, make_doc: Callable[..., dict]
) -> dict[str, tuple[Any, RejectReason]]:
    good = sign_policy(make_doc(9), old_key.private)
    tampered = copy.deepcopy(good)
    tampered["document"]["drained_clouds"] = ["aws"]
    return {
        "tampered": (tampered, RejectReason.BAD_SIGNATURE),
        "unsigned": ({"document": make_doc(9), "signatures": []}, RejectReason.UNSIGNED),
        "untrusted": (sign_policy(make_doc(9), rogue_key.private), RejectReason.UNTRUSTED),
        "not json": (b"{not json", RejectReason.MALFORMED),
        "not utf-8": (b"\xff\xfe", RejectReason.MALFORMED),
        "array": (b"[]", RejectReason.MALFORMED),
        "repeated key": (
            b'{"document": {"version": 9}, "document": {"version": 10}, "signatures": []}',
            RejectReason.MALFORMED,
        ),
        "oversize": (b" " * (MAX_DOCUMENT_BYTES + 1), RejectReason.MALFORMED),
    }


@pytest.mark.parametrize(
    "case",
    [
        "tampered",
        "unsigned",
        "untrusted",
        "not json",
        "not utf-8",
        "array",
        "repeated key",
        "oversize",
    ],
)
def test_bad_envelopes_are_never_adopted(
    case: str,
    adopter: PolicyAdopter,
    signed: Callable,
    clock: Clock,
    old_key: KeyPair,
    rogue_key: KeyPair,
    make_doc: Callable,
) -> None:
    in_force = signed(1)
    offer(adopter, in_force, clock)
    envelope, reason = forged_envelopes(old_key, rogue_key, make_doc)[case]
    decision = offer(adopter, envelope, clock)
    assert decision.outcome is Outcome.INVALID
    assert decision.reject_reason is reason
    assert decision.current_version == 1
    assert adopter.current_envelope == in_force


def test_invalid_decision_still_names_version_and_hash(
    adopter: PolicyAdopter, clock: Clock, rogue_key: KeyPair, make_doc: Callable
) -> None:
    envelope = sign_policy(make_doc(7), rogue_key.private)
    decision = offer(adopter, envelope, clock)
    assert decision.version == 7
    assert decision.hash == policy_hash(envelope["document"])
    assert decision.current_version is None and adopter.current is None


def test_bytes_and_text_are_accepted(
    adopter: PolicyAdopter, signed: Callable, clock: Clock
) -> None:
    assert offer(adopter, json.dumps(signed(1)).encode(), clock).adopted
    assert offer(adopter, json.dumps(signed(2), indent=2), clock).adopted


def test_caller_mutation_after_offer_changes_nothing(
    adopter: PolicyAdopter, signed: Callable, clock: Clock
) -> None:
    envelope = signed(1)
    offer(adopter, envelope, clock)
    envelope["document"]["version"] = 99
    assert adopter.current_envelope["document"]["version"] == 1
    adopter.current_envelope["document"]["version"] = 98
    assert adopter.current_envelope["document"]["version"] == 1


def test_repeats_are_marked(adopter: PolicyAdopter, signed: Callable, clock: Clock) -> None:
    offer(adopter, signed(3), clock)
    old = signed(2)
    first = offer(adopter, old, clock)
    second = offer(adopter, old, clock, origin="peer:gcp-1b-0")
    assert not first.repeat and second.repeat
    assert first.log_level == logging.DEBUG  # old news is not worth a warning either


def test_repeat_memory_is_bounded(old_key: KeyPair, signed: Callable, clock: Clock) -> None:
    adopter = PolicyAdopter(trusted_keys=[old_key.public], memory=2)
    offer(adopter, signed(10), clock)
    olds = [signed(v) for v in (1, 2, 3)]
    for envelope in olds:
        offer(adopter, envelope, clock)
    assert not offer(adopter, olds[0], clock).repeat  # forgotten
    assert offer(adopter, olds[2], clock).repeat


def test_restored_current_envelope(old_key: KeyPair, signed: Callable, clock: Clock) -> None:
    stored = signed(4)
    adopter = PolicyAdopter(trusted_keys=[old_key.public], current=stored)
    assert adopter.current.version == 4
    assert offer(adopter, signed(4), clock).outcome is Outcome.DUPLICATE_SAME
    assert offer(adopter, signed(3), clock).outcome is Outcome.IGNORED_OLDER


def test_restoring_an_untrusted_envelope_raises(new_key: KeyPair, signed: Callable) -> None:
    with pytest.raises(PolicyRejected):
        PolicyAdopter(trusted_keys=[new_key.public], current=signed(4))


def test_trusted_keys_can_rotate_at_runtime(
    adopter: PolicyAdopter,
    signed: Callable,
    clock: Clock,
    old_key: KeyPair,
    new_key: KeyPair,
    make_doc: Callable,
) -> None:
    offer(adopter, signed(1), clock)
    by_new = sign_policy(make_doc(2), new_key.private)
    assert offer(adopter, by_new, clock).reject_reason is RejectReason.UNTRUSTED
    adopter.set_trusted_keys([new_key.public])
    assert adopter.current.version == 1  # the policy in force stays
    assert offer(adopter, by_new, clock).adopted
    assert offer(adopter, signed(3), clock).reject_reason is RejectReason.UNTRUSTED


@pytest.mark.parametrize(
    ("outcome", "level"),
    [
        (Outcome.ADOPTED, logging.INFO),
        (Outcome.CONFLICT, logging.WARNING),
        (Outcome.INVALID, logging.WARNING),
        (Outcome.IGNORED_OLDER, logging.DEBUG),
        (Outcome.DUPLICATE_SAME, logging.DEBUG),
    ],
)
def test_log_line_has_version_hash_origin_and_reason(
    outcome: Outcome, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    decision = Decision(
        outcome=outcome,
        origin="admin:alice",
        at=5.0,
        version=8,
        hash="ab" * 32,
        reason="because",
        current_version=7,
        current_hash="cd" * 32,
    )
    logger = logging.getLogger("test.policy.adoption")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        log_decision(logger, decision)
    [record] = caplog.records
    assert record.levelno == level
    assert record.getMessage() == (
        f"policy {outcome} version=8 hash={'ab' * 6} origin=admin:alice current=7: because"
    )


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('{}', 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('"[[[[{{{{"', 0),              # brackets inside a string do not count
        ('{"a": "\\"[["}', 1),          # nor after an escaped quote
        ('[' * 40, 33),                 # counting stops past the limit
    ],
)
def test_nesting_depth(text, depth):
    from skyfleet.policy.adoption import nesting_depth

    assert nesting_depth(text, 32) == depth


def test_a_document_nested_past_the_limit_is_refused_before_the_parser():
    """The probe: a 100,000-deep document gave UNKNOWN (the parser's RecursionError)."""
    from skyfleet.policy.adoption import decode_envelope
    from skyfleet.policy.errors import PolicyRejected, RejectReason

    deep = '{"document": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(PolicyRejected) as refused:
        decode_envelope(deep.encode())
    assert refused.value.reason is RejectReason.MALFORMED
    assert "nested deeper than the limit of 32" in str(refused.value)
