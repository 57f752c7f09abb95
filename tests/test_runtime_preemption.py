"""The preemption probe's tick grid (:func:`runtime.preemption.tick_grid`) and the phase the live
loop logs from it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hwmodels.profile import PlatformProfileError, load_platform
from runtime.preemption import KERNEL_HZ, MIN_ALIGNED, spin_gaps, tick_grid, tick_nsec, tick_phase_ms


def _gaps(
    hz: int, offset_ms: float, n: int, jitter_ms: float, ticks_per_gap: int = 1, seed: int = 0
) -> list[tuple[float, float]]:
    """Gaps a probe beside one co-runner would see, (start, end) in seconds: the co-runner takes
    the CPU at a tick and holds it ``ticks_per_gap`` ticks, then the probe does as long; each
    start a microsecond before its tick, each end a few microseconds after (the kernel's tick is
    a whole number of nanoseconds, TICK_NSEC), from an arbitrary tick onwards."""
    rng = np.random.default_rng(seed)
    period = tick_nsec(hz)
    first = 123456 * period + round(offset_ms * 1e6)
    late = np.abs(rng.normal(0.0, jitter_ms * 1e6, n))
    return [
        ((first + 2 * ticks_per_gap * i * period - 1000) / 1e9, (first + (2 * i + 1) * ticks_per_gap * period + d) / 1e9)
        for i, d in enumerate(late)
    ]


def _ends(*args, **kw) -> list[float]:
    return [b for _, b in _gaps(*args, **kw)]


@pytest.mark.parametrize("hz", [100, 250, 300, 1000, 1024])
@pytest.mark.parametrize("ticks_per_gap", [1, 3])  # a co-runner may hold the CPU for several ticks
def test_grid_recovers_hz_and_offset(hz, ticks_per_gap):
    offset = 0.02 * 1e3 / hz
    gaps = _gaps(hz, offset_ms=offset, n=60, jitter_ms=0.002, ticks_per_gap=ticks_per_gap)
    got_hz, got_offset, aligned = tick_grid(gaps, (hz,))  # the kernel's configuration said its HZ
    assert got_hz == hz and aligned == 1.0
    assert got_offset == pytest.approx(offset, abs=0.01)
    # without it, the slowest HZ the gaps fit: the true one, except where it is ambiguous (every
    # third tick at 300 Hz is every tick at 100 Hz)
    ambiguous = (hz, ticks_per_gap) == (300, 3)
    assert tick_grid(gaps)[:3:2] == ((100 if ambiguous else hz), 1.0)
    assert ambiguous or tick_grid(gaps)[1] == pytest.approx(offset, abs=0.01)


def test_offset_near_the_period_wraps():
    gaps = _gaps(250, offset_ms=3.995, n=60, jitter_ms=0.004)  # some ends fall after the next multiple of 4 ms
    ends = [b for _, b in gaps]
    hz, offset, aligned = tick_grid(gaps)
    assert hz == 250 and aligned == 1.0
    assert min(abs(offset - 3.995), 4.0 - abs(offset - 3.995)) < 0.01  # a phase on the circle
    phases = [tick_phase_ms(round(t * 1e9), hz, offset) for t in ends]
    assert all(p < 0.03 or p > 3.97 for p in phases)


def test_no_grid_when_gaps_end_anywhere():
    rng = np.random.default_rng(1)
    ends = np.cumsum(rng.uniform(6.0, 10.0, 80) / 1e3)  # gaps 8 ms apart on average, at no fixed phase
    hz, _, aligned = tick_grid([(b - rng.uniform(3.0, 5.0) / 1e3, b) for b in ends])
    assert hz == 0 and aligned < MIN_ALIGNED


def test_too_few_gaps_are_no_grid():
    assert tick_grid(_gaps(250, 0.0, 5, 0.0)) == (0, 0.0, 0.0)


def test_a_wrong_hz_does_not_fit():
    assert tick_grid(_gaps(250, 0.1, 60, 0.002), (1000,))[0] == 1000  # 4 ms ticks are 1 ms ticks too
    hz, _, aligned = tick_grid(_gaps(1000, 0.1, 60, 0.002), (250,))  # but not the other way round
    assert hz == 0 and aligned < MIN_ALIGNED


def test_spin_gaps_spins_for_its_time_and_notes_only_gaps(monkeypatch):
    # a clock that jumps 2 ms once (something else held the CPU) and otherwise moves 10 us a read
    import time

    reads = iter([0.0] + [i * 1e-5 for i in range(1, 50)] + [0.0025 + i * 1e-5 for i in range(0, 1000)])
    monkeypatch.setattr(time, "perf_counter", lambda: next(reads))
    start, gaps = spin_gaps(0.005)
    assert start == 0.0
    assert gaps == [(pytest.approx(49e-5), pytest.approx(0.0025))]  # the 2 ms jump, and no 10 us step
    assert next(reads) == pytest.approx(0.0025 + 251e-5)  # it stopped at the first read past 5 ms


def test_tick_nsec_is_the_kernels():
    assert tick_nsec(250) == 4_000_000 and tick_nsec(300) == 3_333_333 and tick_nsec(1024) == 976_563
    assert sorted(KERNEL_HZ) == list(KERNEL_HZ)


def test_phase_wraps_at_the_period():
    assert tick_phase_ms(4_000_000 * 10 + 1_500_000, 250, 0.5) == pytest.approx(1.0)
    assert tick_phase_ms(4_000_000 * 10 + 100_000, 250, 0.5) == pytest.approx(3.6)


def test_profile_tick_hz_must_be_whole(tmp_path):
    with open("hwmodels/platforms/xu3.yaml") as f:
        doc = yaml.safe_load(f)
    doc["interference"]["tick_hz"] = 250.5
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformProfileError, match="tick_hz"):
        load_platform(str(p))
    doc["interference"]["tick_hz"] = 250
    p.write_text(yaml.safe_dump(doc))
    assert load_platform(str(p)).interference.tick_hz == 250
