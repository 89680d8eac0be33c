"""Turns a stream of polled member lists into the benchmark's numbers. Pure: the caller
passes the time of every observation, so the rules below can be checked without agents.

Rules
- An agent is *up* at its first answered poll; the cluster is up when every agent is.
- An observer has *converged* at the first poll where it lists all N nodes as alive.
  The cluster has converged when every node has. The join time runs from the join
  command (`join_started`), the launch-to-converged time from the launch.
- After `kill(victim, t)`, an observer has *detected* the failure at its first poll that
  shows the victim dead or left, or no longer lists it (a system may forget the dead).
  The killed node itself is no observer any more.
- A *false death* is any poll, after that observer converged, showing a node that was
  never killed as dead, left or missing. A *false suspicion* (Skyfleet only; Serf does not
  show suspicion) is a poll showing a never-killed node as suspect, at any time.
  Both are counted once per (observer, subject) pair, however long they last.
- *Poll gaps* are the times between consecutive completed polls of one observer while
  polling runs; they bound how late any of the times above can be seen.
"""

from __future__ import annotations

from collections.abc import Mapping

from membership_systems import Status

_GONE = (Status.DEAD, Status.LEFT, None)


class RunRecorder:
    def __init__(self, names: list[str], launched_at: float) -> None:
        self.names = tuple(names)
        self.launched_at = launched_at
        self.join_started_at: float | None = None
        self.up_at: dict[str, float] = {}
        self.converged_at: dict[str, float] = {}
        self.first_alive_at: dict[tuple[str, str], float] = {}
        self.victim: str | None = None
        self.killed_at: float | None = None
        self.detected_at: dict[str, float] = {}
        self.false_deaths: set[tuple[str, str]] = set()
        self.false_suspicions: set[tuple[str, str]] = set()
        self.poll_gaps: list[float] = []
        self._last_poll: dict[str, float] = {}
        self._last_view: dict[str, Mapping[str, Status]] = {}

    def observe(self, now: float, observer: str, view: Mapping[str, Status]) -> None:
        """Record one completed poll of `observer`."""
        if observer == self.victim:
            return
        last = self._last_poll.get(observer)
        if last is not None:
            self.poll_gaps.append(now - last)
        self._last_poll[observer] = now
        self.up_at.setdefault(observer, now)
        self._last_view[observer] = view

        converged = observer in self.converged_at
        if not converged and all(view.get(n) is Status.ALIVE for n in self.names):
            self.converged_at[observer] = now
        for name in self.names:
            if name == self.victim:
                continue
            state = view.get(name)
            if state is Status.ALIVE:
                self.first_alive_at.setdefault((observer, name), now)
            if state is Status.SUSPECT:
                self.false_suspicions.add((observer, name))
            elif converged and state in _GONE:
                self.false_deaths.add((observer, name))

        if self.victim is not None and observer not in self.detected_at:
            if view.get(self.victim) in _GONE:
                self.detected_at[observer] = now

    def join_started(self, at: float) -> None:
        self.join_started_at = at

    def polling_paused(self) -> None:
        """Forget the last poll times, so a pause does not show up as one long gap."""
        self._last_poll.clear()

    def kill(self, victim: str, killed_at: float) -> None:
        if victim not in self.names:
            raise ValueError(f"unknown victim {victim!r}")
        self.victim = victim
        self.killed_at = killed_at

    def _observers(self) -> list[str]:
        return [n for n in self.names if n != self.victim]

    def all_up(self) -> bool:
        return all(n in self.up_at for n in self.names)

    def all_converged(self) -> bool:
        return all(n in self.converged_at for n in self.names)

    def all_detected(self) -> bool:
        return self.victim is not None and all(n in self.detected_at for n in self._observers())

    def up_seconds(self) -> float | None:
        """Launch until the last agent answered its first poll: process start-up."""
        if not self.all_up():
            return None
        return max(self.up_at.values()) - self.launched_at

    def join_seconds(self) -> float | None:
        """Join command until the last node saw everyone alive."""
        if not self.all_converged() or self.join_started_at is None:
            return None
        return max(self.converged_at.values()) - self.join_started_at

    def launch_to_converged_seconds(self) -> float | None:
        """Launch until the last node saw everyone alive: start-up, the bench's own
        join calls, and the join."""
        if not self.all_converged():
            return None
        return max(self.converged_at.values()) - self.launched_at

    def not_converged(self) -> dict[str, str]:
        """For each observer still short of all N alive, what its last poll showed of the
        others (e.g. `b: suspect, c: missing`); `never answered` if it never did."""
        report: dict[str, str] = {}
        for observer in self.names:
            if observer in self.converged_at:
                continue
            view = self._last_view.get(observer)
            if view is None:
                report[observer] = "never answered"
                continue
            short = [
                f"{n}: {view[n].value if n in view else 'missing'}"
                for n in self.names
                if view.get(n) is not Status.ALIVE
            ]
            report[observer] = ", ".join(short)
        return report

    def slowest_pair(self) -> tuple[str, str, float] | None:
        """(observer, subject, seconds from the join command) of the last pair to see
        each other alive: when a join is slow, this says who was late."""
        if not self.first_alive_at:
            return None
        (observer, subject), at = max(self.first_alive_at.items(), key=lambda kv: kv[1])
        return observer, subject, at - (self.join_started_at or self.launched_at)

    def detection_seconds(self) -> tuple[float | None, float | None]:
        """(first observer, last observer) to see the victim gone, from the kill."""
        if self.killed_at is None or not self.detected_at:
            return None, None
        first = min(self.detected_at.values()) - self.killed_at
        last = max(self.detected_at.values()) - self.killed_at if self.all_detected() else None
        return first, last
