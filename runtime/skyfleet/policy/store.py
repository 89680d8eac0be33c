"""The adopted policy on disk, so that a restarted agent starts on it.

Layout under the agent's state dir:

    policy/adopted.json            the signed envelope in force
    policy/adopted.rejected.json   the last stored file that failed to load (for forensics)

`save` writes a temporary file in the same directory, fsyncs it, renames it over the old
one and fsyncs the directory: after a crash at any point the file is the old envelope or
the new one, never a torn mix. `load` verifies the stored envelope exactly as if a peer
had offered it (signature by a *currently* trusted key, valid schema). A corrupted,
tampered or no-longer-trusted file is logged, moved aside and the agent starts with no
policy: running no policy until gossip delivers one beats running a bad one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyfleet.policy.adoption import decode_envelope
from skyfleet.policy.canonical import policy_hash
from skyfleet.policy.envelope import file_text
from skyfleet.policy.errors import PolicyRejected, SigningKeyError
from skyfleet.policy.model import PolicyDocument
from skyfleet.policy.signing import TrustedKeys, load_public_key, verify_envelope

logger = logging.getLogger(__name__)

POLICY_SUBDIR = "policy"
ADOPTED_FILE = "adopted.json"
REJECTED_FILE = "adopted.rejected.json"
_TEMP_PREFIX = ".adopted."
_TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredPolicy:
    """Result of loading the store: the envelope to start on (or None) and why."""

    envelope: dict[str, Any] | None
    document: PolicyDocument | None
    reason: str


def read_trusted_keys(paths: Sequence[Path]) -> TrustedKeys:
    """Load the `[policy] trusted_keys` files, each one PEM key or several; the error
    names the bad file."""
    keys = []
    for path in paths:
        try:
            # A file may hold several keys (old and new while the signing key rotates).
            text = path.read_bytes()
            blocks = [b"-----BEGIN" + part for part in text.split(b"-----BEGIN")[1:]]
            keys += [load_public_key(block) for block in blocks or [text]]
        except OSError as exc:
            raise SigningKeyError(f"{path}: cannot read ({exc.strerror})") from None
        except SigningKeyError as exc:
            raise SigningKeyError(f"{path}: {exc}") from None
    return TrustedKeys(keys)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PolicyStore:
    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / POLICY_SUBDIR

    @property
    def path(self) -> Path:
        return self._dir / ADOPTED_FILE

    def save(self, envelope: dict[str, Any]) -> Path:
        """Atomically replace the stored envelope; returns the file's path."""
        self._dir.mkdir(parents=True, exist_ok=True)
        data = file_text(envelope).encode()
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self._dir)
        return self.path

    def _remove_leftovers(self) -> None:
        """Temporary files of a save interrupted by a crash: never renamed, never valid."""
        for leftover in self._dir.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    def _reject(self, reason: str) -> StoredPolicy:
        logger.warning("stored policy %s rejected, starting with no policy: %s", self.path, reason)
        with contextlib.suppress(OSError):
            os.replace(self.path, self._dir / REJECTED_FILE)
        return StoredPolicy(envelope=None, document=None, reason=f"rejected: {reason}")

    def load(self, trusted_keys: Sequence[bytes] | TrustedKeys) -> StoredPolicy:
        """The stored envelope if it still verifies; never raises for a bad file."""
        if not self._dir.is_dir():
            return StoredPolicy(envelope=None, document=None, reason="no stored policy")
        self._remove_leftovers()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return StoredPolicy(envelope=None, document=None, reason="no stored policy")
        except OSError as exc:
            return self._reject(f"cannot read ({exc.strerror})")
        try:
            envelope = decode_envelope(raw)
            document = verify_envelope(envelope, trusted_keys)
        except PolicyRejected as exc:
            return self._reject(str(exc))
        digest = policy_hash(envelope["document"])
        reason = f"loaded version {document.version} hash {digest[:12]}"
        logger.info("stored policy %s: %s", self.path, reason)
        return StoredPolicy(envelope=envelope, document=document, reason=reason)
