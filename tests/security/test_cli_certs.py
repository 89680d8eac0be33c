"""`skyfleet certs init|issue`: files, modes, refusals, and no key material on screen."""

from __future__ import annotations

import argparse
import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from skyfleet.cli.certs import register
from skyfleet.cli.main import CliError
from skyfleet.security.certs import PeerIdentity, check_chain, load_certificate, peer_identity


def run(*argv: str) -> int:
    """Parse and run like `skyfleet`, with only the certs group registered, so these tests
    do not depend on the other command groups."""
    parser = argparse.ArgumentParser(prog="skyfleet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certs", *argv])
    return int(args.func(args))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_no_key_material(text: str, *keys: Path) -> None:
    assert "PRIVATE KEY" not in text
    for key in keys:
        for line in key.read_text().splitlines()[1:-1]:
            assert line not in text


def test_init_creates_the_ca_with_a_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "tls"
    assert run("init", "--dir", str(folder)) == 0
    ca = load_certificate((folder / "ca.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _mode(folder / "ca.key") == 0o600 and _mode(folder / "ca.pem") == 0o644
    out = capsys.readouterr()
    assert str(folder / "ca.key") in out.out
    _assert_no_key_material(out.out + out.err, folder / "ca.key")


def test_init_refuses_to_replace_a_ca_unless_forced(tmp_path: Path) -> None:
    run("init", "--dir", str(tmp_path))
    before = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca.key").read_bytes()
    with pytest.raises(CliError, match=r"ca\.pem, .*ca\.key already exist; pass --force"):
        run("init", "--dir", str(tmp_path))
    assert ((tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca.key").read_bytes()) == before
    run("init", "--dir", str(tmp_path), "--force")
    assert (tmp_path / "ca.pem").read_bytes() != before[0]


def test_issue_writes_a_node_certificate_signed_by_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("init", "--dir", str(tmp_path))
    argv = ["issue", "--dir", str(tmp_path), "aws-1a-0", "--host", "10.10.1.5"]
    assert run(*argv, "--host", "localhost") == 0
    cert_pem = (tmp_path / "aws-1a-0.pem").read_bytes()
    key_pem = (tmp_path / "aws-1a-0.key").read_bytes()
    ca_pem = (tmp_path / "ca.pem").read_bytes()
    assert check_chain(ca_pem, cert_pem, key_pem) == PeerIdentity("aws-1a-0", "agent")
    san = load_certificate(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["aws-1a-0", "localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.10.1.5")]
    assert _mode(tmp_path / "aws-1a-0.key") == 0o600
    out = capsys.readouterr()
    assert "issued agent certificate for aws-1a-0, hosts 10.10.1.5, localhost" in out.out
    _assert_no_key_material(out.out + out.err, tmp_path / "aws-1a-0.key", tmp_path / "ca.key")


def test_issue_admin_writes_an_admin_certificate(tmp_path: Path) -> None:
    run("init", "--dir", str(tmp_path))
    run("issue", "--dir", str(tmp_path), "alice", "--admin", "--days", "7")
    cert_pem = (tmp_path / "alice.pem").read_bytes()
    assert peer_identity(cert_pem) == PeerIdentity("alice", "admin")
    cert = load_certificate(cert_pem)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 7


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alice", "--admin", "--host", "10.0.0.1"], r"^--host: an admin certificate"),
        (["bob", "--client", "--host", "10.0.0.1"], r"^--host: a client certificate"),
        (["ca"], r"^NAME: 'ca' would overwrite the CA's own files"),
        (["a b"], r"^name 'a b': use 1-64 letters"),
        (["n1", "--host", "a b"], r"^host 'a b': expected an IP address or a DNS name"),
    ],
)
def test_issue_refuses_bad_requests_by_name(tmp_path: Path, argv: list[str], message: str) -> None:
    run("init", "--dir", str(tmp_path))
    with pytest.raises(CliError, match=message):
        run("issue", "--dir", str(tmp_path), *argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.key", "ca.pem"]


def test_issue_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"ca\.pem: no CA here; run `skyfleet certs init --dir"):
        run("issue", "--dir", str(tmp_path), "n1")


def test_issue_names_a_broken_ca_file(tmp_path: Path) -> None:
    run("init", "--dir", str(tmp_path))
    (tmp_path / "ca.key").write_text("garbage\n")
    with pytest.raises(CliError, match=r"ca\.key: not an unencrypted PEM private key$"):
        run("issue", "--dir", str(tmp_path), "n1")


def test_issue_refuses_to_replace_a_certificate_unless_forced(tmp_path: Path) -> None:
    run("init", "--dir", str(tmp_path))
    run("issue", "--dir", str(tmp_path), "n1")
    before = (tmp_path / "n1.pem").read_bytes()
    with pytest.raises(CliError, match=r"n1\.pem, .*n1\.key already exist; pass --force"):
        run("issue", "--dir", str(tmp_path), "n1")
    assert (tmp_path / "n1.pem").read_bytes() == before
    run("issue", "--dir", str(tmp_path), "n1", "--force")
    assert (tmp_path / "n1.pem").read_bytes() != before


@pytest.mark.parametrize("days", ["0", "-3", "soon"])
def test_days_must_be_a_positive_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    with pytest.raises(SystemExit) as info:
        run("init", "--dir", str(tmp_path), "--days", days)
    assert info.value.code == 2
    assert "--days" in capsys.readouterr().err


def test_console_entry_point_runs_certs_and_reports_errors(tmp_path: Path) -> None:
    """The real `skyfleet` entry point (every command group loaded) reaches this group."""
    script = Path(sys.executable).parent / "skyfleet"  # the installed console script
    argv = [str(script), "certs", "init", "--dir", str(tmp_path)]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 1
    assert second.stderr.startswith(f"skyfleet: {tmp_path / 'ca.pem'}, ")
