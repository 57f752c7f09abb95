"""The live diagnostics under docs/live (scripts, not a package): their pure parts on made-up data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "live"))

from quanta_split import MARGIN_MS, unwaited_ms  # noqa: E402
from wake_hazard import BIN_MS, hazard  # noqa: E402

from runtime.preemption import tick_nsec  # noqa: E402

HZ = 250
PERIOD_MS = tick_nsec(HZ) / 1e6


def test_unwaited_run_is_the_fast_mode_where_most_runs_waited():
    # torch's one-core k = 1 beside two busy threads: 68-71% waited a 4 ms quantum
    assert unwaited_ms([1.9] * 29 + [5.9] * 71) == pytest.approx(1.9)


def test_unwaited_run_of_a_cell_that_nearly_always_waited_is_a_waited_run():
    # under the percentile's share unwaited: compare cells (preemption_by_phase takes the least)
    assert unwaited_ms([1.9] * 2 + [5.9] * 98) == pytest.approx(5.9)
    with pytest.raises(ValueError, match="empty"):
        unwaited_ms([])


def test_unwaited_run_ignores_jitter_within_the_margin():
    ms = [2.0, 2.1, 2.2, 2.3, 2.4] * 10 + [6.2] * 5
    assert unwaited_ms(ms) == pytest.approx(2.2)
    assert 6.2 >= unwaited_ms(ms) + MARGIN_MS  # the slow ones stay waited


def _wake(phase_ms: float, first_gap_ms: float | None, base_s: float = 100.0) -> tuple[float, list[tuple[float, float]]]:
    """A wake ``phase_ms`` into a tick (offset 0), its first gap (4 ms long) that many ms after it."""
    start = base_s + phase_ms / 1e3
    return start, ([] if first_gap_ms is None else [(start + first_gap_ms / 1e3, start + (first_gap_ms + 4.0) / 1e3)])


def test_hazard_counts_ticks_passed_and_the_one_taken():
    # woke 3.0 ms into a tick: ticks come 1.0, 5.0 ms after the wake; taken at the second
    table, off_tick = hazard([_wake(3.0, PERIOD_MS + 1.0)], HZ, 0.0, spin_ms=12.0)
    assert table[int(1.0 // BIN_MS)] == [1, 0]
    assert table[int(5.0 // BIN_MS)] == [1, 1]
    assert sum(t for t, _ in table.values()) == 2 and off_tick == 0  # nothing after the first gap


def test_hazard_counts_every_tick_of_a_wake_never_preempted_until_the_spin_ends():
    table, _ = hazard([_wake(3.0, None)], HZ, 0.0, spin_ms=6.0)  # ticks 1.0 and 5.0 ms after the wake; 9.0 unseen
    assert {b: v for b, v in table.items() if v[0]} == {int(1.0 // BIN_MS): [1, 0], int(5.0 // BIN_MS): [1, 0]}


def test_hazard_reads_the_phase_against_the_offset():
    # the same wake with the grid 0.5 ms later: the first tick comes 1.5 ms after it
    table, _ = hazard([_wake(3.0, 1.5)], HZ, 0.5, spin_ms=6.0)
    assert table[int(1.5 // BIN_MS)] == [1, 1]


def test_hazard_leaves_out_a_wake_taken_between_ticks():
    # ticks at 1.0 and 5.0 ms after the wake; a gap from 2.5 ms is no tick's (one just before a tick is)
    table, off_tick = hazard([_wake(3.0, 2.5), _wake(3.0, 0.8)], HZ, 0.0, spin_ms=6.0)
    assert off_tick == 1
    assert table[int(1.0 // BIN_MS)] == [2, 1]  # passed by the first wake, taken (0.2 ms early) in the second
    assert not table[int(5.0 // BIN_MS)][0]  # the first wake's later ticks came after a gap between ticks
