"""The failover rule as one table: each way an attempt ends, what the flight does next
and what the balancer is told. The router and the task simulator both run this core."""

from __future__ import annotations

import random

import pytest

from skyfleet.balancing import Balancer, Locale, PeerLoad
from skyfleet.balancing.affinity import HashRing
from skyfleet.policy.model import PolicyDocument, Sessions, parse_policy
from skyfleet.tasks.errors import Refusal
from skyfleet.tasks.flight import Cut, Done, Failed, Refused, Retry, Send, TaskFlight
from skyfleet.tasks.verdict import AttemptResult, Verdict


def fleet() -> list[PeerLoad]:
    """Three idle peers in each of three clouds."""
    return [
        PeerLoad(name=f"{c}-{i}", cloud=c, region=f"{c}-r1", zone=f"{c}-z{i}", capacity=4)
        for c in ("aws", "azure", "gcp")
        for i in range(3)
    ]


def balancer(*, budget_min: int = 10, max_attempts: int = 3, timeout: float = 5.0) -> Balancer:
    doc = PolicyDocument(version=1).to_dict()
    doc["failover"]["retry_budget"] = {"percent": 0, "min_concurrent": budget_min}
    doc["failover"]["max_attempts"] = max_attempts
    doc["failover"]["per_attempt_timeout_seconds"] = timeout
    return Balancer(local=Locale(cloud="aws"), policy=parse_policy(doc), rng=random.Random(7))


def send(flight: TaskFlight, now: float = 0.0) -> Send:
    step = flight.next(fleet(), now)
    assert isinstance(step, Send), step
    return step


REFUSED = AttemptResult(Verdict.UNREACHABLE, error="connection refused")
TIMED_OUT = AttemptResult(Verdict.UNREACHABLE, error="timed out", timed_out=True)

# verdict -> (what the flight returns, peer ejected at once, cloud avoided next)
TABLE = [
    (AttemptResult(Verdict.OK, b"out"), Done, False, False),
    (AttemptResult(Verdict.CLIENT, error="bad payload"), Refused, False, False),
    (AttemptResult(Verdict.DEADLINE, error="late"), Refused, False, False),
    (AttemptResult(Verdict.FULL, error="full"), Retry, False, False),
    (AttemptResult(Verdict.FAILED, error="boom"), Retry, False, False),
    (REFUSED, Retry, True, True),
    (TIMED_OUT, Retry, False, True),
]


@pytest.mark.parametrize(("result", "step", "ejected", "avoided"), TABLE,
                         ids=[f"{r.verdict.value}{'-timeout' * r.timed_out}" for r, *_ in TABLE])
def test_each_verdict_leads_to_its_row(result, step, ejected, avoided):
    b = balancer()
    flight = TaskFlight(b, "t")
    first = send(flight)
    end = flight.settle(first, result, now=1.0)
    assert type(end) is step
    peer = first.choice.peer
    assert b.outliers.is_ejected(peer.name, peer.cloud, 1.0) is ejected
    assert b.retry_budget.active == 0  # every attempt closed, whatever its verdict
    if step is Retry:
        retry = send(flight, 1.0)
        assert retry.retry and retry.choice.peer.name != peer.name
        if avoided:
            assert retry.choice.peer.cloud != peer.cloud and retry.failover


BAD_ENDS = [(r, ejected) for r, _, ejected, _ in TABLE if r.verdict is not Verdict.OK]


@pytest.mark.parametrize(("result", "ejected"), BAD_ENDS,
                         ids=[f"{r.verdict.value}{'-timeout' * r.timed_out}" for r, _ in BAD_ENDS])
def test_after_delivered_output_every_bad_end_is_a_cut_never_a_retry(result, ejected):
    """A stream whose chunks reached the caller is not run again, whatever ended it: a
    second run would repeat that output. The peer is still judged by the verdict."""
    b = balancer()
    flight = TaskFlight(b, "t")
    first = send(flight)
    end = flight.settle(first, result, now=1.0, delivered=True)
    assert isinstance(end, Cut)
    assert (end.verdict, end.peer, end.attempts) == (result.verdict, first.choice.peer.name, 1)
    assert end.error == f"{first.choice.peer.name}: {result.error}"
    assert b.retry_budget.active == 0
    peer = first.choice.peer
    assert b.outliers.is_ejected(peer.name, peer.cloud, 1.0) is ejected


