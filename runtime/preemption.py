"""How long a co-runner holds a CPU once it preempts us: the model's ``interference.quantum_ms``.

The Linux scheduler (CFS, EEVDF) does not share a CPU as a fluid: a busy co-runner that takes
the CPU keeps it until the next scheduler tick at which its slice is used up, so a DNN sharing
a core waits in whole quanta (one tick, 4 ms at ``CONFIG_HZ=250``) and one request waits for
none of them while the next waits 4 ms. The probe measures that quantum directly, not from the
kernel's configuration: a thread spinning on the clock, pinned beside one co-runner pinned to
the same CPU, sees every time the co-runner held the CPU as a gap in its own clock; the median
gap is the quantum.

The same gaps show where the ticks fall: each ends when a tick hands the CPU back. Within one
boot the kernel's ticks keep one phase on ``CLOCK_MONOTONIC`` (the clock
:func:`time.perf_counter` reads; since Linux 6.4 and its stable backports, 6.1.28, 5.15.111,
5.10.180, 5.4.243, that phase is 0), so where the gaps end at one phase of the tick period of a
``CONFIG_HZ`` the kernel can have, the probe reports that HZ, the phase and the boot
(:class:`Preemption`), and the live loop can log how far into a tick each inference started
(``tick_phase_ms``): whether a run crosses a tick is much of what decides whether a co-runner
preempts it. Where the ticks are skewed per CPU (``skew_tick=1``) the probe's CPU says nothing
about the others: no grid.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
#: the ``CONFIG_HZ`` values Linux offers across architectures, slowest first (a co-runner may hold
#: the CPU for several ticks, so the gaps' spacing alone does not give the tick)
KERNEL_HZ = (24, 32, 48, 64, 100, 128, 250, 256, 300, 512, 1000, 1024, 1200)


class Preemption(NamedTuple):
    """What the probe measured.

    :param quantum_ms: the median gap (0.0 when fewer than :data:`MIN_PREEMPTIONS`: a fluid share)
    :param preemptions: how many gaps the spinning thread saw
    :param tick_hz: the kernel's tick rate, where the gaps end on the grid of one of
        :data:`KERNEL_HZ` (0: no grid seen)
    :param tick_offset_ms: where on ``perf_counter`` time modulo the tick period, in [0, period),
        the gaps end: the tick plus the switch back to the spinning thread (tens of microseconds)
    :param aligned: the share of gaps that end within an eighth of a period of that phase
    :param boot_id: the boot the grid was seen in (:func:`boot_id`; the phase may change with the next)
    """

    quantum_ms: float
    preemptions: int
    tick_hz: int = 0
    tick_offset_ms: float = 0.0
    aligned: float = 0.0
    boot_id: str | None = None


def tick_nsec(hz: int) -> int:
    """The kernel's tick in nanoseconds at ``hz`` (``TICK_NSEC``: ``(NSEC_PER_SEC + HZ/2) / HZ``)."""
    return (10**9 + hz // 2) // hz


def boot_id() -> str | None:
    """This boot's id (``/proc/sys/kernel/random/boot_id``; ``None`` where there is none)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def ticks_skewed() -> bool:
    """Whether the kernel was booted with ``skew_tick=1`` (each CPU's tick at its own phase)."""
    try:
        with open("/proc/cmdline") as f:
            return "skew_tick=1" in f.read().split()
    except OSError:
        return False


def _circular(ns: list[int], period: int) -> tuple[float, float]:
    """(circular mean phase in [0, 1), share within an eighth of a period of it) of times ``ns``."""
    angles = [2 * math.pi * (t % period) / period for t in ns]
    mean = math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles))) % (2 * math.pi)
    near = sum(abs((a - mean + math.pi) % (2 * math.pi) - math.pi) < math.pi / 4 for a in angles) / len(angles)
    return mean / (2 * math.pi), near


def kernel_hz() -> int | None:
    """``CONFIG_HZ`` of the running kernel where its configuration is readable (``/proc/config.gz``
    or ``/boot/config-<release>``), else ``None``."""
    import gzip

    release = os.uname().release
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{release}", open)):
        try:
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith("CONFIG_HZ="):
                        return int(line.split("=", 1)[1])
        except (OSError, ValueError):
            continue
    return None


