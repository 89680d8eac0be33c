"""What `skyfleet local up` leaves for `status`, `top` and `down`: the agents it started
(spec and pid) and the network prefix, in DIR/fleet.json. Written atomically; `down`
works from it even if `up` was interrupted half way."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from skyfleet.localfleet.layout import AgentSpec

STATE_FILE = "fleet.json"


@dataclass(frozen=True, slots=True)
class FleetState:
    specs: tuple[AgentSpec, ...]
    pids: dict[str, int]
    network_prefix: str | None

    def save(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        doc = {
            "specs": [asdict(s) for s in self.specs],
            "pids": self.pids,
            "network_prefix": self.network_prefix,
        }
        tmp = root / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, root / STATE_FILE)

    @classmethod
    def load(cls, root: Path) -> FleetState | None:
        path = root / STATE_FILE
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        specs = tuple(AgentSpec(**{**s, "seeds": tuple(s["seeds"])}) for s in doc["specs"])
        return cls(specs, {k: int(v) for k, v in doc["pids"].items()}, doc["network_prefix"])

    @staticmethod
    def clear(root: Path) -> None:
        (root / STATE_FILE).unlink(missing_ok=True)
