"""The agent's policy keeper wired to in-memory parts only: membership cores on the
simulator's virtual network, pulls through the in-memory side of the fetch seam. A newer
advert is pulled, verified, adopted and persisted; a holder that cannot be reached is not
adopted from, and is tried again once its skip window has passed."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from policy_keys import fixed_key

from skyfleet.config.membership import MembershipConfig
from skyfleet.config.policy_sync import PolicySyncTimings
from skyfleet.membership.messages import StatusReport
from skyfleet.policy.adoption import PolicyAdopter
from skyfleet.policy.model import PolicyDocument
from skyfleet.policy.signing import sign_policy
from skyfleet.policy.store import PolicyStore
from skyfleet.policy.sync import PolicySync
from skyfleet.sim.cluster import SimCluster
from skyfleet.transport.policy_fetch import LocalPolicyFetch
from skyfleet.transport.policy_loop import PolicyKeeper
from tests.runtime.joined_agents import until

KEY = fixed_key(7)
TIMINGS = PolicySyncTimings(poll_interval=0.02, fetch_timeout=1.0, retry_after=5.0)


def envelope(version: int) -> dict:
    return sign_policy(PolicyDocument(version=version).to_dict(), KEY.private)


class Counting(LocalPolicyFetch):
    """The in-memory fetch, counting the pulls it was asked for."""

    asked = 0

    async def __call__(self, node: str, address: str, version: int,
                       timeout: float) -> bytes | None:
        self.asked += 1
        return await super().__call__(node, address, version, timeout)


def fleet(
    tmp_path: Path, *, reachable: bool
) -> tuple[SimCluster, dict[str, PolicyKeeper], Counting]:
    cluster = SimCluster(MembershipConfig(), seed=5)
    cluster.add_node("n0")
    cluster.add_node("n1", seeds=(cluster.address("n0"),))
    cluster.run_for(3.0)
    keepers: dict[str, PolicyKeeper] = {}
    served = {"n0": lambda: keepers["n0"].current_envelope()} if reachable else {}
    fetch = Counting(served)
    for name in ("n0", "n1"):
        keepers[name] = PolicyKeeper(
            adopter=PolicyAdopter(trusted_keys=[KEY.public], current=envelope(1)),
            store=PolicyStore(tmp_path / name),
            swim=cluster.nodes[name].swim,
            fetch=fetch,
            sync=PolicySync(random.Random(1), retry_after=TIMINGS.retry_after,
                            fetch_timeout=TIMINGS.fetch_timeout),
            clock=lambda: cluster.now,
            source=None,
            on_change=lambda: None,
            timings=TIMINGS,
        )
    assert keepers["n0"].offer(envelope(2), "admin").adopted
    report = StatusReport(policy_version=2, policy_hash=keepers["n0"].hash)
    cluster.emit("n0", cluster.nodes["n0"].swim.publish_status(report, cluster.now))
    cluster.run_for(3.0)  # n1 now holds n0's advert of v2
    return cluster, keepers, fetch


async def test_a_newer_advert_is_pulled_verified_adopted_and_persisted(tmp_path: Path) -> None:
    _, keepers, _ = fleet(tmp_path, reachable=True)
    n1 = keepers["n1"]
    running = asyncio.get_running_loop().create_task(n1.run())
    try:
        await until(lambda: n1.version == 2, "n1 to adopt v2 from n0", timeout=5.0)
    finally:
        running.cancel()
        await asyncio.wait([running])
    assert n1.hash == keepers["n0"].hash
    stored = PolicyStore(tmp_path / "n1").load([KEY.public])
    assert stored.envelope is not None and stored.envelope["document"]["version"] == 2


async def test_an_unreachable_holder_is_not_adopted_from(tmp_path: Path) -> None:
    cluster, keepers, fetch = fleet(tmp_path, reachable=False)
    n1 = keepers["n1"]
    running = asyncio.get_running_loop().create_task(n1.run())
    try:
        await until(lambda: fetch.asked == 1, "n1 to try pulling v2 from n0", timeout=5.0)
        cluster.run_for(TIMINGS.retry_after + 1.0)  # virtual time: past the skip window
        await until(lambda: fetch.asked == 2, "n1 to try n0 again", timeout=5.0)
        assert not running.done()  # a failed pull is not the keeper's failure
    finally:
        running.cancel()
        await asyncio.wait([running])
    assert n1.version == 1
