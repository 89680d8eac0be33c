"""Which of a set of files changed since last asked, by content.

Credentials reach a running host as files (the host's fetch timer copies them from the
fleet's store, `infra.bootstrap`), and are replaced atomically by rename: comparing
contents, not mtimes, ignores a rewrite of identical bytes and never misses a change
made within one mtime tick. A file that cannot be read counts as unchanged, so a
half-deployed rotation keeps what works until the new file is whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


class FileWatch:
    def __init__(self, paths: Iterable[Path]) -> None:
        self._paths = tuple(dict.fromkeys(paths))
        self._seen = {p: self._digest(p) for p in self._paths}

    @staticmethod
    def _digest(path: Path) -> bytes | None:
        try:
            return hashlib.sha256(path.read_bytes()).digest()
        except OSError:
            return None

    def changed(self) -> set[Path]:
        """Files whose contents differ from the last call (or construction)."""
        out: set[Path] = set()
        for path in self._paths:
            digest = self._digest(path)
            if digest is not None and digest != self._seen[path]:
                self._seen[path] = digest
                out.add(path)
        return out
