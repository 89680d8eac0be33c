"""Envelopes: signing, verification failures by reason, and gapless key rotation."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from policy_keys import KeyPair

from skyfleet.policy.canonical import canonical_bytes
from skyfleet.policy.errors import (
    PolicyRejected,
    PolicyValidationError,
    RejectReason,
    SigningKeyError,
)
from skyfleet.policy.signing import (
    TrustedKeys,
    add_signature,
    generate_signing_key,
    key_id,
    public_key_pem,
    sign_policy,
    verify_envelope,
)


def rejected(envelope: Any, trusted: list[bytes]) -> PolicyRejected:
    with pytest.raises(PolicyRejected) as info:
        verify_envelope(envelope, trusted)
    return info.value


def test_sign_and_verify(old_key: KeyPair, make_doc: Callable[..., dict]) -> None:
    envelope = sign_policy(make_doc(version=3), old_key.private)
    assert envelope["document"] == make_doc(version=3)
    [entry] = envelope["signatures"]
    assert entry["key_id"] == old_key.kid
    assert entry["alg"] == "ed25519"
    assert len(base64.b64decode(entry["sig"])) == 64
    assert verify_envelope(envelope, [old_key.public]).version == 3


def test_signature_survives_reformatting(old_key: KeyPair, make_doc: Callable) -> None:
    envelope = sign_policy(make_doc(), old_key.private)
    pretty = json.dumps(envelope, indent=4, sort_keys=False)
    assert verify_envelope(json.loads(pretty), [old_key.public]).version == 1


def test_generated_keys_sign_and_verify(make_doc: Callable) -> None:
    private, public = generate_signing_key()
    assert b"PRIVATE KEY" in private and b"PUBLIC KEY" in public
    assert public_key_pem(private) == public
    assert verify_envelope(sign_policy(make_doc(), private), [public]).version == 1


def test_key_id_is_short_stable_and_format_independent(old_key: KeyPair) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", old_key.kid)
    reflowed = old_key.public.replace(b"\n", b"\r\n")
    assert key_id(reflowed) == old_key.kid
    assert key_id(public_key_pem(old_key.private)) == old_key.kid


def test_sign_refuses_an_invalid_document(old_key: KeyPair) -> None:
    with pytest.raises(PolicyValidationError) as info:
        sign_policy({"version": 1, "failover": {"max_attempts": 0}}, old_key.private)
    assert info.value.path == "failover.max_attempts"


@pytest.mark.parametrize(
    "pem",
    [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_bad_private_key_is_a_named_error_without_key_bytes(pem: bytes, make_doc: Callable) -> None:
    with pytest.raises(SigningKeyError) as info:
        sign_policy(make_doc(), pem)
    assert "AAAA" not in str(info.value)


def test_bad_trusted_key_names_its_position(old_key: KeyPair) -> None:
    with pytest.raises(SigningKeyError, match=r"trusted key #1"):
        TrustedKeys.from_pems([old_key.public, b"garbage"])


def test_unsigned_is_rejected(old_key: KeyPair, make_doc: Callable) -> None:
    err = rejected({"document": make_doc(), "signatures": []}, [old_key.public])
    assert err.reason is RejectReason.UNSIGNED
    err = rejected({"document": make_doc()}, [old_key.public])
    assert err.reason is RejectReason.UNSIGNED


def test_untrusted_signer_is_rejected(
    old_key: KeyPair, rogue_key: KeyPair, make_doc: Callable
) -> None:
    err = rejected(sign_policy(make_doc(), rogue_key.private), [old_key.public])
    assert err.reason is RejectReason.UNTRUSTED
    assert rogue_key.kid in err.detail and old_key.kid in err.detail


def tamper(envelope: dict[str, Any]) -> dict[str, Any]:
    forged = copy.deepcopy(envelope)
    forged["document"]["failover"] = {"max_attempts": 1}
    return forged


def test_tampered_document_is_rejected(old_key: KeyPair, make_doc: Callable) -> None:
    err = rejected(tamper(sign_policy(make_doc(), old_key.private)), [old_key.public])
    assert err.reason is RejectReason.BAD_SIGNATURE
    assert old_key.kid in err.detail


def test_forged_key_id_is_rejected(
    old_key: KeyPair, rogue_key: KeyPair, make_doc: Callable
) -> None:
    """A rogue signature labelled with a trusted key's id does not pass."""
    envelope = sign_policy(make_doc(), rogue_key.private)
    envelope["signatures"][0]["key_id"] = old_key.kid
    assert rejected(envelope, [old_key.public]).reason is RejectReason.BAD_SIGNATURE


