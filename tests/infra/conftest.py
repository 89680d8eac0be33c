"""Make the Pulumi program (`infra/`, run by Pulumi as a directory) importable as a package,
load the provider SDKs once, and share one mock run per committed stack."""

import importlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

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

from skyfleet.policy.signing import generate_signing_key  # noqa: E402
from skyfleet.security.certs import create_ca  # noqa: E402
from tests.infra.mocks import StackRun, StackSecretsFixture, run_committed  # noqa: E402


@pytest.fixture(scope="session")
def stack_secrets() -> StackSecretsFixture:
    ca_cert, ca_key = create_ca("test fleet CA")
    private, public = generate_signing_key()
    return StackSecretsFixture(ca_cert.decode(), ca_key.decode(), private.decode(),
                               public.decode())


@pytest.fixture(scope="session")
def stack_runs(stack_secrets: StackSecretsFixture,
               tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], StackRun]:
    """`stack_runs(name)`: the committed stack, run once per session under mocks and
    shared by every test that only reads the result (a finished run never changes)."""
    runs: dict[str, StackRun] = {}

    def get(stack: str) -> StackRun:
        if stack not in runs:
            runs[stack] = run_committed(stack, stack_secrets, tmp_path_factory.mktemp(stack))
        return runs[stack]

    return get
