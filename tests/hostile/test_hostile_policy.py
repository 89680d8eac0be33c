"""Hostile policy input: the document parser, the adopter and the on-disk store, fed by
hypothesis. A bad document is refused with the reason and the policy in force stays; a
replayed older envelope is old news; nothing raises out of the adopter or the store."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skyfleet.config.policy_defaults import MAX_DOCUMENT_BYTES
from skyfleet.policy.adoption import Outcome, PolicyAdopter
from skyfleet.policy.errors import PolicyValidationError, RejectReason
from skyfleet.policy.model import PolicyDocument, parse_policy
from skyfleet.policy.signing import generate_signing_key, sign_policy
from skyfleet.policy.store import PolicyStore

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = json.loads((ROOT / "policies" / "default.json").read_text())
PRIVATE, PUBLIC = generate_signing_key()
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def paths(doc: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into a JSON document (to replace a value anywhere)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths(v, (*prefix, i))
    return found


def replaced(doc: Any, path: tuple[str | int, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = DEFAULT
    for _ in range(draw(st.integers(1, 3))):
        doc = replaced(doc, draw(st.sampled_from(paths(doc))), draw(json_values))
    return doc


@BOUNDED
@given(mutated_documents() | st.dictionaries(st.text(max_size=10), json_values, max_size=5))
@example(replaced(DEFAULT, ("version",), 2**64))
@example(replaced(DEFAULT, ("version",), -1))
@example(replaced(DEFAULT, ("failover", "max_attempts"), 10**9))
def test_documents_parse_or_name_every_bad_field(doc: dict[str, Any]):
    try:
        parsed = parse_policy(doc)
    except PolicyValidationError as exc:
        assert exc.errors and all(message for _, message in exc.errors)
        return
    assert isinstance(parsed, PolicyDocument)
    # A version the wire can carry: it is gossiped as a uint64 in every status.
    assert 0 < parsed.version < 2**64


def fresh_adopter(version: int = 5) -> tuple[PolicyAdopter, dict[str, Any]]:
    envelope = sign_policy({**DEFAULT, "version": version}, PRIVATE)
    adopter = PolicyAdopter(trusted_keys=[PUBLIC])
    assert adopter.offer(envelope, "setup", 0.0).adopted
    return adopter, envelope


@st.composite
def hostile_envelopes(draw: st.DrawFn) -> bytes | dict[str, Any]:
    valid = sign_policy({**DEFAULT, "version": 6}, PRIVATE)
    kind = draw(st.sampled_from(["bytes", "json", "document", "signature", "resigned-by-other"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "document":  # altered after signing
        return {**valid, "document": draw(mutated_documents())}
    if kind == "signature":
        entry = dict(valid["signatures"][0])
        entry[draw(st.sampled_from(["sig", "key_id", "alg"]))] = draw(json_values)
        return {**valid, "signatures": [entry]}
    other, _ = generate_signing_key()
    return sign_policy({**DEFAULT, "version": 7}, other)


@BOUNDED
@given(hostile_envelopes())
def test_adopter_refuses_hostile_envelopes_and_keeps_its_policy(raw: bytes | dict[str, Any]):
    adopter, envelope = fresh_adopter()
    decision = adopter.offer(raw, "peer:mallory", 1.0)
    # Not one of the hostile envelopes is both authentic and newer.
    assert decision.outcome in (Outcome.INVALID, Outcome.IGNORED_OLDER, Outcome.CONFLICT)
    assert decision.reason
    if decision.outcome is Outcome.INVALID:
        assert isinstance(decision.reject_reason, RejectReason)
    assert adopter.current is not None and adopter.current.version == 5
    assert adopter.current_envelope == envelope
    shown = f"{decision.outcome}/{decision.reject_reason}" if decision.reject_reason else (
        decision.outcome)
    assert decision.log_message().startswith(f"policy {shown} ")


def test_replayed_older_envelope_is_old_news_and_changes_nothing():
    v1 = sign_policy({**DEFAULT, "version": 1}, PRIVATE)
    v2 = sign_policy({**DEFAULT, "version": 2, "description": "newer"}, PRIVATE)
    adopter = PolicyAdopter(trusted_keys=[PUBLIC])
    assert adopter.offer(v1, "file:a", 0.0).adopted
    assert adopter.offer(v2, "admin:alice", 1.0).adopted
    replay = adopter.offer(json.dumps(v1).encode(), "peer:mallory", 2.0)
    assert replay.outcome is Outcome.IGNORED_OLDER
    assert adopter.current is not None and adopter.current.version == 2
    # Replaying the very same bytes again and again is logged once, then at debug.
    again = adopter.offer(json.dumps(v1).encode(), "peer:mallory", 3.0)
    assert again.outcome is Outcome.IGNORED_OLDER and again.repeat


@BOUNDED
@given(st.binary(max_size=400))
@example(b"")
@example(b"\xff\xfe{")
def test_store_survives_any_file_and_starts_without_policy(raw: bytes):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = PolicyStore(Path(tmp))
        store.path.parent.mkdir(parents=True)
        store.path.write_bytes(raw)
        loaded = store.load([PUBLIC])
        assert loaded.envelope is None and loaded.reason.startswith("rejected: ")
        assert not store.path.exists()  # moved aside for forensics


def test_store_refuses_a_tampered_file_on_restart(tmp_path: Path):
    store = PolicyStore(tmp_path)
    envelope = sign_policy({**DEFAULT, "version": 3}, PRIVATE)
    store.save(envelope)
    tampered = json.loads(store.path.read_text())
    tampered["document"]["drained_clouds"] = ["aws", "azure"]
    store.path.write_text(json.dumps(tampered))
    loaded = store.load([PUBLIC])
    assert loaded.envelope is None and "bad-signature" in loaded.reason


@pytest.mark.parametrize("extra", [1, 8 * MAX_DOCUMENT_BYTES])
def test_oversized_envelope_is_refused_before_parsing(extra: int):
    size = MAX_DOCUMENT_BYTES + extra
    adopter, _ = fresh_adopter()
    decision = adopter.offer(b" " * size, "peer:mallory", 1.0)
    assert decision.outcome is Outcome.INVALID
    assert decision.reject_reason is RejectReason.MALFORMED
    assert "byte limit" in decision.reason
