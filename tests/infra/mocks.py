"""Pulumi engine mocks for the cloud stacks, and a runner that executes the program.

The mocks play the engine and the providers: they return what a provider would compute
(IDs, tunnel addresses, identities) and record every registered resource, so tests can
assert on exactly what `pulumi up` would send. Dynamic resources are answered the way the
engine would, by calling the provider's `create` with the inputs (certificate issuance is
real; local agent processes are never started here).

Runs cost seconds each (the engine's bookkeeping, not our code), so tests share one run
per committed stack through the session fixture `stack_runs` (see conftest).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import importlib
import json
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from secrets import choice as random_choice
from typing import Any

import pulumi

# The provider SDKs deprecate some of their own modules with a DeprecationWarning at
# import time, which pytest's filterwarnings=error would turn into a failure that says
# nothing about our code. Import the modules the program uses once, warnings silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    for _module in (
        "pulumi_aws.ec2", "pulumi_aws.iam", "pulumi_aws.s3",
        "pulumi_azure_native.resources", "pulumi_azure_native.network",
        "pulumi_azure_native.compute", "pulumi_azure_native.managedidentity",
        "pulumi_azure_native.storage", "pulumi_azure_native.authorization",
        "pulumi_gcp.compute", "pulumi_gcp.storage", "pulumi_gcp.serviceaccount",
    ):
        # The SDKs load submodules lazily: touching an attribute really imports them.
        getattr(importlib.import_module(_module), "_skyfleet_force_load", None)


from infra.stack_files import stack_config
from tests.infra import tls_mock

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNAMIC = "pulumi-python:dynamic"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def plain(value: Any) -> Any:
    """Unwrap the engine's secret envelopes so tests can read what would be sent."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


def _ip(prefix: str, name: str) -> str:
    """A provider-assigned address that depends only on the resource name."""
    return f"{prefix}.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 250 + 1}"


