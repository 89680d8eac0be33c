"""`skyfleet policy validate|sign|diff|keygen|schema`, run through the real entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from policy_keys import KeyPair

from skyfleet.cli.main import main
from skyfleet.policy.model import policy_json_schema
from skyfleet.policy.signing import key_id, verify_envelope

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def keyfile(tmp_path: Path, key: KeyPair, name: str) -> tuple[Path, Path]:
    private, public = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
    private.write_bytes(key.private)
    public.write_bytes(key.public)
    return private, public


def test_validate_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(POLICIES / "default.json"), str(POLICIES / "drain-azure.json")]
    assert main(["policy", "validate", *files]) == 0
    out = capsys.readouterr().out
    assert "default.json: valid, version 1" in out
    assert "drain-azure.json: valid, version 2" in out


def test_validate_names_every_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(
        tmp_path / "bad.json",
        {"version": 1, "failover": {"max_attempts": 0}, "locality": {"prefre": "zone"}},
    )
    assert main(["policy", "validate", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{bad}: failover.max_attempts: must be between 1 and 10, got 0" in err
    assert any(line.startswith(f"{bad}: locality.prefre: unknown key") for line in err)


def test_validate_unreadable_and_non_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "validate", str(tmp_path / "nope.json")]) == 1
    assert "nope.json: cannot read" in capsys.readouterr().err
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{version: 1")
    assert main(["policy", "validate", str(garbage)]) == 1
    assert "garbage.json: not JSON" in capsys.readouterr().err


def test_keygen_writes_a_private_key_only_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "fleet-2026"
    assert main(["policy", "keygen", "--out", str(prefix)]) == 0
    out = capsys.readouterr().out
    private = Path(f"{prefix}.key")
    public = Path(f"{prefix}.pub")
    assert private.stat().st_mode & 0o777 == 0o600
    assert key_id(public.read_bytes()) in out
    assert "BEGIN" not in out
    before = private.read_bytes()
    assert main(["policy", "keygen", "--out", str(prefix)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert private.read_bytes() == before


def test_sign_then_add_a_second_signature(
    tmp_path: Path, old_key: KeyPair, new_key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    old_priv, old_pub = keyfile(tmp_path, old_key, "old")
    new_priv, new_pub = keyfile(tmp_path, new_key, "new")
    doc = tmp_path / "drain.json"
    shutil.copy(POLICIES / "drain-azure.json", doc)

    assert main(["policy", "sign", str(doc), "--key", str(old_priv)]) == 0
    signed = tmp_path / "drain.signed.json"
    out = capsys.readouterr().out
    assert f"{signed}: version 2" in out and old_key.kid in out
    assert "PRIVATE" not in out and old_key.private.decode().splitlines()[1] not in out

    assert main(["policy", "sign", str(signed), "--key", str(new_priv)]) == 0
    envelope = json.loads(signed.read_text())
    assert [s["key_id"] for s in envelope["signatures"]] == [old_key.kid, new_key.kid]
    for pub in (old_key.public, new_key.public):
        assert verify_envelope(envelope, [pub]).drained_clouds == ("azure",)
    capsys.readouterr()

    assert main(["policy", "validate", str(signed), "--trusted-key", str(new_pub)]) == 0
    assert "(verified)" in capsys.readouterr().out
    assert main(["policy", "validate", str(doc), "--trusted-key", str(old_pub)]) == 1
    assert "unsigned document" in capsys.readouterr().err


def test_validate_with_trusted_key_rejects_other_signers(
    tmp_path: Path, old_key: KeyPair, rogue_key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    rogue_priv, _ = keyfile(tmp_path, rogue_key, "rogue")
    _, old_pub = keyfile(tmp_path, old_key, "old")
    out = tmp_path / "x.signed.json"
    main(
        [
            "policy",
            "sign",
            str(POLICIES / "default.json"),
            "--key",
            str(rogue_priv),
            "--out",
            str(out),
        ]
    )
    assert main(["policy", "validate", str(out), "--trusted-key", str(old_pub)]) == 1
    assert "signature: untrusted" in capsys.readouterr().err


def test_sign_refuses_invalid_document_and_bad_key(
    tmp_path: Path, old_key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    old_priv, old_pub = keyfile(tmp_path, old_key, "old")
    bad = write(tmp_path / "bad.json", {"version": 1, "drained_clouds": ["aws", "azure", "gcp"]})
    assert main(["policy", "sign", str(bad), "--key", str(old_priv)]) == 1
    assert "drained_clouds: drains every cloud" in capsys.readouterr().err
    assert not (tmp_path / "bad.signed.json").exists()
    good = write(tmp_path / "good.json", {"version": 1})
    assert main(["policy", "sign", str(good), "--key", str(old_pub)]) == 1
    err = capsys.readouterr().err
    assert "old.pub: not an unencrypted PEM private key" in err
    assert "PUBLIC KEY" not in err


def test_diff_prints_field_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", {"version": 1})
    new = write(
        tmp_path / "new.json",
        {
            "version": 2,
            "locality": {"overprovisioning_factor": 1.2},
            "routing": {"rules": [{"task_kind": "eu.*", "allowed_clouds": ["gcp"]}]},
        },
    )
    assert main(["policy", "diff", str(old), str(new)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "~ version: 1 -> 2",
        "~ locality.overprovisioning_factor: 1.4 -> 1.2",
        '+ routing.rules[0]: {"allowed_clouds": ["gcp"], "allowed_regions": [], '
        '"task_kind": "eu.*"}',
    ]


def test_diff_of_equal_effective_policies_is_empty(
    tmp_path: Path, old_key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    explicit = POLICIES / "default.json"
    minimal = write(
        tmp_path / "min.json",
        {"version": 1, "description": json.loads(explicit.read_text())["description"]},
    )
    old_priv, _ = keyfile(tmp_path, old_key, "old")
    main(["policy", "sign", str(minimal), "--key", str(old_priv)])
    capsys.readouterr()
    # A signed envelope compares by its document.
    assert main(["policy", "diff", str(explicit), str(tmp_path / "min.signed.json")]) == 0
    assert capsys.readouterr().out == "no effective change\n"


def test_diff_of_invalid_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "bad.json", {"version": -1})
    assert main(["policy", "diff", str(POLICIES / "default.json"), str(bad)]) == 1
    assert f"{bad}: version: must be between 1" in capsys.readouterr().err


def test_schema_command_matches_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_json_schema()
    out = tmp_path / "schema.json"
    assert main(["policy", "schema", "--out", str(out)]) == 0
    assert out.read_text() == (POLICIES / "schema.json").read_text()
