"""How often a busy co-runner takes the CPU at a scheduler tick, by how long the thread it takes
it from has run since it woke: the hazard behind the model's wake-up credit ``C`` and share ``p``
(``interference.wake_credit_ms``, ``preempt_share``), measured with no DNN and no fit.

A thread pinned beside one co-runner pinned to the same CPU sleeps as the deploy loop does
(a random 20-30 ms, so it wakes at every phase of the tick), then spins on the clock for
``--spin-ms``; a gap in its clock is the co-runner holding the CPU. The profiler's probe
(:func:`runtime.preemption.measure_preemption`) first finds the tick grid; each tick that came
while the thread ran is counted, with the time the thread had run since its wake, as *taken*
(the thread's first gap starts there) or *passed* (it ran on). The table gives the share taken
per 0.25 ms of run since the wake (ticks after the first gap are not counted: the co-runner had
had its turn).

    python docs/live/wake_hazard.py --wakes 1000
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

from runtime.loadgen import LoadGenerator, LoadSchedule, LoadStep
from runtime.preemption import MIN_GAP_MS, measure_preemption, tick_nsec, tick_phase_ms
from runtime.topology import set_affinity

#: width (ms of run since the wake) of the table's rows
BIN_MS = 0.25
#: a gap that starts within this of a tick started at it (the switch takes tens of microseconds)
AT_TICK_MS = 0.3


def spin(seconds: float) -> tuple[float, list[float]]:
    """Spin for ``seconds`` of wall-clock time: (start, starts of the gaps), ``perf_counter`` s."""
    clock, min_gap = time.perf_counter, MIN_GAP_MS / 1e3
    start = last = clock()
    gaps = []
    while last < start + seconds:
        now = clock()
        if now - last >= min_gap:
            gaps.append(last)
        last = now
    return start, gaps


def hazard(wakes: list[tuple[float, list[float]]], hz: int, offset_ms: float, spin_ms: float) -> dict[int, list[int]]:
    """Per bin of run since the wake: [ticks, taken] (see the module's docstring)."""
    period = tick_nsec(hz) / 1e6
    table: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for start, gaps in wakes:
        first_gap = (gaps[0] - start) * 1e3 if gaps else spin_ms
        at = period - tick_phase_ms(round(start * 1e9), hz, offset_ms)  # the first tick, ms after the wake
        while at <= min(first_gap + AT_TICK_MS, spin_ms):
            taken = bool(gaps) and abs(at - first_gap) < AT_TICK_MS
            row = table[int(at // BIN_MS)]
            row[0] += 1
            row[1] += taken
            if taken:
                break
            at += period
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", type=int, default=1, help="the CPU the thread and its co-runner share")
    ap.add_argument("--wakes", type=int, default=1000, help="how many times the thread wakes")
    ap.add_argument("--spin-ms", type=float, default=6.0, help="how long it runs after each wake")
    args = ap.parse_args()
    probe = measure_preemption("cpu", args.cpu)
    if not probe.tick_hz:
        raise SystemExit(f"the probe found no tick grid on cpu {args.cpu} ({probe}): nothing to count ticks against")
    rng = random.Random(0)
    wakes = []
    set_affinity((args.cpu,))
    with LoadGenerator(LoadSchedule((LoadStep(0.0, "cpu", 1, 0.0),)), {"cpu": (args.cpu,)}):
        time.sleep(0.1)
        for _ in range(args.wakes):
            time.sleep(0.02 + 0.01 * rng.random())
            wakes.append(spin(args.spin_ms / 1e3))
    print(
        f"tick {probe.tick_hz} Hz, quantum {probe.quantum_ms:.2f} ms; {args.wakes} wakes on cpu {args.cpu} beside one busy thread"
    )
    print(f"{'ms run since the wake':>22} {'ticks':>6} {'taken':>6}")
    for b, (ticks, taken) in sorted(hazard(wakes, probe.tick_hz, probe.tick_offset_ms, args.spin_ms).items()):
        print(f"{b * BIN_MS:>10.2f} - {(b + 1) * BIN_MS:<9.2f} {ticks:>6} {taken / ticks:>6.0%}")


if __name__ == "__main__":
    main()
