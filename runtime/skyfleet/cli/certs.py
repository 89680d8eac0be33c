"""`skyfleet certs`: create the fleet CA and issue node, admin and client certificates.

Everything lives in one folder: `ca.pem` + `ca.key` for the CA, `NAME.pem` + `NAME.key`
per certificate. Keys are written with mode 0600 and never printed; the output lists
paths, names and expiry only. Nothing is overwritten without `--force`, because replacing
the CA silently revokes every certificate the fleet runs on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from skyfleet.cli.argtypes import positive_int
from skyfleet.cli.main import CliError
from skyfleet.config.fleet_files import CA_CERT as _CA_CERT
from skyfleet.config.fleet_files import CA_KEY as _CA_KEY
from skyfleet.config.fleet_files import cert_name, key_name


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "certs", help="create the fleet CA and issue certificates for mTLS"
    )
    actions = parser.add_subparsers(dest="certs_action", required=True, metavar="ACTION")

    init = actions.add_parser("init", help="create the fleet CA (ca.pem, ca.key) in --dir")
    init.add_argument("--dir", type=Path, required=True, help="folder for the CA files")
    init.add_argument("--name", default="skyfleet fleet CA", help="the CA's common name")
    init.add_argument(
        "--days", type=positive_int("a number of days"), default=3650, help="validity in days"
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing CA: every certificate it issued stops being trusted",
    )
    init.set_defaults(func=_init)

    issue = actions.add_parser(
        "issue", help="issue NAME.pem and NAME.key in --dir, signed by the CA there"
    )
    issue.add_argument("--dir", type=Path, required=True, help="folder holding ca.pem/ca.key")
    issue.add_argument("name", metavar="NAME", help="node name (the certificate's CN)")
    issue.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="H",
        help="IP or DNS name peers dial this node at (repeatable; agents only)",
    )
    role = issue.add_mutually_exclusive_group()
    role.add_argument("--admin", action="store_true", help="an operator's certificate")
    role.add_argument("--client", action="store_true",
                      help="a task client's: submit and follow tasks, read members; no more")
    issue.add_argument(
        "--days", type=positive_int("a number of days"),
        help="validity in days (default: 365 agent, 90 admin and client)",
    )
    issue.add_argument("--force", action="store_true", help="replace existing NAME.pem/.key")
    issue.set_defaults(func=_issue)


def _refuse_overwrite(paths: list[Path], hint: str) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        raise CliError(f"{', '.join(existing)} already {verb}; {hint}")


def _write_pair(folder: Path, cert_path: Path, cert_pem: bytes, key_path: Path,
                key_pem: bytes) -> None:
    """The key (mode 0600) then the certificate, each written whole or not at all."""
    from skyfleet.security.certs import write_cert_file, write_key_file

    try:
        write_key_file(key_path, key_pem)
        write_cert_file(cert_path, cert_pem)
    except OSError as exc:
        raise CliError(f"--dir {folder}: cannot write there ({exc.strerror})") from None


def _init(args: argparse.Namespace) -> int:
    from skyfleet.security.certs import create_ca

    folder: Path = args.dir
    cert_path, key_path = folder / _CA_CERT, folder / _CA_KEY
    if not args.force:
        _refuse_overwrite(
            [cert_path, key_path],
            "pass --force to replace the CA (every certificate it issued stops being trusted)",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--dir: cannot create {folder}: {exc.strerror}") from None
    cert_pem, key_pem = create_ca(args.name, valid_days=args.days)
    _write_pair(folder, cert_path, cert_pem, key_path, key_pem)
    print(f"created fleet CA {args.name!r}: {cert_path}, {key_path} (mode 0600)")
    print(f"keep {key_path} off agent hosts; they need only {cert_path}")
    return 0


def _read_ca(folder: Path) -> tuple[bytes, bytes]:
    pems = []
    for name in (_CA_CERT, _CA_KEY):
        path = folder / name
        try:
            pems.append(path.read_bytes())
        except FileNotFoundError:
            raise CliError(
                f"{path}: no CA here; run `skyfleet certs init --dir {folder}`"
            ) from None
        except OSError as exc:
            raise CliError(f"{path}: cannot read: {exc.strerror}") from None
    return pems[0], pems[1]


def _issue(args: argparse.Namespace) -> int:
    from skyfleet.security.certs import (
        CertificateError,
        issue_admin_cert,
        issue_client_cert,
        issue_node_cert,
        load_certificate,
        serial_hex,
    )

    folder: Path = args.dir
    name: str = args.name
    role = "admin" if args.admin else "client" if args.client else "agent"
    if role != "agent" and args.host:
        article = "an" if role == "admin" else "a"
        raise CliError(
            f"--host: {article} {role} certificate is a caller's identity and names no hosts"
        )
    if name == Path(_CA_CERT).stem:
        raise CliError(f"NAME: {name!r} would overwrite the CA's own files; choose another")
    cert_path, key_path = folder / cert_name(name), folder / key_name(name)
    if not args.force:
        _refuse_overwrite([cert_path, key_path], "pass --force to replace them")
    ca_pem, ca_key_pem = _read_ca(folder)
    try:
        if role != "agent":
            issue = issue_admin_cert if role == "admin" else issue_client_cert
            cert_pem, key_pem = issue(ca_pem, ca_key_pem, name, valid_days=args.days or 90)
        else:
            days = args.days or 365
            cert_pem, key_pem = issue_node_cert(
                ca_pem, ca_key_pem, name, args.host, valid_days=days
            )
    except CertificateError as exc:
        culprit = {"ca": f"{folder / _CA_CERT}: ", "key": f"{folder / _CA_KEY}: "}
        raise CliError(f"{culprit.get(exc.part, '')}{exc}") from None
    _write_pair(folder, cert_path, cert_pem, key_path, key_pem)
    hosts = f", hosts {', '.join(args.host)}" if args.host else ""
    cert = load_certificate(cert_pem)
    expiry = cert.not_valid_after_utc
    print(f"issued {role} certificate for {name}{hosts}, valid until {expiry:%Y-%m-%d}")
    print(f"  {cert_path}\n  {key_path} (mode 0600)")
    print(f"  serial {serial_hex(cert)} (revoke: list it in the policy's revoked_certificates)")
    return 0
