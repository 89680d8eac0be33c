"""The session's chaos fleet (see chaos_fleet): built once, torn down at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaos_fleet import AGENTS, ChaosFleet, chaos_specs, policy_envelope

from skyfleet.localfleet.netns import FleetNetwork, unavailable_reason
from skyfleet.localfleet.procs import LocalFleet


@pytest.fixture(scope="session")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosFleet]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"chaos suite needs network namespaces: {reason}")
    network = FleetNetwork.create(AGENTS)
    try:
        specs = chaos_specs(network)
        with LocalFleet(tmp_path_factory.mktemp("chaos"), specs) as fleet:
            chaos = ChaosFleet(network, fleet, [s.name for s in specs])
            # Version 1 arrives the way infra delivers it: a file every agent watches.
            envelope = policy_envelope(1, chaos.signing_key)
            (fleet.layout.policy_source / "policy.json").write_bytes(envelope)
            chaos.version = 1
            fleet.start()
            yield chaos
    finally:
        network.teardown()
