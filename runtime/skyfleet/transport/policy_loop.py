"""Keeps an agent on the newest valid policy, from whichever source has it first: the
watched local file or folder (how infra delivers it), a peer advertising a newer version
(pulled through a `PolicyFetch`, see `skyfleet.transport.policy_fetch`), or an admin's
Publish call.

Every decision is the pure `PolicyKeeping`'s (which adverts count, which pull, what a
reply means; the rollout simulator runs the same) and every offer goes through its
`PolicyAdopter`; this module only moves bytes: it reads files, calls peers, persists what
was adopted and tells the node to re-advertise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyfleet.config.policy_sync import PolicySyncTimings
from skyfleet.membership.swim import Swim
from skyfleet.policy.adoption import Decision, PolicyAdopter, log_decision
from skyfleet.policy.envelope import wire_bytes
from skyfleet.policy.keeping import PolicyKeeping, advert
from skyfleet.policy.store import PolicyStore
from skyfleet.policy.sync import Advert, FetchPlan, PolicySync
from skyfleet.transport.policy_fetch import PolicyFetch

log = logging.getLogger("skyfleet.policy")


class PolicyKeeper:
    def __init__(
        self,
        *,
        adopter: PolicyAdopter,
        store: PolicyStore,
        swim: Swim,
        fetch: PolicyFetch,
        sync: PolicySync,
        clock: Callable[[], float],
        source: Path | None,
        on_change: Callable[[], None],
        timings: PolicySyncTimings,
    ) -> None:
        self.adopter = adopter
        self._keeping = PolicyKeeping(adopter, sync)
        self._store = store
        self._swim = swim
        self._pull = fetch
        self._clock = clock
        self._source = source
        self._on_change = on_change
        self._timings = timings
        self._seen_files: dict[Path, tuple[int, int]] = {}
        self._nudged = asyncio.Event()

    @property
    def version(self) -> int:
        return self._keeping.version

    @property
    def hash(self) -> str:
        return self.adopter.current_hash or ""

    def offer(self, raw: bytes | dict[str, Any], origin: str) -> Decision:
        return self._took(self._keeping.offer(raw, origin, self._clock()))

    def _took(self, decision: Decision) -> Decision:
        log_decision(log, decision)
        if decision.adopted:
            envelope = self.adopter.current_envelope
            assert envelope is not None
            self._store.save(envelope)
            self._on_change()
        return decision

    def current_envelope(self) -> bytes:
        envelope = self.adopter.current_envelope
        return wire_bytes(envelope) if envelope else b""

    def nudge(self) -> None:
        """New adverts arrived: look at them now rather than at the next poll."""
        self._nudged.set()

    async def run(self) -> None:
        """Poll sources and adverts until cancelled. Fetches run in this loop's own task
        group: one that fails (a full disk persisting what it fetched) fails the loop, as
        the same failure on the file path does, and cancelling the loop cancels them."""
        async with asyncio.TaskGroup() as fetches:
            while True:
                self._check_source()
                plan = self._keeping.next_fetch(self._adverts(), self._clock())
                if plan is not None:
                    fetches.create_task(self._fetch(plan))
                self._nudged.clear()
                try:
                    async with asyncio.timeout(self._timings.poll_interval):
                        await self._nudged.wait()
                except TimeoutError:
                    pass

    def _adverts(self) -> list[Advert]:
        own, statuses = self._swim.name, self._swim.statuses()
        found = (advert(node, status.report, self._swim.member(node), own=own)
                 for node, (status, _) in statuses.items())
        return [a for a in found if a is not None]

    async def _fetch(self, plan: FetchPlan) -> None:
        member = self._swim.member(plan.node)
        envelope = None if member is None else await self._pull(
            plan.node, member.meta.address, plan.version, self._timings.fetch_timeout)
        if envelope is None:
            self._keeping.fetch_failed(plan, self._clock())
            return
        decision = self._keeping.served(plan, envelope, self._clock())
        if decision is not None:
            self._took(decision)

    def _check_source(self) -> None:
        """Offer each watched file once per change (mtime, size)."""
        source = self._source
        if source is None:
            return
        files = sorted(source.glob("*.json")) if source.is_dir() else [source]
        for path in files:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            if self._seen_files.get(path) == stamp:
                continue
            self._seen_files[path] = stamp
            try:
                raw = path.read_bytes()
            except OSError as exc:
                log.warning("policy source %s unreadable: %s", path, exc.strerror)
                continue
            self.offer(raw, f"file:{path}")
