"""How long a co-runner holds a CPU once it preempts us: the model's ``interference.quantum_ms``.

The Linux scheduler (CFS, EEVDF) does not share a CPU as a fluid: a busy co-runner that takes
the CPU keeps it until the next scheduler tick at which its slice is used up, so a DNN sharing
a core waits in whole quanta (one tick, 4 ms at ``CONFIG_HZ=250``) and one request waits for
none of them while the next waits 4 ms. The probe measures that quantum directly, not from the
kernel's configuration: a thread spinning on the clock, pinned beside one co-runner pinned to
the same CPU, sees every time the co-runner held the CPU as a gap in its own clock; the median
gap is the quantum.
"""

from __future__ import annotations

import os
import statistics
import time

from runtime.loadgen import LoadGenerator, LoadSchedule, LoadStep
from runtime.topology import set_affinity

#: a gap in the spinning thread's clock at least this long is a preemption (a clock read is ~0.1 us;
#: interrupts and page faults take microseconds)
MIN_GAP_MS = 0.5
#: the probe needs at least this many preemptions for its median to mean something
MIN_PREEMPTIONS = 10
#: how long the probe spins (at a 4 ms tick, about 75 preemptions)
PROBE_SECONDS = 0.6


def measure_quantum_ms(unit: str, cpu: int, seconds: float = PROBE_SECONDS) -> tuple[float, int]:
    """Spin on ``cpu`` beside one busy co-runner pinned there and time the gaps it causes.

    :param unit: the unit's name (the load generator's key)
    :param cpu: the CPU both run on
    :param seconds: how long to spin
    :return: (median gap in ms, number of gaps); (0.0, n) when fewer than
        :data:`MIN_PREEMPTIONS` gaps were seen (the CPU was shared finely: a fluid share)
    :raises runtime.sysfs.LiveError: when this process cannot be pinned to ``cpu``
    """
    before = sorted(os.sched_getaffinity(0))
    set_affinity((cpu,))
    gaps: list[float] = []
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
                    gaps.append(now - last)
                last = now
    finally:
        set_affinity(before)
    if len(gaps) < MIN_PREEMPTIONS:
        return 0.0, len(gaps)
    return statistics.median(gaps) * 1e3, len(gaps)
