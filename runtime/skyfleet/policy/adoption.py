"""Which policy an agent runs: the adoption rules as a pure state machine.

Rules, applied to every signed envelope offered, whatever its origin (the watched file,
a peer's gossip or pull, an admin RPC):

1. It must parse, carry a signature by a trusted key that verifies, and hold a
   schema-valid document; otherwise: INVALID (with the rejection reason).
2. With no policy in force, a valid document is ADOPTED.
3. A higher version than the one in force is ADOPTED.
4. A lower version is IGNORED_OLDER: late gossip is normal, not an error.
5. The same version with the same content hash is DUPLICATE_SAME (signatures may differ:
   a re-signed copy during key rotation is the same policy).
6. The same version with a different hash is a CONFLICT: two different documents claim
   one version, someone published without bumping it. The policy in force stays; the
   operator must publish a higher version to settle it.

Theory of operation: `offer(envelope, origin, now)` returns a `Decision` and changes
nothing else in the world. The caller logs the decision (`log_decision`), persists the
envelope when `decision.adopted` (`skyfleet.policy.store`), and applies
`adopter.current` to the balancer. The gRPC agent and the simulator drive the same class.
`Decision.repeat` marks a decision already returned for the same document, so a driver can
log the hundredth copy of an old document from gossip at debug level.
"""

from __future__ import annotations

import copy
import enum
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skyfleet.config.policy_defaults import (
    ADOPTION_MEMORY,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_DEPTH,
)
from skyfleet.policy.canonical import policy_hash
from skyfleet.policy.errors import PolicyError, PolicyRejected, RejectReason
from skyfleet.policy.model import PolicyDocument
from skyfleet.policy.signing import TrustedKeys, verify_envelope

HASH_LOG_CHARS = 12
"""Hash prefix shown in log lines; the full hash is in `Decision.hash`."""


class Outcome(enum.StrEnum):
    ADOPTED = "adopted"
    IGNORED_OLDER = "ignored-older"
    DUPLICATE_SAME = "duplicate-same"
    CONFLICT = "conflict"
    INVALID = "invalid"


_LOG_LEVELS = {
    Outcome.ADOPTED: logging.INFO,
    Outcome.IGNORED_OLDER: logging.DEBUG,
    Outcome.DUPLICATE_SAME: logging.DEBUG,
    Outcome.CONFLICT: logging.WARNING,
    Outcome.INVALID: logging.WARNING,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What happened to one offered envelope, with everything a log line needs."""

    outcome: Outcome
    origin: str
    """Where the envelope came from, e.g. `file:/etc/skyfleet/policy/current.json`,
    `peer:aws-1a-0`, `admin:alice`."""
    at: float
    """The injected clock's time of the decision."""
    version: int | None
    """Version of the offered document, when it could be read."""
    hash: str | None
    """policy_hash of the offered document, when it could be computed."""
    reason: str
    current_version: int | None
    """Version in force after the decision."""
    current_hash: str | None
    reject_reason: RejectReason | None = None
    """Set for INVALID."""
    repeat: bool = False
    """The same outcome for the same document was already returned."""

    @property
    def adopted(self) -> bool:
        return self.outcome is Outcome.ADOPTED

    @property
    def log_level(self) -> int:
        return logging.DEBUG if self.repeat else _LOG_LEVELS[self.outcome]

    def log_message(self) -> str:
        """`policy <outcome>[/<reject reason>] version=<v> hash=<h> origin=<o>
        current=<v>: <reason>`, "-" for what is unknown: the one form of log lines and
        of `Policy.Publish` refusals (docs/operations.md)."""
        short = self.hash[:HASH_LOG_CHARS] if self.hash else "-"
        version = "-" if self.version is None else str(self.version)
        current = "-" if self.current_version is None else str(self.current_version)
        outcome = f"{self.outcome}/{self.reject_reason}" if self.reject_reason else self.outcome
        return (
            f"policy {outcome} version={version} hash={short} origin={self.origin}"
            f" current={current}: {self.reason}"
        )


def log_decision(logger: logging.Logger, decision: Decision) -> None:
    """Log a decision at its level: adoptions at info, conflicts and rejections at
    warning, old news and repeats at debug."""
    logger.log(decision.log_level, "%s", decision.log_message())


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers could keep different copies of a repeated key; refuse the ambiguity.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"repeated key {key!r}")
        result[key] = value
    return result


