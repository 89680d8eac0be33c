"""The policy error tree.

    PolicyError
    ├── PolicyValidationError   the document itself is wrong (schema, cross-field rules,
    │                           values canonical JSON cannot carry); names every bad path
    ├── PolicyRejected          a signed envelope must not be adopted; `reason` says why
    └── SigningKeyError         a key file is not an ed25519 key (a local mistake)

Validation and key errors are the operator's to fix before publishing; a rejection is
what an agent reports about a document it received, usually from someone else.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class PolicyError(Exception):
    """Base of every error raised by `skyfleet.policy`."""


class PolicyValidationError(PolicyError, ValueError):
    """One or more fields of a policy document are invalid.

    `errors` holds every problem found as (path, message), paths like
    `failover.max_attempts` or `routing.rules[2].allowed_clouds[0]`; `path` and `message`
    are the first of them.
    """

    def __init__(
        self, path: str, message: str, errors: Sequence[tuple[str, str]] | None = None
    ) -> None:
        self.errors: list[tuple[str, str]] = list(errors) if errors else [(path, message)]
        self.path, self.message = self.errors[0]
        super().__init__("; ".join(f"{p}: {m}" for p, m in self.errors))

    @classmethod
    def collected(cls, errors: Sequence[tuple[str, str]]) -> PolicyValidationError:
        """One error carrying all of `errors` (which must not be empty)."""
        return cls(errors[0][0], errors[0][1], errors)


class RejectReason(enum.StrEnum):
    """Why a signed envelope was not accepted; stable strings for logs and metrics."""

    MALFORMED = "malformed"
    """Not an envelope: not JSON, wrong shape, a signature entry that cannot be read."""
    UNSIGNED = "unsigned"
    """No signatures at all."""
    UNTRUSTED = "untrusted"
    """Signed, but by no key this agent trusts."""
    BAD_SIGNATURE = "bad-signature"
    """A trusted key's signature does not match the document: altered after signing."""
    INVALID = "invalid"
    """Authentic, but the document breaks the schema."""


class PolicyRejected(PolicyError):
    """A signed policy envelope failed verification; `reason` is the category, `detail`
    the specifics (key ids, field paths), never key material."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class SigningKeyError(PolicyError, ValueError):
    """A PEM is not a usable ed25519 key. The message never quotes the key's bytes."""
