"""Two network namespaces for one boot: the guest (the cloud host, at its planned private
address) and the fleet side (real agents at their planned addresses, the metadata
service at 169.254.169.254, the stores), joined by one veth as a cloud's subnet router
would join them. Nothing is added to the root namespace, so the machine's own network
is never touched and a leftover is only two namespaces, removed by name.
"""

from __future__ import annotations

import secrets
import subprocess
from ipaddress import IPv4Address, IPv4Network

METADATA = IPv4Address("169.254.169.254")
STORE = IPv4Address("198.18.0.10")
"""Where the stores' hostnames point in the guest's /etc/hosts (a benchmarking range that
no real service uses)."""


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")


class BootNetwork:
    def __init__(self, guest: IPv4Address, subnet: IPv4Network,
                 fleet: list[IPv4Address]) -> None:
        tag = secrets.token_hex(3)
        self.guest_ns, self.fleet_ns = f"sfboot-g-{tag}", f"sfboot-f-{tag}"
        self.gateway = next(a for a in subnet.hosts() if a != guest)
        _ip("netns", "add", self.guest_ns)
        try:
            _ip("netns", "add", self.fleet_ns)
            _ip("link", "add", "sfb-g", "netns", self.guest_ns, "type", "veth", "peer",
                "name", "sfb-f", "netns", self.fleet_ns)
            g, f = ["-n", self.guest_ns], ["-n", self.fleet_ns]
            _ip(*g, "link", "set", "sfb-g", "name", "eth0")
            _ip(*g, "addr", "add", f"{guest}/{subnet.prefixlen}", "dev", "eth0")
            for args in (g, f):
                _ip(*args, "link", "set", "lo", "up")
            _ip(*g, "link", "set", "eth0", "up")
            _ip(*g, "route", "add", "default", "via", str(self.gateway))
            _ip(*f, "addr", "add", f"{self.gateway}/{subnet.prefixlen}", "dev", "sfb-f")
            for address in {METADATA, STORE, *fleet} - {self.gateway}:
                _ip(*f, "addr", "add", f"{address}/32", "dev", "sfb-f")
            _ip(*f, "link", "set", "sfb-f", "up")
        except BaseException:
            self.close()
            raise

    def in_fleet(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.fleet_ns, *argv]

    def close(self) -> None:
        for ns in (self.guest_ns, self.fleet_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