def nesting_depth(raw: bytes | str, limit: int) -> int:
    """How deep arrays and objects nest in JSON text, counting brackets outside strings;
    stops counting at `limit` + 1. Malformed text gets some number: the parser names the
    fault afterwards."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif ch in "]}":
            depth -= 1
    return deepest


def decode_envelope(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """Parsed JSON of an envelope (a private copy when given a dict); PolicyRejected
    MALFORMED when it is too large or not a JSON object."""
    if isinstance(raw, dict):
        return copy.deepcopy(raw)
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size == 0:
        raise PolicyRejected(RejectReason.MALFORMED, "empty")
    if size > MAX_DOCUMENT_BYTES:
        raise PolicyRejected(
            RejectReason.MALFORMED, f"{size} bytes exceeds the {MAX_DOCUMENT_BYTES} byte limit"
        )
    if (depth := nesting_depth(raw, MAX_DOCUMENT_DEPTH)) > MAX_DOCUMENT_DEPTH:
        raise PolicyRejected(RejectReason.MALFORMED,
                             f"nested deeper than the limit of {MAX_DOCUMENT_DEPTH} ({depth}+)")
    try:
        data = json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PolicyRejected(RejectReason.MALFORMED, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyRejected(RejectReason.MALFORMED, "expected a JSON object")
    return data


def _peek(envelope: Any) -> tuple[int | None, str | None]:
    """Best-effort (version, hash) of a possibly invalid envelope, for the log line."""
    document = envelope.get("document") if isinstance(envelope, dict) else None
    if not isinstance(document, dict):
        return None, None
    version = document.get("version")
    version = version if isinstance(version, int) and not isinstance(version, bool) else None
    try:
        return version, policy_hash(document)
    except PolicyError:
        return version, None


class PolicyAdopter:
    """Holds the policy in force and decides on every offered envelope (module docstring).

    `current` is an envelope restored from the store; it is verified against the trusted
    keys like any offer and PolicyRejected is raised if it fails (the store only returns
    verified envelopes, so that is a bug, not an input problem).
    """

    def __init__(
        self,
        *,
        trusted_keys: Sequence[bytes] | TrustedKeys,
        current: dict[str, Any] | None = None,
        memory: int = ADOPTION_MEMORY,
    ) -> None:
        self._trusted = self._as_trusted(trusted_keys)
        self._memory = memory
        self._seen: OrderedDict[tuple[str, str | None, str], None] = OrderedDict()
        self._envelope: dict[str, Any] | None = None
        self._document: PolicyDocument | None = None
        self._hash: str | None = None
        if current is not None:
            envelope = decode_envelope(current)
            self._install(envelope, verify_envelope(envelope, self._trusted))

    @staticmethod
    def _as_trusted(keys: Sequence[bytes] | TrustedKeys) -> TrustedKeys:
        return keys if isinstance(keys, TrustedKeys) else TrustedKeys.from_pems(keys)

    @property
    def current(self) -> PolicyDocument | None:
        """The policy in force, or None before the first adoption."""
        return self._document

    @property
    def current_hash(self) -> str | None:
        return self._hash

    @property
    def current_envelope(self) -> dict[str, Any] | None:
        """A copy of the signed envelope in force: what to persist and to serve to peers."""
        return copy.deepcopy(self._envelope)

    def set_trusted_keys(self, keys: Sequence[bytes] | TrustedKeys) -> None:
        """Trust a new key set (config reload during rotation). The policy in force stays:
        it was valid when adopted, and dropping it would leave the fleet with none."""
        self._trusted = self._as_trusted(keys)

    def _install(self, envelope: dict[str, Any], document: PolicyDocument) -> None:
        self._envelope = envelope
        self._document = document
        self._hash = policy_hash(envelope["document"])

    def offer(self, envelope: bytes | str | dict[str, Any], origin: str, now: float) -> Decision:
        """Apply the adoption rules to one envelope from `origin` at time `now`."""
        version: int | None = None
        digest: str | None = None
        try:
            data = decode_envelope(envelope)
            version, digest = _peek(data)
            document = verify_envelope(data, self._trusted)
        except PolicyRejected as exc:
            return self._decide(
                Outcome.INVALID, origin, now, version, digest, exc.detail, exc.reason
            )
        assert digest is not None  # verification canonicalised the document
        current = self._document
        if current is None or document.version > current.version:
            before = "no policy" if current is None else f"version {current.version}"
            self._install(data, document)
            return self._decide(
                Outcome.ADOPTED, origin, now, document.version, digest, f"replaces {before}"
            )
        if document.version < current.version:
            return self._decide(
                Outcome.IGNORED_OLDER,
                origin,
                now,
                document.version,
                digest,
                f"older than version {current.version} in force",
            )
        if digest == self._hash:
            return self._decide(
                Outcome.DUPLICATE_SAME, origin, now, document.version, digest, "already in force"
            )
        return self._decide(
            Outcome.CONFLICT,
            origin,
            now,
            document.version,
            digest,
            f"version {current.version} is in force with hash {self._hash}; a different "
            "document claims the same version; publish a higher version to resolve",
        )

    def _decide(
        self,
        outcome: Outcome,
        origin: str,
        now: float,
        version: int | None,
        digest: str | None,
        reason: str,
        reject_reason: RejectReason | None = None,
    ) -> Decision:
        key = (str(outcome), digest, reason)
        repeat = key in self._seen
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return Decision(
            outcome=outcome,
            origin=origin,
            at=now,
            version=version,
            hash=digest,
            reason=reason,
            current_version=None if self._document is None else self._document.version,
            current_hash=self._hash,
            reject_reason=reject_reason,
            repeat=repeat,
        )