def test_a_delivered_stream_that_ends_well_is_done():
    flight = TaskFlight(balancer(), "t")
    first = send(flight)
    end = flight.settle(first, AttemptResult(Verdict.OK), now=1.0, delivered=True)
    assert isinstance(end, Done) and end.attempts == 1


def test_a_retry_after_a_timeout_is_charged_to_the_retry_budget():
    b = balancer(budget_min=1)
    flight = TaskFlight(b, "t")
    first = send(flight)
    assert isinstance(flight.settle(first, TIMED_OUT, 1.0), Retry)
    hog = TaskFlight(b, "other")
    held = send(hog)  # a first attempt: not budgeted
    hog_retry = hog.settle(held, AttemptResult(Verdict.FAILED, error="x"), 1.0)
    assert isinstance(hog_retry, Retry)
    holding = send(hog, 1.0)  # the budget's one retry slot, now in use
    assert holding.choice.budgeted
    step = flight.next(fleet(), 1.0)
    assert isinstance(step, Failed) and "retry budget spent" in step.error


def test_a_retry_after_a_refused_connection_is_free_and_leaves_the_cloud():
    b = balancer(budget_min=1)
    hog = TaskFlight(b, "other")
    held = send(hog)
    assert isinstance(hog.settle(held, AttemptResult(Verdict.FAILED, error="x"), 0.0), Retry)
    assert send(hog).choice.budgeted  # the only retry slot is taken
    flight = TaskFlight(b, "t")
    first = send(flight)
    assert isinstance(flight.settle(first, REFUSED, 1.0), Retry)
    second = send(flight, 1.0)
    assert not second.choice.budgeted and second.retry and second.failover
    assert second.choice.peer.cloud != first.choice.peer.cloud


def test_retries_never_return_to_a_peer_and_stop_at_max_attempts():
    flight = TaskFlight(balancer(max_attempts=3), "t")
    peers = []
    for n in range(3):
        step = send(flight, float(n))
        peers.append(step.choice.peer.name)
        assert isinstance(flight.settle(step, AttemptResult(Verdict.FAILED, error="e"), n), Retry)
    assert len(set(peers)) == 3
    end = flight.next(fleet(), 3.0)
    assert isinstance(end, Failed) and end.attempts == 3
    assert end.error.startswith(f"{peers[-1]}: e; ") and "max_attempts" in end.error


def test_no_peer_for_the_first_attempt_is_unavailable():
    end = TaskFlight(balancer(), "t", clouds=("nowhere",)).next(fleet(), 0.0)
    assert isinstance(end, Refused) and end.why is Refusal.UNAVAILABLE


def test_every_peer_full_is_exhausted_not_failed():
    flight = TaskFlight(balancer(max_attempts=2), "t")
    for n in range(2):
        step = send(flight)
        assert isinstance(flight.settle(step, AttemptResult(Verdict.FULL, error="full"), n), Retry)
    end = flight.next(fleet(), 2.0)
    assert isinstance(end, Refused) and end.why is Refusal.EXHAUSTED


def test_the_deadline_refuses_before_an_attempt_and_bounds_its_timeout():
    flight = TaskFlight(balancer(timeout=5.0), "t", deadline=10.0)
    early = send(flight, 0.0)
    assert early.timeout == 5.0 and not early.timeout_is_deadline
    assert isinstance(flight.settle(early, TIMED_OUT, 5.0), Retry)
    late = send(flight, 8.0)
    assert late.timeout == 2.0 and late.timeout_is_deadline
    assert isinstance(flight.settle(late, AttemptResult(Verdict.FAILED, error="e"), 9.0), Retry)
    end = flight.next(fleet(), 10.0)
    assert isinstance(end, Refused) and end.why is Refusal.DEADLINE
    assert "after 2 attempt(s)" in end.detail


def test_an_abandoned_attempt_frees_its_slot_and_blames_nobody():
    b = balancer()
    flight = TaskFlight(b, "t")
    step = send(flight)
    flight.abandon(step)
    assert b.retry_budget.active == 0
    assert not b.outliers.is_ejected(step.choice.peer.name, step.choice.peer.cloud, 0.0)


