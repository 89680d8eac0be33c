"""`skyfleet policy ...`: check, sign and compare balancing policy documents offline.

    skyfleet policy validate FILE... [--trusted-key PUB]   exit 1 if any file is invalid
    skyfleet policy sign FILE --key KEY [--out PATH]        FILE may already be signed
    skyfleet policy diff OLD NEW                            exit 1 if they differ
    skyfleet policy keygen --out PREFIX                     PREFIX.key + PREFIX.pub
    skyfleet policy schema [--out PATH]                     the JSON Schema

Every FILE may be a bare document or a signed envelope. Key material is never printed:
only key ids.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from skyfleet.cli.main import CliError
from skyfleet.cli.policy_fleet import add_fleet_commands
from skyfleet.policy.adoption import decode_envelope
from skyfleet.policy.canonical import policy_hash
from skyfleet.policy.diff import diff_policies
from skyfleet.policy.envelope import file_text
from skyfleet.policy.errors import PolicyRejected, PolicyValidationError, SigningKeyError
from skyfleet.policy.model import PolicyDocument, parse_policy, policy_json_schema
from skyfleet.policy.signing import (
    add_signature,
    generate_signing_key,
    key_id,
    sign_policy,
    split_envelope,
    verify_envelope,
)
from skyfleet.policy.store import read_trusted_keys

SIGNED_SUFFIX = ".signed.json"


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return decode_envelope(raw)
    except PolicyRejected as exc:
        raise CliError(f"{path}: {exc.detail}") from None


def _is_envelope(data: dict[str, Any]) -> bool:
    return "document" in data


def _document_of(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    if not _is_envelope(data):
        return data
    try:
        return split_envelope(data, require_signatures=False)[0]
    except PolicyRejected as exc:
        raise CliError(f"{path}: {exc.detail}") from None


def _print_errors(path: Path, exc: PolicyValidationError) -> None:
    for field_path, message in exc.errors:
        print(f"{path}: {field_path}: {message}", file=sys.stderr)


def _validate_one(path: Path, trusted: list[Path]) -> bool:
    data = _read_json(path)
    document = _document_of(path, data)
    try:
        doc = parse_policy(document)
    except PolicyValidationError as exc:
        _print_errors(path, exc)
        return False
    detail = f"version {doc.version}, hash {policy_hash(document)[:12]}"
    if _is_envelope(data):
        signers = [s["key_id"] for s in split_envelope(data, require_signatures=False)[1]]
        detail += f", signed by {', '.join(signers) or 'nobody'}"
        if trusted:
            try:
                verify_envelope(data, read_trusted_keys(trusted))
            except SigningKeyError as exc:
                raise CliError(str(exc)) from None
            except PolicyRejected as exc:
                print(f"{path}: signature: {exc}", file=sys.stderr)
                return False
            detail += " (verified)"
    elif trusted:
        print(f"{path}: signature: unsigned document", file=sys.stderr)
        return False
    print(f"{path}: valid, {detail}")
    return True


def _cmd_validate(args: argparse.Namespace) -> int:
    results = [_validate_one(path, args.trusted_key) for path in args.files]
    return 0 if all(results) else 1


def _signed_path(path: Path) -> Path:
    """x.json -> x.signed.json; an already signed file gains its signature in place."""
    if path.name.endswith(SIGNED_SUFFIX):
        return path
    return path.with_name(path.name.removesuffix(".json") + SIGNED_SUFFIX)


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"{path}: cannot write ({exc.strerror})") from None


def _cmd_sign(args: argparse.Namespace) -> int:
    data = _read_json(args.file)
    try:
        private = args.key.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.key}: cannot read ({exc.strerror})") from None
    try:
        if _is_envelope(data):
            envelope = add_signature(data, private)
        else:
            envelope = sign_policy(data, private)
    except SigningKeyError as exc:
        raise CliError(f"{args.key}: {exc}") from None
    except PolicyRejected as exc:
        raise CliError(f"{args.file}: {exc.detail}") from None
    except PolicyValidationError as exc:
        _print_errors(args.file, exc)
        return 1
    out = args.out or _signed_path(args.file)
    _write_atomic(out, file_text(envelope))
    document = envelope["document"]
    signers = ", ".join(s["key_id"] for s in envelope["signatures"])
    print(
        f"{out}: version {document['version']}, hash {policy_hash(document)[:12]}, "
        f"signed by {signers}"
    )
    return 0


def _load_effective(path: Path) -> PolicyDocument:
    data = _read_json(path)
    try:
        return parse_policy(_document_of(path, data))
    except PolicyValidationError as exc:
        _print_errors(path, exc)
        raise CliError(f"{path}: not a valid policy") from None


def _cmd_diff(args: argparse.Namespace) -> int:
    changes = diff_policies(_load_effective(args.old), _load_effective(args.new))
    for change in changes:
        print(change)
    if not changes:
        print("no effective change")
    return 1 if changes else 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    private_path = Path(f"{args.out}.key")
    public_path = Path(f"{args.out}.pub")
    private, public = generate_signing_key()
    # O_EXCL: never overwrite a key; losing the only copy of a trusted key is an outage.
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{private_path}: already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise CliError(f"{private_path}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    try:
        public_path.write_bytes(public)
    except OSError as exc:
        raise CliError(f"{public_path}: cannot write ({exc.strerror})") from None
    print(f"key {key_id(public)}: private {private_path} (keep secret), public {public_path}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    text = _json_text(policy_json_schema())
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write_atomic(args.out, text)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy", help="validate, sign and compare balancing policy documents"
    )
    sub = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    p = sub.add_parser("validate", help="check documents; every error names its field")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE")
    p.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        default=[],
        metavar="PUB",
        help="also require a valid signature by this public key (repeatable)",
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("sign", help="sign a document, or add a signature to a signed one")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--key", type=Path, required=True, help="ed25519 private key (PEM)")
    p.add_argument("--out", type=Path, help=f"output file (default: FILE as *{SIGNED_SUFFIX})")
    p.set_defaults(func=_cmd_sign)

    p = sub.add_parser("diff", help="field-level changes; exit 1 if the policies differ")
    p.add_argument("old", type=Path, metavar="OLD")
    p.add_argument("new", type=Path, metavar="NEW")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("keygen", help="create an ed25519 signing key pair")
    p.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.key, PREFIX.pub")
    p.set_defaults(func=_cmd_keygen)

    add_fleet_commands(sub)

    p = sub.add_parser("schema", help="print the JSON Schema of policy documents")
    p.add_argument("--out", type=Path, help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)
