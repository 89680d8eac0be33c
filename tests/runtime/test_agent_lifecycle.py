"""The agent's one life: new, starting, running, leaving, stopped; a loop that fails
takes the agent out of the fleet gracefully instead of leaving a half-working member."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.membership.messages import MemberState
from skyfleet.node import Agent, AgentState
from tests.runtime.joined_agents import joined_layout, until


@pytest.fixture
def fleet(tmp_path: Path, free_ports) -> tuple[FleetLayout, list[AgentSpec]]:
    return joined_layout(tmp_path, free_ports(2))


async def test_states_run_one_way_and_an_agent_starts_once(fleet) -> None:
    layout, _ = fleet
    agent = Agent(load_agent_config(layout.config_path("n0")))
    assert agent.state is AgentState.NEW
    with pytest.raises(RuntimeError, match="agent is new"):
        _ = agent.router
    await agent.shutdown()  # nothing to leave: a no-op
    assert agent.state is AgentState.NEW
    async with agent:
        assert agent.state is AgentState.RUNNING
        with pytest.raises(RuntimeError, match="an agent starts once"):
            await agent.start()
    assert agent.state is AgentState.STOPPED and agent.failure is None
    await agent.shutdown()  # a second leave is a no-op too
    with pytest.raises(RuntimeError, match="agent is stopped"):
        await agent.start()


async def test_a_failing_loop_stops_the_others_and_the_agent_leaves(fleet) -> None:
    layout, _ = fleet
    n0 = Agent(load_agent_config(layout.config_path("n0")))
    n1 = Agent(load_agent_config(layout.config_path("n1")))

    async def broken() -> None:
        await until(lambda: n0.swim.member("n1") is not None, "n1 to join n0")
        raise OSError("credentials folder vanished")

    n1._watch_credentials = broken  # type: ignore[method-assign]
    async with n0:
        async with n1:
            await n1.stopped()  # asked to stop by the failure, not by this test
            assert isinstance(n1.failure, OSError) and "vanished" in str(n1.failure)
            assert n1.state is AgentState.RUNNING  # still in the fleet until it leaves
        assert n1.state is AgentState.STOPPED
        await until(lambda: (m := n0.swim.member("n1")) is not None
                    and m.state is MemberState.LEFT, "n0 to see n1 leave")


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


async def test_a_start_that_fails_late_leaves_no_port_open(fleet) -> None:
    layout, (n0, _) = fleet
    agent = Agent(load_agent_config(layout.config_path("n0")))

    def broken() -> None:
        raise RuntimeError("status could not be built")

    agent.publish_status = broken  # type: ignore[method-assign]  # runs after the server is up
    with pytest.raises(RuntimeError, match="status could not be built"):
        await agent.start()
    assert agent.state is AgentState.STOPPED
    assert not listening(n0.address)


async def test_a_leave_step_that_fails_still_stops_the_server(fleet) -> None:
    layout, (n0, _) = fleet
    agent = Agent(load_agent_config(layout.config_path("n0")))
    await agent.start()
    assert listening(n0.address)

    async def broken(delay: float) -> None:
        raise RuntimeError("core raised while leaving")

    agent.loop.leave = broken  # type: ignore[method-assign]
    await agent.shutdown()
    assert agent.state is AgentState.STOPPED
    assert not listening(n0.address)


async def test_a_shutdown_while_starting_waits_and_then_leaves(fleet) -> None:
    layout, (n0, _) = fleet
    agent = Agent(load_agent_config(layout.config_path("n0")))
    starting = asyncio.get_running_loop().create_task(agent.start())
    await asyncio.sleep(0)  # start() has begun and is awaiting the server
    assert agent.state is AgentState.STARTING
    await agent.shutdown()
    await starting
    assert agent.state is AgentState.STOPPED
    assert not listening(n0.address)
