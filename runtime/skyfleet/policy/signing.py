"""ed25519 detached signatures over a policy's canonical bytes.

A signed policy travels as an envelope:

    {"document": {...},
     "signatures": [{"key_id": "3f9c0a1b2c4d5e6f", "alg": "ed25519", "sig": "<base64>"}]}

Each signature covers `canonical_bytes(document)`, so the envelope can be re-formatted or
re-encoded in transit without breaking it. Several signatures make key rotation gapless:
sign with the old and the new key while agents move from trusting the old to trusting the
new; at every moment each agent trusts at least one key that signed.

An envelope is accepted when at least one signature is from a trusted key and *every*
signature from a trusted key verifies; a trusted key's failing signature means the
document or that entry was altered, which is worth rejecting rather than outvoting.
Signatures from keys the agent does not trust are ignored.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from skyfleet.policy.canonical import CanonicalizationError, canonical_bytes
from skyfleet.policy.errors import (
    PolicyRejected,
    PolicyValidationError,
    RejectReason,
    SigningKeyError,
)
from skyfleet.policy.model import PolicyDocument, parse_policy

ALGORITHM: Final = "ed25519"
KEY_ID_HEX_CHARS: Final = 16
"""64 bits of the key's sha256: enough to tell a fleet's handful of keys apart; the id
only selects a key, the signature check is what proves anything."""
SIGNATURE_BYTES: Final = 64

_ENVELOPE_KEYS: Final = frozenset({"document", "signatures"})
_ENTRY_KEYS: Final = frozenset({"key_id", "alg", "sig"})


def generate_signing_key() -> tuple[bytes, bytes]:
    """A new ed25519 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    private = Ed25519PrivateKey.generate()
    return _private_pem(private), _public_pem(private.public_key())


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse an unencrypted ed25519 private key; the error never quotes the input."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError("not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"expected an ed25519 private key, got {type(key).__name__}")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"expected an ed25519 public key, got {type(key).__name__}")
    return key


def public_key_pem(private_key_pem: bytes) -> bytes:
    """The public half (PEM) of a private key."""
    return _public_pem(load_private_key(private_key_pem).public_key())


def _key_id_of(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_CHARS]


def key_id(public_pem: bytes) -> str:
    """Short stable fingerprint: the first 16 hex digits of sha256 over the raw 32-byte
    public key, so PEM formatting differences do not change it."""
    return _key_id_of(load_public_key(public_pem))