def test_one_bad_trusted_signature_rejects_despite_a_good_one(
    old_key: KeyPair, new_key: KeyPair, make_doc: Callable
) -> None:
    envelope = add_signature(sign_policy(make_doc(), old_key.private), new_key.private)
    sig = bytearray(base64.b64decode(envelope["signatures"][1]["sig"]))
    sig[0] ^= 1
    envelope["signatures"][1]["sig"] = base64.b64encode(bytes(sig)).decode()
    err = rejected(envelope, [old_key.public, new_key.public])
    assert err.reason is RejectReason.BAD_SIGNATURE and new_key.kid in err.detail


MALFORMED = [
    (lambda e: [e], "expected a JSON object"),
    (lambda e: {**e, "extra": 1}, "extra: unknown envelope key"),
    (lambda e: {"signatures": e["signatures"]}, "document: expected an object"),
    (lambda e: {**e, "signatures": "sig"}, "signatures: expected an array"),
    (lambda e: {**e, "signatures": [{"key_id": "x"}]}, "signatures[0]: expected an object"),
    (lambda e: {**e, "signatures": [{**e["signatures"][0], "alg": "rsa"}]}, "unsupported"),
    (lambda e: {**e, "signatures": [{**e["signatures"][0], "sig": "!!"}]}, "not base64"),
    (lambda e: {**e, "signatures": [{**e["signatures"][0], "sig": "AAAA"}]}, "expected 64"),
    (lambda e: {**e, "signatures": e["signatures"] * 2}, "signs twice"),
    (lambda e: {**e, "document": {**e["document"], "x": float("nan")}}, "document.x"),
]


@pytest.mark.parametrize(("mutate", "message"), MALFORMED)
def test_malformed_envelopes(
    mutate: Callable[[dict], Any], message: str, old_key: KeyPair, make_doc: Callable
) -> None:
    envelope = sign_policy(make_doc(), old_key.private)
    err = rejected(mutate(envelope), [old_key.public])
    assert err.reason is RejectReason.MALFORMED
    assert message in err.detail


def test_authentic_but_schema_invalid_is_rejected_with_path(old_key: KeyPair) -> None:
    """An operator bypassing `sign`'s validation still cannot get a bad document adopted."""
    document = {"version": 2, "failover": {"max_attempts": 0}}
    raw = Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32).sign(canonical_bytes(document))
    envelope = {
        "document": document,
        "signatures": [
            {"key_id": old_key.kid, "alg": "ed25519", "sig": base64.b64encode(raw).decode()}
        ],
    }
    err = rejected(envelope, [old_key.public])
    assert err.reason is RejectReason.INVALID
    assert "failover.max_attempts: must be between 1 and 10, got 0" in err.detail


def test_add_signature_keeps_others_and_replaces_own(
    old_key: KeyPair, new_key: KeyPair, make_doc: Callable
) -> None:
    envelope = sign_policy(make_doc(), old_key.private)
    both = add_signature(envelope, new_key.private)
    assert [s["key_id"] for s in both["signatures"]] == [old_key.kid, new_key.kid]
    again = add_signature(both, new_key.private)
    assert [s["key_id"] for s in again["signatures"]] == [old_key.kid, new_key.kid]
    assert len(envelope["signatures"]) == 1  # the input is not modified


# (signers, trusted by the agent, accepted?) over the phases of a rotation old -> new.
ROTATION = [
    (("old",), ("old",), True),
    (("old",), ("old", "new"), True),
    (("old", "new"), ("old",), True),
    (("old", "new"), ("old", "new"), True),
    (("old", "new"), ("new",), True),
    (("new",), ("old", "new"), True),
    (("new",), ("new",), True),
    (("new",), ("old",), False),
    (("old",), ("new",), False),
]


@pytest.mark.parametrize(("signers", "trusted", "accepted"), ROTATION)
def test_key_rotation_has_no_gap(
    signers: tuple[str, ...],
    trusted: tuple[str, ...],
    accepted: bool,
    old_key: KeyPair,
    new_key: KeyPair,
    make_doc: Callable,
) -> None:
    keys = {"old": old_key, "new": new_key}
    envelope = sign_policy(make_doc(), keys[signers[0]].private)
    for name in signers[1:]:
        envelope = add_signature(envelope, keys[name].private)
    trusted_pems = [keys[name].public for name in trusted]
    if accepted:
        assert verify_envelope(envelope, trusted_pems).version == 1
    else:
        assert rejected(envelope, trusted_pems).reason is RejectReason.UNTRUSTED
