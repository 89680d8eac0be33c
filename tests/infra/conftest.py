"""Make the Pulumi program (`infra/`, run by Pulumi as a directory) importable as a package,
and share one mock run per committed stack (`tests.infra.mocks` loads the provider SDKs)."""

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

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
