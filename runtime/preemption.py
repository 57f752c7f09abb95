"""How long a co-runner holds a CPU once it preempts us: the model's ``interference.quantum_ms``.

The Linux scheduler (CFS, EEVDF) does not share a CPU as a fluid: a busy co-runner that takes
the CPU keeps it until the next scheduler tick at which its slice is used up, so a DNN sharing
a core waits in whole quanta (one tick, 4 ms at ``CONFIG_HZ=250``) and one request waits for
none of them while the next waits 4 ms. The probe measures that quantum directly, not from the
kernel's configuration: a thread spinning on the clock, pinned beside one co-runner pinned to
the same CPU, sees every time the co-runner held the CPU as a gap in its own clock; the median
gap is the quantum.

The same gaps show where the ticks fall: each ends when a tick hands the CPU back. Linux
aligns its tick to multiples of the tick period on ``CLOCK_MONOTONIC`` (the clock
:func:`time.perf_counter` reads), so where the gaps end at one phase of a whole-HZ period the
probe reports that HZ and phase (:class:`TickGrid`), and the live loop can log how far into a
tick each inference started (``tick_phase_ms``): whether a run crosses a tick is what decides
whether a co-runner preempts it.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import NamedTuple

from runtime.loadgen import LoadGenerator, LoadSchedule, LoadStep
from runtime.topology import set_affinity

#: a gap in the spinning thread's clock at least this long is a preemption (a clock read is ~0.1 us;
#: interrupts and page faults take microseconds)
MIN_GAP_MS = 0.5
#: the probe needs at least this many preemptions for its median to mean something
MIN_PREEMPTIONS = 10
#: how long the probe spins (at a 4 ms tick, about 75 preemptions)
PROBE_SECONDS = 0.6
#: the ticks are on a grid when at least this share of the gaps ends within an eighth of a period of one phase
MIN_ALIGNED = 0.9


class Preemption(NamedTuple):
    """What the probe measured.

    :param quantum_ms: the median gap (0.0 when fewer than :data:`MIN_PREEMPTIONS`: a fluid share)
    :param gaps: how many gaps the spinning thread saw
    :param tick_hz: the kernel's tick rate, where the gaps end on a grid of a whole-HZ period
        (0: no grid seen)
    :param tick_offset_ms: where on ``perf_counter`` time modulo the period the ticks fall
    :param aligned: the share of gaps that end within an eighth of a period of that phase
    """

    quantum_ms: float
    gaps: int
    tick_hz: int = 0
    tick_offset_ms: float = 0.0
    aligned: float = 0.0


def tick_grid(gap_ends_s: list[float], quantum_ms: float) -> tuple[int, float, float]:
    """The tick grid the gap ends lie on: (HZ, phase in ms, share aligned); HZ is 0 where fewer
    than :data:`MIN_ALIGNED` of them end within an eighth of a period of one phase.

    The period is the median spacing of consecutive ends over the whole ticks between them,
    rounded to a whole HZ (the kernel's tick is ``1 s / HZ``); the phase is the circular mean of
    the ends modulo it.

    :param gap_ends_s: ``perf_counter`` times at which the gaps ended
    :param quantum_ms: the median gap (a first guess at the period)
    """
    if len(gap_ends_s) < MIN_PREEMPTIONS or quantum_ms <= 0:
        return 0, 0.0, 0.0
    spacing = [(b - a) * 1e3 for a, b in zip(gap_ends_s, gap_ends_s[1:])]
    period = statistics.median(d / max(1, round(d / quantum_ms)) for d in spacing)
    hz = round(1e3 / period)
    period_ns = round(1e9 / hz)  # the kernel's TICK_NSEC
    angles = [2 * math.pi * (round(t * 1e9) % period_ns) / period_ns for t in gap_ends_s]
    mean = math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles))) % (2 * math.pi)
    near = sum(abs((a - mean + math.pi) % (2 * math.pi) - math.pi) < math.pi / 4 for a in angles) / len(angles)
    if near < MIN_ALIGNED:
        return 0, 0.0, near
    return hz, mean / (2 * math.pi) * period_ns / 1e6, near


def tick_phase_ms(now_ns: int, tick_hz: int, tick_offset_ms: float) -> float:
    """How far into the current tick ``now_ns`` (``perf_counter_ns``) is, in ms.

    :param tick_hz: :attr:`Preemption.tick_hz` (> 0)
    :param tick_offset_ms: :attr:`Preemption.tick_offset_ms`
    """
    period_ns = round(1e9 / tick_hz)
    return ((now_ns - round(tick_offset_ms * 1e6)) % period_ns) / 1e6


def measure_preemption(unit: str, cpu: int, seconds: float = PROBE_SECONDS) -> Preemption:
    """Spin on ``cpu`` beside one busy co-runner pinned there and time the gaps it causes.

    :param unit: the unit's name (the load generator's key)
    :param cpu: the CPU both run on
    :param seconds: how long to spin
    :raises runtime.sysfs.LiveError: when this process cannot be pinned to ``cpu``
    """
    before = sorted(os.sched_getaffinity(0))
    set_affinity((cpu,))
    gaps: list[tuple[float, float]] = []  # (start, end) perf_counter seconds
    try:
        with LoadGenerator(LoadSchedule((LoadStep(0.0, unit, 1, 0.0),)), {unit: (cpu,)}):
            time.sleep(0.1)  # the worker is up and spinning
            min_gap = MIN_GAP_MS / 1e3
            clock = time.perf_counter
            last = clock()
            end = last + seconds
            while last < end:
                now = clock()
                if now - last >= min_gap:
                    gaps.append((last, now))
                last = now
    finally:
        set_affinity(before)
    if len(gaps) < MIN_PREEMPTIONS:
        return Preemption(0.0, len(gaps))
    quantum = statistics.median(b - a for a, b in gaps) * 1e3
    return Preemption(quantum, len(gaps), *tick_grid([b for _, b in gaps], quantum))
