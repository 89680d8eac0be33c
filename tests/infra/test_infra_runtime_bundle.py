"""The runtime bundle: reproducible from the source, or taken from a private index
(a stand-in PEP 503 index of ours over HTTPS on loopback); a version with no wheel fails
naming the key."""

from __future__ import annotations

import hashlib
import http.server
import re
import ssl
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config import StackConfigError
from infra.runtime_bundle import BUNDLE_CACHE, build_bundle
from skyfleet.security.certs import create_ca, issue_node_cert
from tests.infra.mocks import run_stack, stack_file_config, write_policy


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def own_bundle() -> Path:
    return build_bundle("0.1.0", BUNDLE_CACHE).path


@pytest.fixture
def index(own_bundle: Path, tmp_path: Path, monkeypatch) -> Iterator[str]:
    """A private index holding skyfleet 0.1.0 and its dependencies (the very wheels of
    the bundle built from source), as a PEP 503 simple index over HTTPS."""
    files = tmp_path / "index" / "files"
    files.mkdir(parents=True)
    projects: dict[str, list[str]] = {}
    for name, data in _members(own_bundle).items():
        if not name.endswith(".whl"):
            continue
        (files / name).write_bytes(data)
        project = re.sub(r"[-_.]+", "-", name.split("-")[0]).lower()
        digest = hashlib.sha256(data).hexdigest()
        projects.setdefault(project, []).append(
            f'<a href="../../files/{name}#sha256={digest}">{name}</a>')
    for project, links in projects.items():
        page = tmp_path / "index" / "simple" / project
        page.mkdir(parents=True)
        (page / "index.html").write_text("<html><body>" + "".join(links) + "</body></html>")
    ca_cert, ca_key = create_ca("index CA")
    cert, key = issue_node_cert(ca_cert, ca_key, "index", ["127.0.0.1"])
    for path, data in (("ca.pem", ca_cert), ("cert.pem", cert), ("key.pem", key)):
        (tmp_path / path).write_bytes(data)
    # pip trusts our index's CA (requests reads REQUESTS_CA_BUNDLE over pip's --cert).
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(variable, str(tmp_path / "ca.pem"))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)  # the index alone supplies wheels

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "index"), **kwargs)

        def log_message(self, format, *args):  # noqa: A002
            """Requests are not the test's output."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


def test_the_same_source_builds_the_same_bytes(own_bundle: Path, tmp_path: Path) -> None:
    again = build_bundle("0.1.0", tmp_path / "cache")
    assert again.path.read_bytes() == own_bundle.read_bytes()
    members = _members(own_bundle)
    listing = members["requirements.txt"].decode().splitlines()
    wheels = {n for n in members if n.endswith(".whl") and not n.startswith("pip-")}
    assert len(listing) == len(wheels)
    for line in listing:
        name, version = line.split(" ")[0].split("==")
        digest = line.rsplit("sha256:", 1)[1]
        (wheel,) = [w for w in wheels
                    if re.sub(r"[-_.]+", "-", w.split("-")[0]).lower() == name
                    and w.split("-")[1] == version]
        assert hashlib.sha256(members[wheel]).hexdigest() == digest


def test_a_private_index_supplies_the_version_and_its_dependencies(index, own_bundle,
                                                                  tmp_path) -> None:
    bundle = build_bundle("0.1.0", tmp_path / "cache", index=index)
    ours, theirs = _members(own_bundle), _members(bundle.path)
    assert set(theirs) == set(ours)
    skyfleet = next(n for n in theirs if n.startswith("skyfleet-"))
    assert theirs[skyfleet] == ours[skyfleet]
    assert bundle.object_name.startswith("runtime/skyfleet-0.1.0-")


def test_a_version_the_index_lacks_fails_naming_both_keys(index, tmp_path) -> None:
    with pytest.raises(StackConfigError) as err:
        build_bundle("9.9.9", tmp_path / "cache", index=index)
    message = str(err.value)
    assert message.startswith("skyfleet:runtimeVersion: '9.9.9' has no wheel")
    assert f"skyfleet:runtimeIndex {index}" in message
    assert not list((tmp_path / "cache").glob("*.tar"))  # nothing half-built is kept


def test_another_version_without_an_index_fails_naming_the_key(tmp_path) -> None:
    with pytest.raises(StackConfigError, match=r"^skyfleet:runtimeVersion: '0\.2\.0' has no "
                                               r"wheel: this program builds skyfleet 0\.1\.0"):
        build_bundle("0.2.0", tmp_path / "cache")


def test_the_program_stops_at_a_version_without_a_wheel(stack_secrets, tmp_path) -> None:
    """What `pulumi preview` shows: the key and why, from the program, before any
    resource is declared (the bundle is built before the first host)."""
    config = stack_file_config("dev")
    config["skyfleet:runtimeVersion"] = "0.2.0"
    write_policy(tmp_path, config)
    with pytest.raises(StackConfigError, match=r"^skyfleet:runtimeVersion: '0\.2\.0'"):
        run_stack("dev", config, stack_secrets, tmp_path)
