"""Smoke test of bench/membership_join_cost.py: one small join burst per configuration
over real agents; asserts that the fleet converges and that the connections and CPU are
counted (not how many or how fast)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import membership_join_cost

    return membership_join_cost


@pytest.mark.parametrize("label", ["Skyfleet", "memberlist rounds"])
async def test_a_small_join_burst_is_measured(bench: ModuleType, label: str) -> None:
    from membership_procs import PortAllocator

    result = await bench.one_run(4, bench.CONFIGS[label], PortAllocator())
    assert result["join_s"] > 0
    # Three joiners dialled the seed at least: every pair that talked holds a connection.
    assert 3 <= result["connections"] <= 4 * 3
    assert result["cpu_s"] > 0
