"""The router's view of its peers (`skyfleet.tasks.peer_views`): which members are
candidates, how a status is dated, and which of our own sends it does not include."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skyfleet.membership.members import MemberView
from skyfleet.membership.messages import MemberState, NodeMeta, NodeStatus, StatusReport
from skyfleet.tasks.peer_views import PeerViews

LOAD = StatusReport(inflight=2, queued=1, capacity=4, latency_ms=250.0)


def member(name: str, state: MemberState = MemberState.ALIVE) -> MemberView:
    return MemberView(NodeMeta(name, f"sim://{name}", cloud="aws", zone="z1"), state, 0, 0.0)


def status(
    name: str, measured_at: float, report: StatusReport = LOAD, seq: int = 1
) -> NodeStatus:
    return NodeStatus(name, 0, seq, report, measured_at=measured_at)


@pytest.mark.parametrize(
    ("sends", "measured_at", "counted"),
    [
        ((), 10.0, 0),
        ((8.0, 9.0), 10.0, 0),  # in the report: the peer had them when it measured
        ((8.0, 10.0, 11.0), 10.0, 2),  # one at the very moment it measured is not in it
        ((11.0, 12.0, 13.0), 10.0, 3),
        # A status that spent long in gossip: measured at 10, arrived after every send.
        ((10.5, 11.0, 11.5, 12.0), 10.0, 4),
    ],
)
def test_sends_since_the_measurement_are_counted(
    sends: tuple[float, ...], measured_at: float, counted: int
) -> None:
    views = PeerViews("me")
    for at in sends:
        views.sent("p", at)
    peers = {"p": (status("p", measured_at), 12.5)}  # arrival time plays no part
    (view,) = views.views([member("p")], peers, LOAD, now=13.0)[:1]
    assert view.sent_since_status == counted
    assert view.status_at == measured_at
    assert view.load == 3 + counted


def test_a_newer_status_forgets_the_sends_it_covers_and_keeps_the_rest() -> None:
    views = PeerViews("me")
    for at in (1.0, 2.0, 3.0, 4.0):
        views.sent("p", at)
    assert views.since("p", 2.5) == 2
    assert views.since("p", 0.0) == 2  # the older sends were forgotten for good
    assert views.since("p", 4.0) == 1
    assert views.since("q", 0.0) == 0


def test_a_send_that_came_back_is_on_the_peer_no_more() -> None:
    """A quiet fleet re-sends an unchanged status only every 30 s: fifty short tasks
    sent and answered since must not look like fifty queued."""
    views = PeerViews("me")
    tokens = [views.sent("p", 10.0 + i) for i in range(50)]
    running = views.sent("p", 70.0)
    for token in tokens:
        views.returned("p", token)
    assert views.since("p", 5.0) == 1
    views.returned("p", running)
    views.returned("p", running)  # twice, or after a newer status covered it: harmless
    assert views.since("p", 5.0) == 0


def test_candidates_are_the_members_up_with_an_executor_advertised() -> None:
    views = PeerViews("me")
    members = [
        member("me"),
        member("alive"),
        member("suspect", MemberState.SUSPECT),
        member("dead", MemberState.DEAD),
        member("left", MemberState.LEFT),
        member("silent"),
        member("no-executor"),
    ]
    statuses = {
        name: (status(name, 5.0), 5.0) for name in ("alive", "suspect", "dead", "left")
    }
    statuses["no-executor"] = (status("no-executor", 5.0, StatusReport(capacity=0)), 5.0)
    statuses["me"] = (status("me", 1.0, StatusReport(capacity=9)), 1.0)
    own = StatusReport(inflight=1, capacity=2, latency_ms=100.0)
    got = {v.name: v for v in views.views(members, statuses, own, now=7.0)}
    assert sorted(got) == ["alive", "me", "suspect"]
    # Ourselves from the executor's report at this instant, not from our own gossip.
    assert (got["me"].capacity, got["me"].inflight, got["me"].status_at) == (2, 1, 7.0)
    assert got["me"].latency_ewma == pytest.approx(0.1)
    assert got["alive"].healthy and not got["suspect"].healthy
    assert (got["alive"].cloud, got["alive"].zone, got["alive"].capacity) == ("aws", "z1", 4)


def test_each_view_carries_the_handlers_its_status_lists_and_none_means_every_handler() -> None:
    views = PeerViews("me")
    members = [member("me"), member("gpu"), member("old")]
    statuses = {
        "gpu": (status("gpu", 5.0, replace(LOAD, handlers=("echo", "gpu"))), 5.0),
        "old": (status("old", 5.0, LOAD), 5.0),  # an agent from before the list
    }
    own = replace(LOAD, handlers=("echo",))
    got = {v.name: v for v in views.views(members, statuses, own, now=7.0)}
    assert got["gpu"].handlers == frozenset({"echo", "gpu"})
    assert got["me"].handlers == frozenset({"echo"})
    assert got["old"].handlers is None
    assert [n for n, v in got.items() if v.serves("gpu")] == ["gpu", "old"]


def test_we_are_no_candidate_when_our_executor_serves_nothing() -> None:
    views = PeerViews("me")
    own = StatusReport(capacity=0)  # what `Executor.report` says with no handler
    assert views.views([member("me")], {}, own, now=1.0) == []


def test_the_advertisers_of_a_handler_are_members_in_any_state_by_their_last_status() -> None:
    views = PeerViews("me")
    members = [
        member("me"),
        member("dead", MemberState.DEAD),
        member("left", MemberState.LEFT),
        member("cpu-only"),
        member("no-executor"),
        member("silent"),
    ]
    gpu = replace(LOAD, handlers=("gpu",))
    statuses = {
        "dead": (status("dead", 5.0, gpu), 5.0),
        "left": (status("left", 5.0, LOAD), 5.0),  # before the list: every handler
        "cpu-only": (status("cpu-only", 5.0, replace(LOAD, handlers=("cpu",))), 5.0),
        "no-executor": (status("no-executor", 5.0, StatusReport(handlers=("gpu",))), 5.0),
        "me": (status("me", 1.0, gpu), 1.0),  # our own gossip is not asked: `own` is
    }
    own = replace(LOAD, handlers=("cpu",))
    assert views.advertisers("gpu", members, statuses, own) == ["dead", "left"]
    assert views.advertisers("cpu", members, statuses, own) == ["me", "left", "cpu-only"]
    assert views.advertisers("nope", members, statuses, own) == ["left"]
    # Up and never heard of: "silent" (the dead and the left are not up; we know ourselves).
    assert views.unheard(members, statuses) == ["silent"]
