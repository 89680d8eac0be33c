"""Every command, run as a process, fed an operator's mistakes: files missing, unreadable
(a folder where a file should be) or not what they claim, folders that cannot be written
(below a plain file: so even root cannot), TLS material that is garbage, from another CA
or does not fit together, a certificate of the wrong role, settings left unset, an agent
that refuses the connection and one that accepts it and says nothing.

Each must end with its exit status (1: the run failed, 2: the command line is wrong),
one line naming the culprit (argparse's usage and error line for status 2), nothing on
stdout and never a traceback. Every case runs through `main` in this process, its output
caught at the file descriptors (an exception escaping it fails the case with its
traceback); a sample of every command group runs as its own `python -m skyfleet` process
too, so the console script is seen to end the same way.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skyfleet.cli.main import main
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.policy.signing import sign_policy
from skyfleet.security.certs import (
    create_ca,
    issue_admin_cert,
    issue_client_cert,
    write_cert_file,
    write_key_file,
)
from tests.cli.cli_run import Run, skyfleet

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = ROOT / "policies" / "default.json"


class Mistakes:
    """The files and agents the cases point at, made once for the module."""

    def __init__(self, root: Path, closed: int, silent: int) -> None:
        layout = FleetLayout(root / "fleet")
        spec = AgentSpec(name="n0", cloud="aws", zone="z", address="127.0.0.1:7470")
        layout.write_agent(spec)
        ca = (layout.tls / "ca.pem").read_bytes(), (layout.tls / "ca.key").read_bytes()
        self._pair(layout.tls, "client", issue_client_cert(*ca, "client"))
        self.tls = layout.tls
        self.config = layout.config_path("n0")

        self.garbage_tls = root / "garbage-tls"  # every PEM is junk, the CA's key too
        self.garbage_tls.mkdir()
        for name in ("ca.pem", "ca.key", "admin.pem", "admin.key", "client.pem", "client.key"):
            (self.garbage_tls / name).write_text("not a PEM file\n")

        self.foreign_tls = root / "foreign-tls"  # our CA, their certificates
        self.foreign_tls.mkdir()
        (self.foreign_tls / "ca.pem").write_bytes(ca[0])
        other = create_ca("another fleet")
        self._pair(self.foreign_tls, "admin", issue_admin_cert(*other, "admin"))
        self._pair(self.foreign_tls, "client", issue_client_cert(*other, "client"))

        self.mismatched_tls = root / "mismatched-tls"  # each key belongs to another cert
        self.mismatched_tls.mkdir()
        (self.mismatched_tls / "ca.pem").write_bytes(ca[0])
        admin, client = issue_admin_cert(*ca, "admin"), issue_client_cert(*ca, "client")
        self._pair(self.mismatched_tls, "admin", (admin[0], client[1]))
        self._pair(self.mismatched_tls, "client", (client[0], admin[1]))

        self.bad_tls_config = layout.agents / "bad-tls.toml"  # a valid config, its key gone
        self.bad_tls_config.write_text(
            self.config.read_text().replace("n0.key", "gone.key"), "utf-8")
        self.config_folder = root / "agents"
        self.config_folder.mkdir()
        self.file = root / "plain-file"  # nothing can be created below it
        self.file.write_text("x")
        self.not_json = root / "not.json"
        self.not_json.write_text("{version: 1")
        self.not_toml = root / "not.toml"
        self.not_toml.write_text("[node\nname = ")
        self.signing_key = layout.signing_key
        self.signed = root / "default.signed.json"
        doc = json.loads(DEFAULT_POLICY.read_text())
        self.signed.write_text(json.dumps(sign_policy(doc, layout.signing_key.read_bytes())))
        self.missing = root / "missing"
        self.closed = f"127.0.0.1:{closed}"
        self.silent = f"127.0.0.1:{silent}"

    @staticmethod
    def _pair(folder: Path, name: str, pems: tuple[bytes, bytes]) -> None:
        write_cert_file(folder / f"{name}.pem", pems[0])
        write_key_file(folder / f"{name}.key", pems[1])

    def expand(self, text: str) -> str:
        return text.format(**{k: str(v) for k, v in vars(self).items()})


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mistakes]:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel completes the handshake; nobody ever reads or answers
    with closed, silent:
        yield Mistakes(tmp_path_factory.mktemp("cli"), closed.getsockname()[1],
                       silent.getsockname()[1])


# --- every command that calls an agent, with every connection mistake ---------------------

REMOTE = {
    "members": ["members"],
    "join": ["join", "127.0.0.1:7471"],
    "leave": ["leave"],
    "policy publish": ["policy", "publish", "{signed}"],
    "policy status": ["policy", "status"],
    "policy status --wait": ["policy", "status", "--wait"],
    "task submit": ["task", "submit", "echo", "--payload", "hi"],
}
ROLE = {"members": None, "join": "admin", "leave": "admin", "policy publish": "admin",
        "policy status": None, "policy status --wait": None, "task submit": "client"}
"""The certificate each calls with (None: any); the other role is refused."""

CONNECTION_MISTAKES = [
    # (name, extra args, environment, exit status, culprit)
    ("agent unset", [], {"SKYFLEET_TLS_DIR": "{tls}"}, 2, "$SKYFLEET_AGENT"),
    ("folder unset", [], {"SKYFLEET_AGENT": "{closed}"}, 2, "$SKYFLEET_TLS_DIR"),
    ("agent not HOST:PORT", [], {"SKYFLEET_AGENT": "nohost", "SKYFLEET_TLS_DIR": "{tls}"}, 2,
     "$SKYFLEET_AGENT: expected host:port, got 'nohost'"),
    ("bad --agent", ["--agent", "h:99999"], {"SKYFLEET_TLS_DIR": "{tls}"}, 2,
     "--agent: port out of range"),
    ("timeout zero", ["--timeout", "0"], {}, 2, "--timeout"),
    ("no such folder", ["--agent", "{closed}", "--tls-dir", "{missing}"], {}, 1,
     "--tls-dir: {missing}: not a folder"),
    ("folder from env is a file", ["--agent", "{closed}"], {"SKYFLEET_TLS_DIR": "{file}"}, 1,
     "$SKYFLEET_TLS_DIR: {file}: not a folder"),
    ("no such identity", ["--agent", "{closed}", "--tls-dir", "{tls}", "--identity", "ghost"],
     {}, 1, "--identity ghost: no {tls}/ghost.pem"),
    ("garbage PEM", ["--agent", "{closed}", "--tls-dir", "{garbage_tls}"], {}, 1,
     "{garbage_tls}/ca.pem: not a PEM file"),
    ("another CA's certificate", ["--agent", "{closed}", "--tls-dir", "{foreign_tls}"], {}, 1,
     "not issued by the fleet CA"),
    ("a key of another certificate", ["--agent", "{closed}", "--tls-dir", "{mismatched_tls}"],
     {}, 1, "the key does not belong to the certificate"),
    ("connection refused", ["--agent", "{closed}", "--tls-dir", "{tls}"], {}, 1, "{closed}"),
    ("agent never answers", ["--agent", "{silent}", "--tls-dir", "{tls}", "--timeout", "0.3"],
     {}, 1, "{silent}"),
]


ROLE_MISTAKES = [
    (f"{command}: wrong role", [*argv, "--identity", other],
     {"SKYFLEET_AGENT": "{closed}", "SKYFLEET_TLS_DIR": "{tls}"}, 1,
     f"--identity {other}: {{tls}}/{other}.pem is an? {other} certificate; this command "
     f"calls with an? {ROLE[command]} one")
    for command, argv in REMOTE.items()
    if (role := ROLE[command]) is not None
    for other in ("client" if role == "admin" else "admin",)
]


# --- every other command, with the mistakes it can meet ----------------------------------

CONNECTED = {"SKYFLEET_AGENT": "{closed}", "SKYFLEET_TLS_DIR": "{tls}"}

MISTAKES = [
    # (argv, environment, exit status, culprit)
    ([], {}, 2, "the following arguments are required: COMMAND"),
    (["fly"], {}, 2, "invalid choice: 'fly'"),
    (["agent", "run"], {}, 2, "--config"),
    (["agent", "run", "--config", "{missing}"], {}, 1, "{missing}: cannot read"),
    (["agent", "run", "--config", "{config_folder}"], {}, 1,
     "{config_folder}: cannot read (Is a directory)"),
    (["agent", "run", "--config", "{not_toml}"], {}, 1, "{not_toml}: not valid TOML"),
    (["agent", "run", "--config", "{bad_tls_config}"], {}, 1, "gone.key"),
    (["certs", "init", "--dir", "{file}/tls"], {}, 1, "--dir: cannot create {file}/tls"),
    (["certs", "init", "--dir", "{missing}", "--days", "0"], {}, 2, "--days"),
    (["certs", "issue", "--dir", "{missing}", "n1"], {}, 1, "{missing}/ca.pem: no CA here"),
    (["certs", "issue", "--dir", "{garbage_tls}", "n1"], {}, 1, "{garbage_tls}/ca.pem"),
    (["certs", "issue", "--dir", "{tls}", "--client", "--host", "10.0.0.1", "app"], {}, 1,
     "--host"),
    (["certs", "issue", "--dir", "{tls}", "client"], {}, 1, "{tls}/client.pem"),  # exists
    (["policy", "validate", "{missing}"], {}, 1, "{missing}: cannot read"),
    (["policy", "validate", "{config_folder}"], {}, 1, "{config_folder}: cannot read"),
    (["policy", "validate", "{not_json}"], {}, 1, "{not_json}: not JSON"),
    (["policy", "validate", "{signed}", "--trusted-key", "{missing}"], {}, 1, "{missing}"),
    (["policy", "sign", str(DEFAULT_POLICY), "--key", "{missing}"], {}, 1, "{missing}"),
    (["policy", "sign", str(DEFAULT_POLICY), "--key", "{not_json}"], {}, 1, "{not_json}"),
    (["policy", "sign", str(DEFAULT_POLICY), "--key", "{signing_key}", "--out", "{file}/p"],
     {}, 1, "{file}/p: cannot write"),
    (["policy", "diff", "{missing}", str(DEFAULT_POLICY)], {}, 1, "{missing}: cannot read"),
    (["policy", "keygen", "--out", "{file}/key"], {}, 1, "{file}/key.key: cannot create"),
    (["policy", "schema", "--out", "{file}/schema.json"], {}, 1,
     "{file}/schema.json: cannot write"),
    (["policy", "publish", "{missing}"], CONNECTED, 1, "{missing}: cannot read"),
    (["task", "submit", "echo", "--payload-file", "{missing}"], CONNECTED, 1,
     "--payload-file {missing}: cannot read"),
    (["task", "submit", "echo", "--payload-file", "{config_folder}"], CONNECTED, 1,
     "--payload-file {config_folder}: cannot read"),
    (["task", "submit", "echo", "--payload", "a", "--payload-file", "{signed}"], CONNECTED, 2,
     "not allowed with argument"),
    (["task", "submit"], CONNECTED, 2, "HANDLER"),
    (["members", "-o", "yaml"], CONNECTED, 2, "invalid choice: 'yaml'"),
    *[(["local", action, "--project", "{missing}"], {}, 1, "--project {missing}: no Pulumi.yaml")
      for action in ("up", "status", "down", "env", "demo")],
    (["local", "status", "--project", "{file}"], {}, 1, "--project {file}"),
    (["top", "--project", "{missing}"], {}, 1, "--project {missing}"),
    (["top", "--interval", "0"], {}, 2, "--interval"),
    (["policy", "status", "--version", "2"], CONNECTED, 2, "--version: only with --wait"),
    (["policy", "status", "--wait", "--version", "0"], CONNECTED, 2,
     "--version: must be 1 or more, got 0"),
    (["policy", "status", "--wait", "--version", "v2"], CONNECTED, 2,
     "--version: expected a version number, got 'v2'"),
    (["policy", "status", "--wait", "--timeout", "-1"], CONNECTED, 2, "--timeout"),
    # `top` calls a remote agent with --agent or $SKYFLEET_AGENT, else the local stack.
    (["top", "--agent", "{closed}", "--project", "{missing}"], {}, 2,
     "--agent and --project: pick one"),
    (["top", "--agent", "nohost", "--tls-dir", "{tls}"], {}, 2,
     "--agent: expected host:port, got 'nohost'"),
    (["top", "--agent", "{closed}"], {}, 2, "--tls-dir: no TLS folder given"),
    (["top", "--once"], {"SKYFLEET_AGENT": "{closed}"}, 2, "$SKYFLEET_TLS_DIR"),
    (["top", "--once"], CONNECTED, 1, "{closed}"),
    (["top", "--agent", "{silent}", "--tls-dir", "{tls}", "--timeout", "0.3"], {}, 1,
     "{silent}"),
    (["top", "--agent", "{closed}", "--tls-dir", "{tls}", "--identity", "ghost"], {}, 1,
     "--identity ghost: no {tls}/ghost.pem"),
    (["top", "--agent", "{closed}", "--tls-dir", "{missing}"], {}, 1,
     "--tls-dir: {missing}: not a folder"),
    (["top", "--timeout", "0"], {}, 2, "--timeout"),
    (["local", "status", "--timeout", "0"], {}, 2, "--timeout"),
    (["local", "env", "--timeout", "soon"], {}, 2, "--timeout"),
]


@dataclass(frozen=True, slots=True)
class Case:
    argv: list[str]
    env: dict[str, str]
    code: int
    culprit: str
    """In the last line of stderr; `an?` matches either article."""


def _cases() -> dict[str, Case]:
    cases = {}
    for name, args, env, code, culprit in CONNECTION_MISTAKES:
        if code == 2 and "--timeout" not in args:
            args = [*args, "--timeout=1"]  # a usage error must not wait for any agent
        for command, argv in REMOTE.items():
            cases[f"{command}: {name}"] = Case([*argv, *args], env, code, culprit)
    for name, argv, env, code, culprit in ROLE_MISTAKES:
        cases[name] = Case(argv, env, code, culprit)
    for i, (argv, env, code, culprit) in enumerate(MISTAKES):
        cases[f"{' '.join(argv[:2]) or '(none)'} #{i}"] = Case(argv, env, code, culprit)
    return cases


CASES = _cases()
SAMPLE = {}
"""The first case of each command group, run as a process as well."""
for case_id, case in CASES.items():
    SAMPLE.setdefault(case.argv[0] if case.argv else "", case_id)


@pytest.mark.parametrize("case_id", list(CASES))
def test_mistake(mistakes: Mistakes, case_id: str, monkeypatch: pytest.MonkeyPatch,
                 capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    case = CASES[case_id]
    for name in [n for n in os.environ if n.startswith("SKYFLEET_")]:
        monkeypatch.delenv(name)
    for name, value in case.env.items():
        monkeypatch.setenv(name, mistakes.expand(value))
    try:
        code = main([mistakes.expand(a) for a in case.argv])
    except SystemExit as exc:
        code = int(exc.code or 0)  # argparse's status
    out, err = capfdbinary.readouterr()
    check(mistakes, case, Run(code, out, err.decode()))


@pytest.mark.parametrize("case_id", list(SAMPLE.values()))
async def test_mistake_through_the_console_script(mistakes: Mistakes, case_id: str) -> None:
    case = CASES[case_id]
    run = await skyfleet(*(mistakes.expand(a) for a in case.argv),
                         env={k: mistakes.expand(v) for k, v in case.env.items()})
    check(mistakes, case, run)


def check(mistakes: Mistakes, case: Case, run: Run) -> None:
    assert "Traceback" not in run.err
    assert (run.code, run.out) == (case.code, b""), run.err
    lines = run.err.splitlines()
    if case.code == 1:
        assert len(lines) == 1, run.err
        assert lines[0].startswith("skyfleet: ")
    else:
        assert lines[0].startswith("usage: skyfleet") and ": error: " in lines[-1], run.err
    pattern = re.escape(mistakes.expand(case.culprit)).replace(r"an\?", "an?")
    assert re.search(pattern, lines[-1]), (case.culprit, run.err)
