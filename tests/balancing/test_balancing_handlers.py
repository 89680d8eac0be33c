"""The task's handler is a constraint like the others: a peer that does not serve it is
never chosen, not in panic either; a peer that lists no handlers (an agent from before
the list) serves every one; when nobody in view serves it, the reason says so."""

from __future__ import annotations

import random

import pytest
from balancing_helpers import peer

from skyfleet.balancing import Balancer, Choice, Locale, NoEligiblePeer, PeerLoad, TaskRequest
from skyfleet.balancing.balancer import NoPeerReason, name_list
from skyfleet.policy.model import Locality, PolicyDocument

GPU = frozenset({"echo", "gpu"})
ECHO = frozenset({"echo"})


def balancer() -> Balancer:
    policy = PolicyDocument(version=1, locality=Locality(prefer="none"))
    return Balancer(local=Locale(cloud="aws"), policy=policy, rng=random.Random(5))


def chosen(peers: list[PeerLoad], task: TaskRequest, n: int = 200) -> set[str]:
    b, names = balancer(), set()
    for _ in range(n):
        choice = b.choose(task, peers, 0.0)
        assert isinstance(choice, Choice), choice
        b.record(choice, ok=True, now=0.0)
        names.add(choice.peer.name)
    return names


@pytest.mark.parametrize(
    ("peers", "handler", "expected"),
    [
        # Only the peers that serve it.
        ([peer("cpu", handlers=ECHO), peer("gpu", handlers=GPU)], "gpu", {"gpu"}),
        ([peer("cpu", handlers=ECHO), peer("gpu", handlers=GPU)], "echo", {"cpu", "gpu"}),
        # An agent from before the list (None) is sent anything, as before.
        ([peer("cpu", handlers=ECHO), peer("old")], "gpu", {"old"}),
        ([peer("old-1"), peer("old-2")], "anything", {"old-1", "old-2"}),
        # The idle peer lacking the handler loses to the busy one that has it.
        ([peer("idle", handlers=ECHO), peer("busy", handlers=GPU, inflight=90)], "gpu", {"busy"}),
        # A request naming no handler places by kind alone.
        ([peer("cpu", handlers=ECHO), peer("gpu", handlers=GPU)], "", {"cpu", "gpu"}),
    ],
)
def test_only_peers_serving_the_handler_are_chosen(
    peers: list[PeerLoad], handler: str, expected: set[str]
) -> None:
    assert chosen(peers, TaskRequest(kind="k", handler=handler)) == expected


def test_panic_never_relaxes_the_handler() -> None:
    """Both gpu peers suspect: the balancer panics among them rather than sending the
    task to the healthy peers that cannot run it."""
    peers = [
        peer("cpu-0", handlers=ECHO),
        peer("cpu-1", handlers=ECHO),
        peer("gpu-0", handlers=GPU, healthy=False),
        peer("gpu-1", handlers=GPU, healthy=False),
    ]
    task = TaskRequest(kind="k", handler="gpu")
    assert chosen(peers, task) == {"gpu-0", "gpu-1"}
    first = balancer().choose(task, peers, 0.0)
    assert isinstance(first, Choice) and first.panic


def test_no_peer_serving_the_handler_is_its_own_reason_naming_it() -> None:
    peers = [peer("cpu-0", handlers=ECHO), peer("cpu-1", "gcp", handlers=ECHO)]
    got = balancer().choose(TaskRequest(kind="train", handler="gpu"), peers, 0.0)
    assert got == NoEligiblePeer(
        NoPeerReason.HANDLER, "task 'train': no live peer serves handler 'gpu'"
    )


def test_servers_excluded_by_other_constraints_are_named_with_them() -> None:
    peers = [peer("cpu-0", handlers=ECHO), peer("gpu-0", "gcp", handlers=GPU)]
    task = TaskRequest(kind="train", handler="gpu", allowed_clouds=("aws",))
    got = balancer().choose(task, peers, 0.0)
    assert isinstance(got, NoEligiblePeer) and got.reason is NoPeerReason.CONSTRAINTS
    assert "handler 'gpu' served by gpu-0 only" in got.detail
    assert "task allows clouds aws" in got.detail


def test_a_long_list_of_names_shows_the_first_few() -> None:
    assert name_list(["a", "b"]) == "a, b"
    assert name_list([f"n{i}" for i in range(8)]) == "n0, n1, n2, n3, n4 and 3 more"
