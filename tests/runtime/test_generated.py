"""The committed protobuf code is exactly what protos/generate.py makes from the .protos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    committed = ROOT / "runtime" / "skyfleet" / "_generated"
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*.py*")}
    current = {
        p.relative_to(committed): p.read_text()
        for p in committed.rglob("*.py*")
        if "__pycache__" not in p.parts
    }
    assert fresh.keys() == current.keys(), "run: python protos/generate.py"
    stale = sorted(str(k) for k in fresh if fresh[k] != current[k])
    assert not stale, f"stale generated files {stale}; run: python protos/generate.py"
