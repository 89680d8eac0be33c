"""Loopback byte accounting with an iptables chain: what the agents send each other.

Every agent owns one listening port (Serf: UDP + TCP gossip; Skyfleet: gRPC over TCP).
A packet between two agents either leaves a listening port (UDP gossip, TCP replies) or
goes to one from a client's ephemeral port (TCP requests: Serf push-pull, every gRPC
call). The chain therefore holds, in this order:

    -p udp|tcp --sport PORT -j RETURN     for every agent port
    -p udp|tcp --dport PORT -j RETURN     for every agent port

and the first matching rule counts the packet, so each packet is counted exactly once.
The sum of the counters is everything the cluster sent on `lo` (IP headers included, as a
network would carry them); divided by N and the window it is bytes per node per second.

The chain hangs off OUTPUT with `-o lo`, so no other interface is ever touched. It is
removed on exit; a chain left behind by a bench that was SIGKILLed is removed on the next
start.
"""

from __future__ import annotations

import subprocess

CHAIN = "SKYFLEET_BENCH_MEMB"
"""Name of our accounting chain; nothing else should use it."""

_JUMP = ["OUTPUT", "-o", "lo", "-j", CHAIN]


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # -w: wait for the xtables lock instead of failing when another tool holds it.
    return subprocess.run(
        ["iptables", "-w", "5", *args], capture_output=True, text=True, check=check
    )


class LoopbackByteCounter:
    """Context manager owning the accounting chain for one bench invocation."""

    def __enter__(self) -> LoopbackByteCounter:
        self.remove()  # a leftover from a bench that could not clean up
        _iptables("-N", CHAIN)
        _iptables("-I", *_JUMP[:1], "1", *_JUMP[1:])
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def watch(self, ports: list[int]) -> None:
        """Replace the rules with ones for these agent ports, counters at zero."""
        lines = ["*filter", f":{CHAIN} - [0:0]"]  # with --noflush: flushes only our chain
        for match in ("--sport", "--dport"):
            for port in ports:
                for proto in ("udp", "tcp"):
                    lines.append(f"-A {CHAIN} -p {proto} {match} {port} -j RETURN")
        lines.append("COMMIT\n")
        subprocess.run(
            ["iptables-restore", "-w", "5", "--noflush"],
            input="\n".join(lines),
            text=True,
            capture_output=True,
            check=True,
        )

    def zero(self) -> None:
        _iptables("-Z", CHAIN)

    def read_bytes(self) -> dict[str, int]:
        """Bytes counted since the last `zero()`, by protocol: {"udp": ..., "tcp": ...}.

        For Serf the split is gossip and probes (UDP) against push-pull (TCP); Skyfleet
        sends everything over gRPC, so all of it is TCP.
        """
        out = _iptables("-L", CHAIN, "-v", "-x", "-n").stdout
        totals = {"udp": 0, "tcp": 0}
        for line in out.splitlines()[2:]:  # chain title and column header
            columns = line.split()  # pkts bytes target prot ...
            if len(columns) >= 4 and columns[1].isdigit():
                proto = {"17": "udp", "6": "tcp"}.get(columns[3], columns[3])
                totals[proto] = totals.get(proto, 0) + int(columns[1])
        return totals

    @staticmethod
    def remove() -> None:
        """Delete the jump and the chain if they exist; never raises."""
        for _ in range(16):  # one jump is ours; more only if earlier runs crashed mid-setup
            if _iptables("-D", *_JUMP, check=False).returncode != 0:
                break
        _iptables("-F", CHAIN, check=False)
        _iptables("-X", CHAIN, check=False)
