"""A policy published on both sides of a partition: each side adopts its own document,
and after the heal every agent runs the higher version, whichever side it came from."""

from __future__ import annotations

import pytest
from chaos_fleet import ChaosFleet, on_version, split, under_load

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]


async def test_policy_published_on_both_sides_converges_on_the_higher(chaos: ChaosFleet):
    """The higher version is published on the minority side (one cloud of three): the
    harder direction, since the majority must take news from the smaller side."""
    await chaos.recovered()
    minority = chaos.cloud("gcp")
    majority = chaos.others(minority)
    low, high = chaos.version + 1, chaos.version + 2
    versions = {"minority": high, "majority": low}

    async with under_load(chaos) as load:
        load.phase = "split"
        chaos.network.cut("gcp", "both")
        try:
            await chaos.fleet.wait_for(split(minority), chaos.names, timeout=60, what="gcp cut off")
            for side, names in (("majority", majority), ("minority", minority)):
                outcome = await chaos.publish(
                    names[0], versions[side], description=f"published on the {side} side"
                )
                assert outcome == "adopted"
                await chaos.fleet.wait_for(
                    on_version(versions[side]), names, timeout=60, what=f"{side} on its policy"
                )
        finally:
            chaos.network.heal()
        load.phase = "healed"
        assert chaos.version == high
        await chaos.recovered()
