"""A cloud that goes dark (issue 14, item 1): every packet between it and the others
dropped, nothing refused, while tasks flow under a policy whose per-attempt timeout
(60 s) is far beyond the client's deadline (10 s). An attempt sent into the dark cloud
can then end in time only by the task channels' keepalive (`transport/peers.py`): it
fails as unreachable within about 1.5 s, is retried elsewhere, and ejects its peer. So
every task must succeed, though membership takes seconds longer to see the split."""

from __future__ import annotations

import pytest
from chaos_fleet import FAILOVER, ChaosFleet, split, under_load

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]

LONG_ATTEMPTS = {**FAILOVER, "per_attempt_timeout_seconds": 60}
ANYWHERE = {"prefer": "none"}
"""Every agent is a zone of its own here: zone locality would keep tasks at their entry
agent, and none would be sent into the dark cloud."""


async def test_a_blackholed_cloud_fails_no_task(chaos: ChaosFleet):
    await chaos.recovered()
    await chaos.publish("aws-0", chaos.version + 1, failover=LONG_ATTEMPTS, locality=ANYWHERE)
    await chaos.recovered()
    dark = chaos.cloud("azure")
    try:
        async with under_load(chaos, rate=30.0) as load:
            load.phase = "dark"
            dropped = chaos.network.dropped_packets()
            chaos.network.cut("azure", "both")
            await chaos.fleet.wait_for(
                split(dark), chaos.names, timeout=60, what="azure seen dead by the others"
            )
            assert chaos.network.dropped_packets() > dropped
            load.phase = "healed"
            chaos.network.heal()
            await chaos.recovered()
    finally:
        chaos.network.heal()
        await chaos.publish("aws-0", chaos.version + 1)  # the suite's usual attempts
    in_dark = [r for r in load.records if r.phase == "dark"]
    assert len(in_dark) > 30
    failed = [r.outcome for r in in_dark if r.outcome.status != "succeeded"]
    assert failed == [], f"{len(failed)} of {len(in_dark)} tasks failed in the dark: {failed[:3]}"
    # Tasks entering the live clouds were routed into the dark one and came back.
    retried = [r for r in in_dark if r.outcome.attempts > 1 and r.outcome.entry not in dark]
    assert retried, "no attempt went into the dark cloud: the test proved nothing"
