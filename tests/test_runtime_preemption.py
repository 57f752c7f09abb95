"""The preemption probe's tick grid (:func:`runtime.preemption.tick_grid`) and the phase the live
loop logs from it."""

from __future__ import annotations

import numpy as np
import pytest

from hwmodels.profile import PlatformProfileError, load_platform
from runtime.preemption import MIN_ALIGNED, tick_grid, tick_phase_ms


def _ends(hz: int, offset_ms: float, n: int, jitter_ms: float, seed: int = 0) -> list[float]:
    """Gap ends a probe beside one co-runner would see: every other tick (the co-runner holds
    the CPU for one), a few microseconds late, from an arbitrary tick onwards (the kernel's tick
    is a whole number of nanoseconds, TICK_NSEC)."""
    rng = np.random.default_rng(seed)
    period = round(1e9 / hz) / 1e9
    first = 123456 * period + offset_ms / 1e3
    return [first + 2 * i * period + abs(rng.normal(0.0, jitter_ms / 1e3)) for i in range(n)]


@pytest.mark.parametrize("hz", [100, 250, 300, 1000])
def test_grid_recovers_hz_and_offset(hz):
    ends = _ends(hz, offset_ms=0.3 / (hz / 100), n=60, jitter_ms=0.01)
    got_hz, offset, aligned = tick_grid(ends, quantum_ms=1e3 / hz + 0.02)  # the gap: a tick plus a context switch
    assert got_hz == hz and aligned == 1.0
    assert offset == pytest.approx(0.3 / (hz / 100), abs=0.03)
    for t in ends:  # each end is just after a tick of the grid
        assert (
            tick_phase_ms(round(t * 1e9), got_hz, offset) < 0.05
            or tick_phase_ms(round(t * 1e9), got_hz, offset) > 1e3 / hz - 0.05
        )


def test_no_grid_when_gaps_end_anywhere():
    rng = np.random.default_rng(1)
    ends = list(np.cumsum(rng.uniform(3.0, 5.0, 80) / 1e3))  # gaps 4 ms apart on average, at no fixed phase
    hz, _, aligned = tick_grid(ends, quantum_ms=4.0)
    assert hz == 0 and aligned < MIN_ALIGNED


def test_too_few_gaps_are_no_grid():
    assert tick_grid(_ends(250, 0.0, 5, 0.0), 4.0) == (0, 0.0, 0.0)


def test_phase_wraps_at_the_period():
    assert tick_phase_ms(4_000_000 * 10 + 1_500_000, 250, 0.5) == pytest.approx(1.0)
    assert tick_phase_ms(4_000_000 * 10 + 100_000, 250, 0.5) == pytest.approx(3.6)


def test_profile_tick_hz_must_be_whole(tmp_path):
    import yaml

    doc = yaml.safe_load(open("hwmodels/platforms/xu3.yaml"))
    doc["interference"]["tick_hz"] = 250.5
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformProfileError, match="tick_hz"):
        load_platform(str(p))
    doc["interference"]["tick_hz"] = 250
    p.write_text(yaml.safe_dump(doc))
    assert load_platform(str(p)).interference.tick_hz == 250
