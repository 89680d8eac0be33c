"""10 % packet loss on every path between clouds (iptables `statistic` match) under load:
membership must ride it out. Suspicions may come and go; no healthy agent may be declared
dead by anyone, and no task may be lost."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from chaos_fleet import CLOUDS, ChaosFleet, under_load

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]

LOSS = 0.10
WINDOW = 20.0
"""Seconds of loss: more than a full suspicion timeout (max 18 s for 6 agents on the
`local` profile), so a suspicion that could not be refuted would have ended in `dead`."""


async def test_ten_percent_loss_between_clouds_declares_no_one_dead(chaos: ChaosFleet):
    await chaos.recovered()
    offsets = chaos.log_offsets()
    dropped = chaos.network.dropped_packets()
    seen_down: set[tuple[str, str, str]] = set()
    async with under_load(chaos) as load:
        load.phase = "lossy"
        for a, b in itertools.combinations(CLOUDS, 2):
            chaos.network.set_loss(a, b, LOSS)
        try:
            end = time.monotonic() + WINDOW
            while time.monotonic() < end:
                views = await chaos.fleet.views(chaos.names)
                seen_down |= {
                    (observer, member, row.state)
                    for observer, view in views.items()
                    for member, row in view.items()
                    if row.state in ("dead", "left")
                }
                await asyncio.sleep(0.25)
            # Read before `heal`, which flushes the chain and its counters.
            dropped = chaos.network.dropped_packets() - dropped
        finally:
            chaos.network.heal()
        load.phase = "clean"
        await chaos.recovered()
    assert dropped > 0  # the loss acted on real packets
    assert seen_down == set()
    assert chaos.failures_since(offsets) == []  # not even between two polls
