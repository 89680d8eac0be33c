"""The balancing policy: document model, canonical bytes, signatures, adoption rules and
the on-disk copy of the adopted policy.

    model       PolicyDocument and parse_policy (spec + consistency behind it)
    canonical   the bytes that are signed and hashed
    signing     ed25519 envelopes, trusted key sets, verification
    adoption    PolicyAdopter: the pure rules deciding which policy is in force
    store       atomic persistence of the adopted envelope
"""

from skyfleet.policy.adoption import Decision, Outcome, PolicyAdopter, log_decision
from skyfleet.policy.canonical import canonical_bytes, policy_hash
from skyfleet.policy.errors import (
    PolicyError,
    PolicyRejected,
    PolicyValidationError,
    RejectReason,
    SigningKeyError,
)
from skyfleet.policy.model import PolicyDocument, parse_policy, policy_json_schema
from skyfleet.policy.signing import (
    TrustedKeys,
    add_signature,
    generate_signing_key,
    key_id,
    sign_policy,
    verify_envelope,
)
from skyfleet.policy.store import PolicyStore, StoredPolicy, read_trusted_keys

__all__ = [
    "Decision",
    "Outcome",
    "PolicyAdopter",
    "PolicyDocument",
    "PolicyError",
    "PolicyRejected",
    "PolicyStore",
    "PolicyValidationError",
    "RejectReason",
    "SigningKeyError",
    "StoredPolicy",
    "TrustedKeys",
    "add_signature",
    "canonical_bytes",
    "generate_signing_key",
    "key_id",
    "log_decision",
    "parse_policy",
    "policy_hash",
    "policy_json_schema",
    "read_trusted_keys",
    "sign_policy",
    "verify_envelope",
]
