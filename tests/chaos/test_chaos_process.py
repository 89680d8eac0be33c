"""Process faults under load: `kill -9` then a restart under the same name, and SIGSTOP
held past the suspicion timeout then SIGCONT. After each: one membership again, the
highest policy everywhere (the restarted agent from its own disk or a peer), no task lost.
The killed agent's port refuses connections, which its peers take as evidence
(`transport/port_check.py`); the frozen one's accepts them, so its death comes from
silence alone."""

from __future__ import annotations

import signal

import pytest
from chaos_fleet import ChaosFleet, under_load

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]


async def incarnation(chaos: ChaosFleet, observer: str, subject: str) -> int:
    return (await chaos.fleet.views([observer]))[observer][subject].incarnation


def refused_by(chaos: ChaosFleet, victim: str, offsets: dict[str, int]) -> list[str]:
    """The agents that logged a refused connect to `victim`'s port since `offsets`."""
    line = f"{victim} at {chaos.fleet.specs[victim].address} refused a connection"
    return [
        name
        for name in chaos.others([victim])
        if line.encode() in chaos.fleet.agents[name].log.read_bytes()[offsets[name]:]
    ]


async def test_kill_9_and_restart_under_the_same_name(chaos: ChaosFleet):
    await chaos.recovered()
    victim, observer = "azure-1", "aws-0"
    before = await incarnation(chaos, observer, victim)
    offsets = chaos.log_offsets()
    async with under_load(chaos) as load:
        load.phase = "killed"
        process = chaos.fleet.agents[victim]
        process.signal(signal.SIGKILL)
        assert process.proc is not None and process.proc.wait(10) == -signal.SIGKILL
        await chaos.fleet.wait_states(victim, {"dead"}, chaos.others([victim]), timeout=60)
        assert refused_by(chaos, victim, offsets), "no agent saw the dead port refuse"
        load.phase = "restarted"
        chaos.fleet.start([victim])
        await chaos.recovered()
    # The new life outbids every rumour about the old one.
    assert await incarnation(chaos, observer, victim) > before
    await leaves_gracefully_and_returns(chaos, victim)


async def test_sigstop_past_suspicion_then_sigcont(chaos: ChaosFleet):
    await chaos.recovered()
    victim, observer = "gcp-1", "azure-0"
    before = await incarnation(chaos, observer, victim)
    offsets = chaos.log_offsets()
    async with under_load(chaos) as load:
        load.phase = "stopped"
        chaos.fleet.agents[victim].signal(signal.SIGSTOP)
        try:
            await chaos.fleet.wait_states(victim, {"dead"}, chaos.others([victim]), timeout=60)
        finally:
            chaos.fleet.agents[victim].signal(signal.SIGCONT)
        load.phase = "continued"
        await chaos.recovered()
    assert refused_by(chaos, victim, offsets) == []
    # The same process came back: it refuted its death by raising its incarnation.
    assert await incarnation(chaos, observer, victim) > before
    await leaves_gracefully_and_returns(chaos, victim)


async def leaves_gracefully_and_returns(chaos: ChaosFleet, victim: str) -> None:
    """An agent that lived through a fault still stops cleanly on SIGTERM (leave, drain,
    exit 0 within the stop timeout), is seen `left`, and rejoins when started again."""
    process = chaos.fleet.agents[victim]
    stopped_before = process.log.read_text().count('"msg": "agent stopped"')
    assert process.stop(timeout=15) == 0
    assert process.log.read_text().count('"msg": "agent stopped"') == stopped_before + 1
    await chaos.fleet.wait_states(victim, {"left"}, chaos.others([victim]), timeout=30)
    chaos.fleet.start([victim])
    await chaos.recovered()