def tick_grid(gaps_s: list[tuple[float, float]], candidates: tuple[int, ...] = KERNEL_HZ) -> tuple[int, float, float]:
    """The tick grid the gaps lie on: (HZ, phase in ms, share aligned); HZ is 0 where for no HZ
    of :data:`KERNEL_HZ` at least :data:`MIN_ALIGNED` of the gaps' starts and ends fall within an
    eighth of a period of one phase.

    Each gap starts at a tick (the co-runner takes the CPU) and ends at one (it hands it back),
    so the starts and ends together fall on every tick a co-runner that holds the CPU for one
    tick at a time passes; the slowest HZ they all fit is the tick (times on a 4 ms grid are
    also on a 1 ms one). A co-runner that holds the CPU for several ticks makes that ambiguous
    (every third tick at 300 Hz is every tick at 100 Hz): where the kernel's configuration says
    its HZ (:func:`kernel_hz`), that is the one candidate. The phase is the circular mean of the
    ends alone, modulo its period.

    :param gaps_s: ``perf_counter`` times (start, end) of the gaps
    :param candidates: the HZ values to try, slowest first
    """
    if len(gaps_s) < MIN_PREEMPTIONS:
        return 0, 0.0, 0.0
    ends = [round(b * 1e9) for _, b in gaps_s]
    both = [round(a * 1e9) for a, _ in gaps_s] + ends
    best = 0.0
    for hz in candidates:
        period = tick_nsec(hz)
        _, near = _circular(both, period)
        if near >= MIN_ALIGNED:
            phase, _ = _circular(ends, period)
            return hz, phase * period / 1e6, near
        best = max(best, near)
    return 0, 0.0, best


def tick_phase_ms(now_ns: int, tick_hz: int, tick_offset_ms: float) -> float:
    """How far into the current tick ``now_ns`` (``perf_counter_ns``) is, in ms.

    :param tick_hz: :attr:`Preemption.tick_hz` (> 0)
    :param tick_offset_ms: :attr:`Preemption.tick_offset_ms`
    """
    period = tick_nsec(tick_hz)
    return ((now_ns - round(tick_offset_ms * 1e6)) % period) / 1e6


def cpu_clock_ns() -> int:
    """This thread's CPU time in ns: the clock a request's time awake (``awake_ms``) is read on.

    The scheduler's wake-up credit is spent by running, not by waiting. A loop that a co-runner
    preempted before its inference started, or that an affinity change moved behind one, is
    given a fresh slice when it runs again, so the wall-clock time since the wake would count
    the wait as credit spent. Measured beside two busy threads: of greedy's requests that had
    been awake over 1.5 ms by the wall clock when the inference started (median 4.5 ms, mostly
    the first of a turn after another controller's), none of 39 waited a quantum, and 3 of 42
    in a second run, where the model, reading the credit as spent, predicted one for each
    (``runs/live-acc7/greedy.jsonl``, ``runs/live-stress7/greedy.jsonl``, 2026-12-04)."""
    return time.thread_time_ns()


def spin_gaps(seconds: float) -> tuple[float, list[tuple[float, float]]]:
    """Spin on the clock for ``seconds`` (wall clock) and note every gap of at least
    :data:`MIN_GAP_MS` in it: the times something else held the CPU.

    :param seconds: how long to spin
    :return: (when the spin started, (start, end) of each gap), ``perf_counter`` seconds
    """
    min_gap = MIN_GAP_MS / 1e3
    clock = time.perf_counter
    start = last = clock()
    end = start + seconds
    gaps: list[tuple[float, float]] = []
    while last < end:
        now = clock()
        if now - last >= min_gap:
            gaps.append((last, now))
        last = now
    return start, gaps


@contextmanager
def beside_one_co_runner(unit: str, cpu: int) -> Iterator[None]:
    """Run this thread pinned to ``cpu`` beside one busy co-runner pinned there too (the load
    generator's worker, up and spinning on entry); the affinity is restored on exit.

    :param unit: the unit's name (the load generator's key)
    :param cpu: the CPU both run on
    :raises runtime.sysfs.LiveError: when this process cannot be pinned to ``cpu``
    """
    before = sorted(os.sched_getaffinity(0))
    set_affinity((cpu,))
    try:
        with LoadGenerator(LoadSchedule((LoadStep(0.0, unit, 1, 0.0),)), {unit: (cpu,)}):
            time.sleep(0.1)  # the worker is up and spinning
            yield
    finally:
        set_affinity(before)


def measure_preemption(unit: str, cpu: int, seconds: float = PROBE_SECONDS) -> Preemption:
    """Spin on ``cpu`` beside one busy co-runner pinned there and time the gaps it causes.

    :param unit: the unit's name (the load generator's key)
    :param cpu: the CPU both run on
    :param seconds: how long to spin
    :raises runtime.sysfs.LiveError: when this process cannot be pinned to ``cpu``
    """
    with beside_one_co_runner(unit, cpu):
        _, gaps = spin_gaps(seconds)
    if len(gaps) < MIN_PREEMPTIONS:
        return Preemption(0.0, len(gaps))
    quantum = statistics.median(b - a for a, b in gaps) * 1e3
    known = kernel_hz()
    hz, offset, aligned = (0, 0.0, 0.0) if ticks_skewed() else tick_grid(gaps, (known,) if known else KERNEL_HZ)
    return Preemption(quantum, len(gaps), hz, offset, aligned, boot_id())