def test_a_session_goes_to_its_peer_and_fails_over_along_its_ring():
    doc = PolicyDocument(version=1, sessions=Sessions(affinity="bounded_hash"))
    b = Balancer(local=Locale(cloud="aws"), policy=doc, rng=random.Random(7))
    home = {p.name: p.capacity for p in fleet() if p.cloud == "aws"}  # locality keeps to aws
    order = list(HashRing(home, Sessions().virtual_nodes).walk("user-1"))
    flight = TaskFlight(b, "t", session="user-1")
    for n, expected in enumerate(order):
        step = send(flight, float(n))
        assert step.choice.peer.name == expected
        assert isinstance(flight.settle(step, AttemptResult(Verdict.FAILED, error="e"), n), Retry)


def gpu_fleet() -> list[PeerLoad]:
    """The live peers: each serves only echo."""
    return [
        PeerLoad(name=f"aws-{i}", cloud="aws", capacity=4, handlers=frozenset({"echo"}))
        for i in range(3)
    ]


@pytest.mark.parametrize(
    ("advertised", "why", "detail"),
    [
        # Advertised by members now down: the fleet has it, not now.
        (("gcp-0", "gcp-1"), Refusal.UNAVAILABLE,
         "handler 'gpu': no live agent serves it (last served by gcp-0, gcp-1)"),
        # Nobody ever advertised it: a typo or a handler not deployed.
        ((), Refusal.INVALID, "handler 'gpu': served by no agent of the fleet"),
    ],
)
def test_a_handler_no_live_peer_serves_is_told_apart_by_who_served_it(
    advertised: tuple[str, ...], why: Refusal, detail: str
) -> None:
    asked: list[str] = []

    def advertisers(handler: str) -> tuple[str, ...]:
        asked.append(handler)
        return advertised

    flight = TaskFlight(balancer(), "train", handler="gpu", advertisers=advertisers)
    assert flight.next(gpu_fleet(), 0.0) == Refused(why, detail)
    assert asked == ["gpu"]


def test_a_handler_unknown_while_some_statuses_have_not_come_is_unavailable() -> None:
    """A router that just joined knows few statuses: the handler may be among the missing
    ones, so a retry (not a fix of the task) is what the caller should do."""
    flight = TaskFlight(balancer(), "t", handler="gpu", advertisers=lambda h: (),
                        unheard=lambda: ("new-1", "new-2"))
    assert flight.next(gpu_fleet(), 0.0) == Refused(
        Refusal.UNAVAILABLE,
        "handler 'gpu': no agent known to serve it yet (no status so far from new-1, new-2)")
    heard = TaskFlight(balancer(), "t", handler="gpu", advertisers=lambda h: ("gcp-0",),
                       unheard=lambda: ("new-1",))
    assert heard.next(gpu_fleet(), 0.0).why is Refusal.UNAVAILABLE  # type: ignore[union-attr]
    assert "last served by gcp-0" in heard.next(gpu_fleet(), 0.0).detail  # type: ignore[union-attr]


def test_the_fleet_history_is_asked_only_when_no_live_peer_serves_the_handler() -> None:
    def advertisers(handler: str) -> tuple[str, ...]:
        raise AssertionError("asked although a live peer serves it")

    flight = TaskFlight(balancer(), "t", handler="echo", advertisers=advertisers)
    assert isinstance(flight.next(gpu_fleet(), 0.0), Send)
    excluded = TaskFlight(balancer(), "t", handler="echo", advertisers=advertisers,
                          clouds=("gcp",))
    end = excluded.next(gpu_fleet(), 0.0)
    assert isinstance(end, Refused) and end.why is Refusal.UNAVAILABLE
    assert end.detail.endswith("task allows clouds gcp, regions any")


def test_a_retry_whose_handler_lost_its_servers_fails_with_the_last_error() -> None:
    """The first attempt ran, so the handler is no mistake of the caller's."""
    flight = TaskFlight(balancer(), "t", handler="gpu", advertisers=lambda h: ("gcp-0",))
    serving = [PeerLoad(name="gcp-0", cloud="gcp", capacity=4, handlers=frozenset({"gpu"}))]
    step = flight.next(serving, 0.0)
    assert isinstance(step, Send)
    assert isinstance(flight.settle(step, AttemptResult(Verdict.FAILED, error="boom"), 1.0), Retry)
    end = flight.next(gpu_fleet(), 2.0)  # gcp-0 is gone from view
    assert end == Failed("gcp-0: boom; task 't': no live peer serves handler 'gpu'", 1)
