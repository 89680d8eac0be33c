"""Fixed ed25519 keys for the policy tests: derived from constant seeds, so every run signs
the same bytes and a failure reproduces exactly."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from skyfleet.policy.signing import key_id


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    public: bytes
    kid: str


def fixed_key(seed: int) -> KeyPair:
    private = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private_pem, public_pem, key_id(public_pem))
