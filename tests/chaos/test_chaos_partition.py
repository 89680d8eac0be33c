"""A cloud cut off from the others by iptables, both ways and one way, then healed, while
tasks flow: both sides see the split, the fleet reconverges after the heal, every agent
ends on the highest policy, and every task gets its one outcome."""

from __future__ import annotations

import pytest
from chaos_fleet import ChaosFleet, split, under_load

from skyfleet.localfleet.netns import Direction

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]


@pytest.mark.parametrize(
    ("cloud", "direction"),
    # One way at the packet level is both ways for TCP (a handshake and every ack need
    # the return path), so each one-way cut must split the membership as well.
    [("gcp", "both"), ("azure", "in"), ("aws", "out")],
)
async def test_cloud_partitioned_then_healed(chaos: ChaosFleet, cloud: str, direction: Direction):
    await chaos.recovered()
    cut = chaos.cloud(cloud)
    async with under_load(chaos) as load:
        load.phase = "partitioned"
        dropped = chaos.network.dropped_packets()
        chaos.network.cut(cloud, direction)
        await chaos.fleet.wait_for(
            split(cut), chaos.names, timeout=60, what=f"{cloud} cut off ({direction})"
        )
        assert chaos.network.dropped_packets() > dropped  # the rule acted on real packets
        load.phase = "healed"
        chaos.network.heal()
        await chaos.recovered()
    # Tasks kept being served on both sides of the cut (an entry agent routes inside its
    # own side once it sees the other dead).
    served = {r.outcome.executed_by for r in load.records if r.phase == "partitioned"}
    assert served & set(cut) and served - set(cut)