class FleetMocks(pulumi.runtime.Mocks):
    def __init__(self, state: dict[str, dict[str, Any]] | None = None) -> None:
        self.resources: list[Recorded] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        """Provider functions invoked (image queries, client config), with their args."""
        self.state: dict[str, dict[str, Any]] = {} if state is None else state
        """Dynamic resource outputs by name: the engine's state, kept across runs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ.startswith("tls:index/"):
            outputs = self._tls(args.typ, args.name, plain(args.inputs))
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs = self._password(args.name, plain(args.inputs))
        elif args.typ == f"{DYNAMIC}/skyfleet:LocalNetwork":
            # As a loopback network would answer: no namespace is built under mocks.
            names = [name for name, _ in args.inputs["agents"]]
            outputs.update(prefix="", block="", gateway="",
                           addresses={n: "127.0.0.1" for n in names},
                           namespaces={n: "" for n in names})
        elif args.typ == f"{DYNAMIC}/skyfleet:LocalAgent":
            outputs.update(pid=4242, config=f"/nonexistent/{args.inputs['node_name']}.toml",
                           log=f"/nonexistent/{args.inputs['node_name']}.log")
        elif args.typ == "aws:ec2/vpnConnection:VpnConnection":
            outputs["tunnel1Address"] = _ip("198.51.100", args.name + "/1")
            outputs["tunnel2Address"] = _ip("198.51.100", args.name + "/2")
        elif args.typ == "gcp:compute/haVpnGateway:HaVpnGateway":
            outputs["vpnInterfaces"] = [{"id": 0, "ipAddress": "203.0.113.10"},
                                        {"id": 1, "ipAddress": "203.0.113.11"}]
        elif args.typ == "azure-native:network:PublicIPAddress":
            outputs["ipAddress"] = _ip("192.0.2", args.name)
        elif args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            outputs.update(clientId="client-1", principalId="principal-1")
        elif args.typ == "gcp:serviceaccount/account:Account":
            outputs["email"] = f"{args.inputs['accountId']}@proj.iam.gserviceaccount.com"
        elif args.typ == "azure-native:compute:VirtualMachine":
            # Azure takes a list of identity ids and answers with a map keyed by id.
            identity = dict(outputs["identity"])
            identity["userAssignedIdentities"] = {
                i: {} for i in identity["userAssignedIdentities"]
            }
            outputs["identity"] = identity
        elif args.typ == "azure-native:resources:ResourceGroup":
            outputs["name"] = args.name
        elif args.typ == "aws:s3/bucket:Bucket":
            outputs["arn"] = f"arn:aws:s3:::{args.inputs['bucket']}"
        elif args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::123456789012:role/{args.name}"
        self.resources.append(Recorded(args.typ, args.name, plain(args.inputs), outputs))
        return f"{args.name}-id", outputs

    def _tls(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """pulumi-tls as its provider answers: a real key, request and certificate, kept
        across runs (the engine's state) and re-made only when an input changes, as the
        provider replaces on any input change."""
        held = self.state.get(name)
        if held is not None and held["__inputs"] == inputs:
            return held
        outputs = dict(inputs)
        if typ == "tls:index/privateKey:PrivateKey":
            outputs["privateKeyPem"] = tls_mock.private_key()
        elif typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = tls_mock.cert_request(inputs)
        elif typ == "tls:index/locallySignedCert:LocallySignedCert":
            outputs["certPem"] = tls_mock.sign(inputs)
        self.state[name] = {**outputs, "__inputs": inputs}
        return self.state[name]

    def _password(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """pulumi-random as its provider answers: a random result of the length and
        alphabet asked, new only when a keeper (or another input) changes."""
        held = self.state.get(name)
        if held is None or held["__inputs"] != inputs:
            alphabet = string.ascii_letters + string.digits
            result = "".join(random_choice(alphabet) for _ in range(int(inputs["length"])))
            held = self.state[name] = {**inputs, "result": result, "__inputs": inputs}
        return held

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        self.calls.append((args.token, plain(dict(args.args))))
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0123456789", "architecture": "x86_64"}, []
        if args.token == "gcp:compute/getImage:getImage":
            family, project = args.args.get("family"), args.args.get("project")
            return {"selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}"
                                f"/global/images/{family}-v20261201", "family": family}, []
        if args.token == "azure-native:authorization:getClientConfig":
            return {"subscriptionId": "sub-1", "tenantId": "tenant-1", "clientId": "c",
                    "objectId": "o"}, []
        return {}, []

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def dynamic(self, kind: str) -> list[Recorded]:
        return self.of_type(f"{DYNAMIC}/skyfleet:{kind}")


HOST_TYPES = {
    "aws": "aws:ec2/instance:Instance",
    "azure": "azure-native:compute:VirtualMachine",
    "gcp": "gcp:compute/instance:Instance",
}


def sent_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as the engine diffs them: an asset is its text or path (a file's contents
    are pinned by the bundle's content-addressed name), not a Python object."""
    def sent(v: object) -> object:
        if isinstance(v, pulumi.FileAsset):
            return v.path
        return v.text if isinstance(v, pulumi.StringAsset) else v
    return {k: sent(v) for k, v in inputs.items() if k != "__provider"}


def changed_resources(before: StackRun, after: StackRun) -> set[str]:
    """Names of the resources whose inputs differ between two runs of one stack (the
    same resources must be declared: nothing created or deleted)."""
    by_key = {(r.typ, r.name): r for r in before.mocks.resources}
    assert sorted(by_key) == sorted((r.typ, r.name) for r in after.mocks.resources)
    return {r.name for r in after.mocks.resources
            if sent_inputs(r.inputs) != sent_inputs(by_key[(r.typ, r.name)].inputs)}


def host_name(record: Recorded) -> str:
    """The node name of a host resource (its certificate's CN)."""
    if record.typ == HOST_TYPES["aws"]:
        return str(record.inputs["tags"]["Name"])
    if record.typ == HOST_TYPES["gcp"]:
        return str(record.inputs["name"])
    return str(record.inputs["vmName"])


def published(run: StackRun, cloud: str, suffix: str) -> str:
    """The text of a small object in a cloud's store (`FleetStore`)."""
    (record,) = [r for r in run.mocks.resources if r.name == f"policy-{cloud}-{suffix}"]
    if record.typ == "azure-native:storage:Blob":
        return str(record.inputs["source"].text)
    return str(record.inputs["content"])


def user_data(record: Recorded) -> str:
    """A host's user data as the cloud hands it to cloud-init (Azure's is base64)."""
    if record.typ == HOST_TYPES["aws"]:
        return str(record.inputs["userData"])
    if record.typ == HOST_TYPES["gcp"]:
        return str(record.inputs["metadata"]["user-data"])
    return base64.b64decode(record.inputs["osProfile"]["customData"]).decode()


@dataclass
class StackSecretsFixture:
    ca_cert: str
    ca_key: str
    signing_key: str
    signing_pub: str


@dataclass
class StackRun:
    mocks: FleetMocks
    exports: dict[str, Any] = field(default_factory=dict)


def stack_file_config(stack: str) -> dict[str, str]:
    """The committed `Pulumi.<stack>.yaml` over Pulumi.yaml's defaults, as the raw strings
    the CLI hands the program."""
    return stack_config(REPO_ROOT, stack)


@functools.cache
def mock_loop() -> asyncio.AbstractEventLoop:
    """The event loop of every mock run. Pulumi's mocks and test runner use the thread's
    current loop, and an async test earlier in the session (pytest-asyncio) leaves none
    behind. Never closed: the mock monitor gives each of the loop's executor threads a loop
    of its own that nobody closes, and closing ours would end those threads mid-session."""
    return asyncio.new_event_loop()


def run_stack(stack: str, config: dict[str, str], secrets: StackSecretsFixture,
              root: Path, previous: StackRun | None = None, *, preview: bool = False) -> StackRun:
    """Run the program for `stack` under mocks; `root` holds its policies/ directory;
    `previous` carries the engine state of an earlier run (an update, not a new stack)."""
    asyncio.set_event_loop(mock_loop())
    mocks = FleetMocks(dict(previous.mocks.state) if previous else None)
    pulumi.runtime.set_mocks(mocks, project="skyfleet", stack=stack, preview=preview)
    full = dict(config)
    full.update({
        "skyfleet:fleetSigningKey": secrets.signing_key,
        "skyfleet:caCert": secrets.ca_cert,
        "skyfleet:caKey": secrets.ca_key,
        "skyfleet:azureSshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0test operator",
    })
    full.setdefault("skyfleet:localStateDir", str(root / "local-state"))
    pulumi.runtime.set_all_config(
        full, ["skyfleet:fleetSigningKey", "skyfleet:caKey"]
    )
    # Import after mocks and config are in place (the program itself is a function).
    from infra import program

    run = StackRun(mocks)

    @pulumi.runtime.test
    def execute() -> pulumi.Output[Any]:
        outputs = program.compose(pulumi.Config("skyfleet"), "skyfleet", stack, root)
        return pulumi.Output.from_input(outputs).apply(run.exports.update)

    execute()
    return run


def write_policy(root: Path, config: dict[str, str]) -> None:
    """The committed policy document the stack names, at the stack's policyVersion."""
    document = json.loads((REPO_ROOT / config["skyfleet:policyFile"]).read_text())
    document["version"] = int(config["skyfleet:policyVersion"])
    path = root / config["skyfleet:policyFile"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def run_committed(stack: str, secrets: StackSecretsFixture, root: Path, *,
                  preview: bool = False) -> StackRun:
    """The committed `Pulumi.<stack>.yaml` under mocks, in `root` (`preview`: as
    `pulumi preview` runs the program, with unknowns)."""
    config = stack_file_config(stack)
    write_policy(root, config)
    return run_stack(stack, config, secrets, root, preview=preview)
