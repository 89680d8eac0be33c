"""A fleet of `Swim` cores on virtual time.

Events (packet deliveries and node wake-ups) sit in one heap ordered by (time, seq), so
a run is a pure function of the seed. Nodes can crash (stop, packets to them vanish, or
come back refused while the host stays up),
restart under the same name with a fresh incarnation, or be *starved*: their loop runs
only at the ends of slots of the given length, firing overdue timers before reading the
packets that queued up meanwhile. That order is the worst case for false suspicions
(the probe deadline passes before the waiting ack is read), which is the Lifeguard
scenario.

Connections are modelled as the agent has them, one per pair of nodes: a pair is
connected once a packet has passed between them, until either end crashes. Each core is
told which members it is connected to (`Swim`'s `warm`), so its early gossip rounds go
where the agent's would. Nodes started together by `add_converged` count as connected
to each other, as a long-converged fleet's are (its probes have reached everyone).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.claims import alive_claim
from skyfleet.membership.members import MemberEvent, MemberView
from skyfleet.membership.messages import MemberState, NodeMeta, Outgoing, Packet, packet_size
from skyfleet.membership.swim import Swim
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry
from skyfleet.sim.network import SimNetwork


@dataclass(slots=True)
class SimNode:
    swim: Swim
    up: bool = True
    starve_slot: float = 0.0
    """0 when healthy; else the node only runs at multiples of this many seconds."""
    inbox: list[Packet] = field(default_factory=list)
    wake_at: float | None = None
    bytes_sent: int = 0
    packets_sent: int = 0
    events: list[MemberEvent] = field(default_factory=list)
    peers: set[str] = field(default_factory=set)
    """Nodes this one has a connection with (besides the converged fleet's)."""
    port_closed: bool = False
    """Crashed with its host up: connections to it are refused."""


class SimCluster:
    def __init__(
        self,
        config: MembershipConfig,
        *,
        seed: int = 1,
        network: SimNetwork | None = None,
        connections: bool = True,
    ) -> None:
        """`connections` False counts every pair as connected, as a connectionless
        transport would be: early rounds then go to any member."""
        self.config = config
        self._model_connections = connections
        self.now = 0.0
        self.rng = random.Random(seed)
        self.keys = SimKeyRegistry(seed)
        """The simulated CA: tests sign forged claims against it."""
        self.network = network or SimNetwork(random.Random(seed + 1))
        self.nodes: dict[str, SimNode] = {}
        self._by_address: dict[str, str] = {}
        self._heap: list[tuple[float, int, str, str, Packet | str | Callable[[], None] | None]] = []
        self._seq = 0
        self._converged: set[str] = set()
        """Nodes started by `add_converged`: connected to each other without a set of
        pairs (N^2 of them at N = 10,000)."""

    # ------------------------------------------------------------------ fleet control

    def add_node(
        self,
        name: str,
        *,
        seeds: tuple[str, ...] = (),
        cloud: str = "",
        zone: str = "",
        incarnation: int = 0,
        known: frozenset[str] = frozenset(),
        region: str = "",
    ) -> Swim:
        """Start a node at the current time. Addresses are `sim://<name>`. `known`: nodes
        whose certificates it holds from the start."""
        meta = NodeMeta(name, self.address(name), cloud=cloud, region=region, zone=zone)
        self._disconnect(name)
        node = SimNode(
            Swim(
                meta,
                self.config,
                random.Random(self.rng.random()),
                keys=SimClaimKeys(name, self.keys, known),
                incarnation=incarnation,
                warm=lambda peer: self.connected(name, peer.name),
            )
        )
        swim = node.swim
        self.nodes[name] = node
        self._by_address[meta.address] = name
        self._dispatch(name, swim.start(self.now, seeds))
        self._schedule_wake(name)
        return swim

    def add_converged(
        self,
        names: list[str],
        *,
        cloud: str = "",
        zone: str = "",
        placement: Mapping[str, tuple[str, str, str]] | None = None,
    ) -> None:
        """Start `names` as a fleet that has long converged: every node knows every
        other alive at incarnation 0, nothing left to gossip. It skips the join (whose
        figures come from `add_node` runs at smaller N) so that N = 10,000 fits in memory:
        the nodes share one set of immutable member entries. `placement`: (cloud, region,
        zone) per node, instead of one `cloud` and `zone` for all."""
        where = placement or {}
        metas = [
            NodeMeta(n, self.address(n), *where.get(n, (cloud, "", zone))) for n in names
        ]
        entries = [
            MemberView(m, MemberState.ALIVE, 0, self.now, self.keys.sign(m.name, alive_claim(m, 0)))
            for m in metas
        ]
        known = frozenset(names)
        for entry in entries:
            m = entry.meta
            swim = self.add_node(
                m.name, cloud=m.cloud, region=m.region, zone=m.zone, known=known
            )
            swim.adopt_members(entries, self.now)
        self._converged.update(names)

    @staticmethod
    def address(name: str) -> str:
        return f"sim://{name}"

    def crash(self, name: str, *, port_closed: bool = False) -> None:
        """The process dies: no more timers, packets to it are lost. `port_closed`: its
        host stays up, so its port refuses connections (a `kill -9`), which the agent's
        transport finds by a connect after a stream broke or a send failed
        (`transport/port_check.py`): every peer connected to it is told one round trip
        later, and so is every later sender. Without it the node is silent, as behind a
        blackhole or on a host that went down."""
        node = self.nodes[name]
        if port_closed:
            for peer in [p for p in self.live_names() if p != name and self.connected(p, name)]:
                self._refuse(peer, name)
        node.up, node.wake_at, node.inbox = False, None, []
        node.port_closed = port_closed
        self._disconnect(name)

    def restart(self, name: str, *, seeds: tuple[str, ...], incarnation: int) -> Swim:
        """A new process under the same name and address (fresh state)."""
        meta = self.nodes[name].swim.meta
        return self.add_node(
            name,
            seeds=seeds,
            cloud=meta.cloud,
            region=meta.region,
            zone=meta.zone,
            incarnation=incarnation,
        )

    def leave(self, name: str) -> None:
        self._dispatch(name, self.nodes[name].swim.leave(self.now))
        self._schedule_wake(name)

    def starve(self, name: str, slot: float) -> None:
        """From now on the node runs only every `slot` seconds (0 ends the starvation)."""
        node = self.nodes[name]
        node.starve_slot = slot
        node.wake_at = None
        self._schedule_wake(name)

    # ------------------------------------------------------------------ running

    def run_until(self, t: float) -> None:
        while self._heap and self._heap[0][0] <= t:
            when, _, kind, name, payload = heapq.heappop(self._heap)
            self.now = when
            if kind == "call":
                assert callable(payload)
                payload()
                continue
            node = self.nodes.get(name)
            if node is None or not node.up:
                continue
            if kind == "refused":
                assert isinstance(payload, str)
                self._dispatch(name, node.swim.refused(payload, self.address(payload), when))
                self._schedule_wake(name)
                self.after_step(name)
                continue
            if kind == "deliver":
                assert isinstance(payload, Packet)
                if node.starve_slot:
                    node.inbox.append(payload)
                    self._schedule_wake(name)
                else:
                    self._dispatch(name, node.swim.handle(payload, when))
                    self._schedule_wake(name)
                    self.after_step(name)
            elif node.wake_at == when:
                node.wake_at = None
                self._wake(name)
        self.now = max(self.now, t)

    def emit(self, name: str, out: list[Outgoing]) -> None:
        """Send what node `name`'s core returned from a call made outside the event loop
        (a status it publishes) and re-arm its wake-up: the call may have moved a timer
        forward (fresh news pulls the next gossip round to now)."""
        self._dispatch(name, out)
        self._schedule_wake(name)

    def deliver_now(self, name: str, packet: Packet) -> None:
        """Hand `name` a packet from outside the fleet (a test's or a bench's), as if it
        had just arrived: its answers are sent and its timers rescheduled as usual."""
        self._push(self.now, "deliver", name, packet)
        self.run_until(self.now)

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at virtual time `when`, in order with the packets and timers: how
        a model layered on the fleet (policy pulls) schedules its own events."""
        self._push(when, "call", "", action)

    def after_step(self, name: str) -> None:
        """Called after node `name` handled packets or fired timers. A no-op here; a
        layered model overrides it to react as its agent would (the policy model polls
        at once when new adverts arrived, as the agent's keeper is nudged)."""

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_until_true(
        self, predicate: Callable[[], bool], timeout: float, step: float = 0.05
    ) -> float | None:
        """Advance in `step`s until `predicate()` holds; the elapsed virtual time, or None."""
        start = self.now
        while self.now - start <= timeout:
            if predicate():
                return self.now - start
            self.run_for(step)
        return None

    # ------------------------------------------------------------------ observation

    def view(self, observer: str, subject: str) -> MemberState | None:
        member = self.nodes[observer].swim.member(subject)
        return member.state if member else None

    def live_names(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.up]

    def all_see(self, subject: str, state: MemberState, observers: list[str] | None = None) -> bool:
        names = observers if observers is not None else self.live_names()
        return all(self.view(o, subject) == state for o in names if o != subject)

    def converged(self, names: list[str] | None = None) -> bool:
        """Every live node sees every live node alive."""
        names = names if names is not None else self.live_names()
        return all(self.view(o, s) == MemberState.ALIVE for o in names for s in names)

    def events(self, name: str) -> list[MemberEvent]:
        return self.nodes[name].events

    def connected(self, a: str, b: str) -> bool:
        """Whether nodes `a` and `b` have a connection open between them."""
        node = self.nodes.get(a)
        if node is None:
            return False
        if not self._model_connections:
            return True
        return b in node.peers or (a in self._converged and b in self._converged)

    # ------------------------------------------------------------------ internals

    def _wake(self, name: str) -> None:
        node = self.nodes[name]
        out = node.swim.tick(self.now)
        inbox, node.inbox = node.inbox, []
        for packet in inbox:
            out += node.swim.handle(packet, self.now)
        self._dispatch(name, out)
        self._schedule_wake(name)
        self.after_step(name)

    def _schedule_wake(self, name: str) -> None:
        node = self.nodes[name]
        if not node.up:
            return
        deadline = node.swim.next_deadline()
        if node.starve_slot:
            slot = node.starve_slot
            if deadline is None and not node.inbox:
                return
            nxt = self.now if deadline is None else max(deadline, self.now)
            deadline = (int(nxt / slot) + 1) * slot
        if deadline is None or node.wake_at == deadline:
            return
        if node.wake_at is not None and node.wake_at <= deadline and node.wake_at > self.now:
            return
        node.wake_at = deadline
        self._push(deadline, "wake", name, None)

    def _dispatch(self, src: str, out: list[Outgoing]) -> None:
        node = self.nodes[src]
        node.events.extend(node.swim.take_events())
        for o in out:
            node.packets_sent += 1
            node.bytes_sent += packet_size(o.packet)
            dst = self._by_address.get(o.address)
            if dst is None:
                continue
            target = self.nodes[dst]
            if not target.up and target.port_closed:
                self._refuse(src, dst)
                continue
            transit = self.network.transit(src, dst)
            if transit is not None:
                self._push(self.now + transit, "deliver", dst, o.packet)
                if target.up and dst not in node.peers:
                    node.peers.add(dst)
                    target.peers.add(src)

    def _refuse(self, src: str, dst: str) -> None:
        """`src`'s connect to `dst`'s closed port comes back refused a round trip later,
        unless the network loses the SYN or the RST."""
        there, back = self.network.transit(src, dst), self.network.transit(dst, src)
        if there is not None and back is not None:
            self._push(self.now + there + back, "refused", src, dst)

    def _disconnect(self, name: str) -> None:
        """A crashed (or restarted) process has lost every connection it had."""
        node = self.nodes.get(name)
        if node is None:
            return
        for peer in node.peers:
            self.nodes[peer].peers.discard(name)
        node.peers.clear()
        self._converged.discard(name)

    def _push(
        self,
        when: float,
        kind: str,
        name: str,
        payload: Packet | str | Callable[[], None] | None,
    ) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, name, payload))
