"""Builders shared by the balancing tests."""

from __future__ import annotations

from skyfleet.balancing import PeerLoad


def peer(name: str, cloud: str = "aws", **kw: object) -> PeerLoad:
    region = kw.pop("region", f"{cloud}-r1")
    zone = kw.pop("zone", f"{cloud}-z0")
    return PeerLoad(name=name, cloud=cloud, region=region, zone=zone, **kw)  # type: ignore[arg-type]


def fleet(per_cloud: int = 3, **kw: object) -> list[PeerLoad]:
    """`per_cloud` peers in each of aws, azure, gcp, one zone each."""
    return [
        peer(f"{c}-{i}", c, zone=f"{c}-z{i}", **kw)
        for c in ("aws", "azure", "gcp")
        for i in range(per_cloud)
    ]
