"""PolicyStore: the adopted envelope survives a restart; a bad stored file never runs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from policy_keys import KeyPair

from skyfleet.policy.adoption import Outcome, PolicyAdopter
from skyfleet.policy.errors import SigningKeyError
from skyfleet.policy.signing import sign_policy
from skyfleet.policy.store import (
    ADOPTED_FILE,
    POLICY_SUBDIR,
    REJECTED_FILE,
    PolicyStore,
    read_trusted_keys,
)


@pytest.fixture
def signed(old_key: KeyPair, make_doc: Callable[..., dict]) -> Callable[..., dict]:
    def sign(version: int = 1, **fields: Any) -> dict[str, Any]:
        return sign_policy(make_doc(version, **fields), old_key.private)

    return sign


def test_restart_starts_on_the_adopted_policy(
    tmp_path: Path, old_key: KeyPair, signed: Callable
) -> None:
    adopter = PolicyAdopter(trusted_keys=[old_key.public])
    store = PolicyStore(tmp_path)
    for version in (1, 2):
        decision = adopter.offer(signed(version), "file:/x", float(version))
        assert decision.adopted
        store.save(adopter.current_envelope)

    # "Restart": fresh objects over the same state dir.
    loaded = PolicyStore(tmp_path).load([old_key.public])
    assert loaded.document is not None and loaded.document.version == 2
    assert loaded.reason.startswith("loaded version 2")
    restarted = PolicyAdopter(trusted_keys=[old_key.public], current=loaded.envelope)
    assert restarted.current_hash == adopter.current_hash
    assert restarted.offer(signed(1), "peer:p", 3.0).outcome is Outcome.IGNORED_OLDER


def test_empty_state_dir_means_no_policy(tmp_path: Path, old_key: KeyPair) -> None:
    for state in (tmp_path / "missing", tmp_path):
        loaded = PolicyStore(state).load([old_key.public])
        assert loaded.envelope is None and loaded.reason == "no stored policy"


def test_save_writes_through_rename_and_fsync(
    tmp_path: Path, signed: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PolicyStore(tmp_path)
    store.save(signed(1))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with open(store.path, "rb") as reader:  # a reader of the old file keeps the old bytes
        store.save(signed(2))
        assert json.loads(reader.read())["document"]["version"] == 1
    assert json.loads(store.path.read_text())["document"]["version"] == 2
    assert len(synced) == 2  # the file, then the directory
    assert sorted(p.name for p in store.path.parent.iterdir()) == [ADOPTED_FILE]
    assert store.path.stat().st_mode & 0o777 == 0o644


def test_failed_save_keeps_the_old_file(
    tmp_path: Path, old_key: KeyPair, signed: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PolicyStore(tmp_path)
    store.save(signed(1))

    def full_disk(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        store.save(signed(2))
    monkeypatch.undo()
    assert sorted(p.name for p in store.path.parent.iterdir()) == [ADOPTED_FILE]
    assert store.load([old_key.public]).document.version == 1


def test_leftover_temp_file_of_a_crash_is_removed(
    tmp_path: Path, old_key: KeyPair, signed: Callable
) -> None:
    store = PolicyStore(tmp_path)
    store.save(signed(1))
    leftover = store.path.parent / ".adopted.abc123.tmp"
    leftover.write_text('{"document": {"vers')
    assert store.load([old_key.public]).document.version == 1
    assert not leftover.exists()


def corrupt_truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def corrupt_tampered(path: Path) -> None:
    data = json.loads(path.read_text())
    data["document"]["drained_clouds"] = ["aws", "gcp"]
    path.write_text(json.dumps(data))


def corrupt_unsigned(path: Path) -> None:
    data = json.loads(path.read_text())
    data["signatures"] = []
    path.write_text(json.dumps(data))


def corrupt_empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (corrupt_truncated, "malformed"),
        (corrupt_tampered, "bad-signature"),
        (corrupt_unsigned, "unsigned"),
        (corrupt_empty, "malformed"),
    ],
)
def test_bad_stored_file_is_rejected_logged_and_moved_aside(
    corrupt: Callable[[Path], None],
    reason: str,
    tmp_path: Path,
    old_key: KeyPair,
    signed: Callable,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PolicyStore(tmp_path)
    store.save(signed(1))
    corrupt(store.path)
    bad = store.path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="skyfleet.policy.store"):
        loaded = store.load([old_key.public])
    assert loaded.envelope is None and loaded.document is None
    assert loaded.reason.startswith(f"rejected: {reason}")
    assert any(reason in r.getMessage() for r in caplog.records)
    assert not store.path.exists()
    assert (tmp_path / POLICY_SUBDIR / REJECTED_FILE).read_bytes() == bad


def test_stored_policy_by_a_key_no_longer_trusted_is_rejected(
    tmp_path: Path, new_key: KeyPair, signed: Callable
) -> None:
    store = PolicyStore(tmp_path)
    store.save(signed(1))
    loaded = store.load([new_key.public])
    assert loaded.envelope is None and loaded.reason.startswith("rejected: untrusted")


def test_read_trusted_keys_names_the_bad_file(tmp_path: Path, old_key: KeyPair) -> None:
    good = tmp_path / "fleet.pub"
    good.write_bytes(old_key.public)
    assert read_trusted_keys([good]).ids == (old_key.kid,)
    bad = tmp_path / "oops.pub"
    bad.write_bytes(old_key.private)
    with pytest.raises(SigningKeyError, match="oops.pub"):
        read_trusted_keys([good, bad])
    with pytest.raises(SigningKeyError, match="missing.pub: cannot read"):
        read_trusted_keys([tmp_path / "missing.pub"])
