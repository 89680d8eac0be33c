"""Outlier ejection of failing peers, and of failing clouds, from this node's picks.

Envoy's consecutive-failure detector, per picking node (each node judges by what it sees
itself, so a peer unreachable from one cloud only is avoided there only):

- `consecutive_failures` failed attempts in a row on one peer eject it for
  base_ejection x (times ejected), capped at `MAX_EJECTION_MULTIPLIER` x base; each
  `interval_seconds` a returned peer stays clean takes one off its count.
- The same count kept per *cloud* (failures on any of its peers, reset by a success on
  any) ejects the whole cloud. A dead cloud is thus left after its first few failures,
  long before membership (seconds) or status gossip notice.
- Unreachable (refused connection, no route: the peer never saw the task) is stronger
  evidence than a failed task (Envoy's split of local-origin errors): it ejects the peer
  at once, and `UNREACHABLE_HOSTS_FOR_CLOUD` distinct unreachable peers of one cloud in a
  row eject the cloud. With many nodes each sending a share of its traffic to the dead
  cloud, waiting for five failures per node would keep sending there for seconds.
- No ejection may take the ejected share of known peers above `max_ejection_percent`.
  The policy default is 100 % so a whole cloud can go; the `Balancer`'s panic threshold
  is what stops the fleet from ejecting itself empty.

Ejection is applied when a failure is recorded; expiry is read lazily from the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from skyfleet.policy.model import OutlierDetection

MAX_EJECTION_MULTIPLIER = 10
"""Envoy's max_ejection_time default (300 s) is 10 x its base ejection time (30 s)."""


UNREACHABLE_HOSTS_FOR_CLOUD = 2
"""Distinct peers of one cloud found unreachable, with no success there in between, that
eject the whole cloud. One could be a single dead host; two is a pattern."""


def ejection_seconds(base_seconds: float, times_ejected: int) -> float:
    """How long the `times_ejected`-th ejection in a row lasts: base x times, capped."""
    return base_seconds * min(max(1, times_ejected), MAX_EJECTION_MULTIPLIER)


@dataclass(slots=True)
class _Record:
    cloud: str
    consecutive: int = 0
    times_ejected: int = 0
    ejected_until: float = float("-inf")
    unreachable: set[str] = field(default_factory=set)
    """Peers found unreachable since the last success (kept for clouds only)."""


class OutlierDetector:
    def __init__(self, config: OutlierDetection) -> None:
        self._config = config
        self._peers: dict[str, _Record] = {}
        self._clouds: dict[str, _Record] = {}
        self._any_until = float("-inf")
        """Latest end of any ejection: past it nothing is ejected (the common fast path)."""

    def reconfigure(self, config: OutlierDetection) -> None:
        """Adopt a new policy's settings; ejections in force stay until they expire."""
        self._config = config

    def is_ejected(self, peer: str, cloud: str, now: float) -> bool:
        if now >= self._any_until:
            return False
        p = self._peers.get(peer)
        c = self._clouds.get(cloud)
        return (p is not None and now < p.ejected_until) or (
            c is not None and now < c.ejected_until
        )

    def ejected_clouds(self, now: float) -> list[str]:
        return sorted(c for c, r in self._clouds.items() if now < r.ejected_until)

    def ejected_peers(self, now: float) -> list[str]:
        return sorted(p for p, r in self._peers.items() if now < r.ejected_until)

    def record(
        self,
        peer: str,
        cloud: str,
        ok: bool,
        now: float,
        fleet: Mapping[str, int],
        *,
        unreachable: bool = False,
    ) -> None:
        """Count the outcome of one attempt on `peer`; `fleet` maps every cloud to the
        number of peers known in it (for the max-ejection cap). `unreachable`: the attempt
        never reached the peer (refused, no route, stream broken by its death)."""
        p = self._peers.setdefault(peer, _Record(cloud))
        c = self._clouds.setdefault(cloud, _Record(cloud))
        if ok:
            p.consecutive = c.consecutive = 0
            c.unreachable.clear()
            return
        if not self._config.enabled:
            return
        threshold = self._config.consecutive_failures
        p.consecutive = threshold if unreachable else p.consecutive + 1
        c.consecutive += 1
        if unreachable:
            c.unreachable.add(peer)
        cloud_down = len(c.unreachable) >= UNREACHABLE_HOSTS_FOR_CLOUD
        if (c.consecutive >= threshold or cloud_down) and now >= c.ejected_until:
            if self._allowed(fleet, extra_cloud=cloud, now=now):
                self._eject(c, now)
        if p.consecutive >= threshold and not self.is_ejected(peer, cloud, now):
            if self._allowed(fleet, extra_peers=1, now=now):
                self._eject(p, now)

    def _eject(self, r: _Record, now: float) -> None:
        clean = now - r.ejected_until
        if r.times_ejected and clean > 0:
            r.times_ejected = max(0, r.times_ejected - int(clean // self._config.interval_seconds))
        r.times_ejected += 1
        r.ejected_until = now + ejection_seconds(
            self._config.base_ejection_seconds, r.times_ejected
        )
        r.consecutive = 0
        r.unreachable.clear()
        self._any_until = max(self._any_until, r.ejected_until)

    def _allowed(
        self, fleet: Mapping[str, int], *, now: float, extra_peers: int = 0, extra_cloud: str = ""
    ) -> bool:
        """Would the ejected share stay within max_ejection_percent after this ejection?"""
        total = sum(fleet.values())
        if total == 0:
            return False
        out_clouds = set(self.ejected_clouds(now)) | ({extra_cloud} if extra_cloud else set())
        lone = sum(
            1 for r in self._peers.values() if now < r.ejected_until and r.cloud not in out_clouds
        )
        ejected = sum(fleet.get(c, 0) for c in out_clouds) + lone + extra_peers
        return 100.0 * ejected / total <= self._config.max_ejection_percent