class TrustedKeys:
    """The public keys an agent accepts signatures from, indexed by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {_key_id_of(k): k for k in keys}

    @classmethod
    def from_pems(cls, pems: Iterable[bytes]) -> TrustedKeys:
        keys = []
        for i, pem in enumerate(pems):
            try:
                keys.append(load_public_key(pem))
            except SigningKeyError as exc:
                raise SigningKeyError(f"trusted key #{i}: {exc}") from None
        return cls(keys)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)


def _signature_entry(document: Mapping[str, Any], private_key_pem: bytes) -> dict[str, str]:
    key = load_private_key(private_key_pem)
    sig = key.sign(canonical_bytes(dict(document)))
    return {
        "key_id": _key_id_of(key.public_key()),
        "alg": ALGORITHM,
        "sig": base64.b64encode(sig).decode("ascii"),
    }


def sign_policy(data: dict[str, Any], private_key_pem: bytes) -> dict[str, Any]:
    """Validate `data` and return a new envelope carrying one signature by the key.

    Refuses (PolicyValidationError) to sign an invalid document: a signature should mean
    "an operator checked this".
    """
    parse_policy(data)
    document = copy.deepcopy(data)
    return {"document": document, "signatures": [_signature_entry(document, private_key_pem)]}


def add_signature(envelope: dict[str, Any], private_key_pem: bytes) -> dict[str, Any]:
    """A copy of `envelope` also signed by this key (replacing an earlier signature by the
    same key). Existing signatures are kept as they are: they are not verified here."""
    document, signatures = split_envelope(envelope, require_signatures=False)
    parse_policy(document)
    entry = _signature_entry(document, private_key_pem)
    kept = [s for s in signatures if s["key_id"] != entry["key_id"]]
    return {"document": copy.deepcopy(document), "signatures": [*copy.deepcopy(kept), entry]}


def _malformed(detail: str) -> PolicyRejected:
    return PolicyRejected(RejectReason.MALFORMED, detail)


def _check_entry(i: int, entry: Any) -> bytes:
    """The raw signature of a well-formed entry."""
    where = f"signatures[{i}]"
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise _malformed(f"{where}: expected an object with keys alg, key_id, sig")
    if not all(isinstance(entry[k], str) for k in _ENTRY_KEYS):
        raise _malformed(f"{where}: alg, key_id and sig must be strings")
    if entry["alg"] != ALGORITHM:
        raise _malformed(f"{where}.alg: unsupported algorithm {entry['alg']!r}")
    try:
        sig = base64.b64decode(entry["sig"], validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{where}.sig: not base64") from None
    if len(sig) != SIGNATURE_BYTES:
        raise _malformed(f"{where}.sig: expected {SIGNATURE_BYTES} bytes, got {len(sig)}")
    return sig


def split_envelope(
    envelope: Any, *, require_signatures: bool = True
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(document, signature entries) of a well-formed envelope, else PolicyRejected
    (MALFORMED, or UNSIGNED when it carries no signature and one is required)."""
    if not isinstance(envelope, dict):
        raise _malformed("expected a JSON object with 'document' and 'signatures'")
    unknown = sorted(set(envelope) - _ENVELOPE_KEYS)
    if unknown:
        raise _malformed(f"{unknown[0]}: unknown envelope key")
    document = envelope.get("document")
    if not isinstance(document, dict):
        raise _malformed("document: expected an object")
    signatures = envelope.get("signatures", [])
    if not isinstance(signatures, list):
        raise _malformed("signatures: expected an array")
    if not signatures and require_signatures:
        raise PolicyRejected(RejectReason.UNSIGNED, "the envelope carries no signature")
    seen: set[str] = set()
    for i, entry in enumerate(signatures):
        _check_entry(i, entry)
        if entry["key_id"] in seen:
            raise _malformed(f"signatures[{i}].key_id: key {entry['key_id']} signs twice")
        seen.add(entry["key_id"])
    return document, signatures


def verify_envelope(
    envelope: Any, trusted_public_keys_pem: Sequence[bytes] | TrustedKeys
) -> PolicyDocument:
    """The validated document of an envelope signed by a trusted key, else PolicyRejected
    with the reason: malformed, unsigned, untrusted, bad-signature or invalid."""
    trusted = (
        trusted_public_keys_pem
        if isinstance(trusted_public_keys_pem, TrustedKeys)
        else TrustedKeys.from_pems(trusted_public_keys_pem)
    )
    document, signatures = split_envelope(envelope)
    try:
        message = canonical_bytes(document)
    except CanonicalizationError as exc:
        raise _malformed(f"document.{exc}") from None
    checked = 0
    for i, entry in enumerate(signatures):
        public = trusted.get(entry["key_id"])
        if public is None:
            continue
        try:
            public.verify(_check_entry(i, entry), message)
        except InvalidSignature:
            raise PolicyRejected(
                RejectReason.BAD_SIGNATURE,
                f"signature by trusted key {entry['key_id']} does not match the document "
                "(altered after signing)",
            ) from None
        checked += 1
    if not checked:
        signers = ", ".join(s["key_id"] for s in signatures)
        raise PolicyRejected(
            RejectReason.UNTRUSTED,
            f"signed by {signers}; trusted: {', '.join(trusted.ids) or 'no keys'}",
        )
    try:
        return parse_policy(document)
    except PolicyValidationError as exc:
        raise PolicyRejected(RejectReason.INVALID, str(exc)) from None
