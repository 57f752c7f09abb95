"""How often a busy co-runner takes the CPU at a scheduler tick, by how long the thread it takes
it from has run since it woke: the hazard behind the model's wake-up credit ``C`` and share ``p``
(``interference.wake_credit_ms``, ``preempt_share``), measured with no DNN and no fit.

A thread pinned beside one co-runner pinned to the same CPU sleeps as the deploy loop does
(a random 20-30 ms, so it wakes at every phase of the tick), then spins on the clock for
``--spin-ms`` (:func:`runtime.preemption.spin_gaps`); a gap in its clock is the co-runner holding
the CPU. The profiler's probe (:func:`runtime.preemption.measure_preemption`) first finds the tick
grid; each tick that came while the thread ran is counted, with the time the thread had run since
its wake, as *taken* (the thread's first gap starts at it) or *passed* (it ran on). The table
gives the share taken per 0.25 ms of run since the wake. Ticks after a wake's first gap are not
counted: the co-runner had had its turn, or, where the gap started between ticks, something other
than a tick took the CPU (such wakes are counted apart; the ticks they passed before it count).
A wake the kernel deferred to a tick (the co-runner held the CPU when the timer fired) meets its
first tick a whole period later, which is why the row just under the period holds more ticks.
The probe has no threads beyond the one and its co-runner: beside a runtime's own threads and two
busy ones, live runs meet higher shares (README, "Why torch stays over 10% here").

    python docs/live/wake_hazard.py --wakes 1000
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

from runtime.preemption import beside_one_co_runner, measure_preemption, spin_gaps, tick_nsec, tick_phase_ms
from runtime.sysfs import LiveError

#: width (ms of run since the wake) of the table's rows
BIN_MS = 0.25
#: a gap that starts up to this long before a tick's time (where the probe saw gaps end: the tick
#: plus the switch back, tens of microseconds), or up to :data:`LATE_MS` after it, started at the tick
AT_TICK_MS = 0.3
#: how long after a tick's time a gap may start and still be the tick's
LATE_MS = 0.1


def hazard(
    wakes: list[tuple[float, list[tuple[float, float]]]], hz: int, offset_ms: float, spin_ms: float
) -> tuple[dict[int, list[int]], int]:
    """Ticks passed and taken by bin of run since the wake (see the module's docstring).

    :param wakes: per wake, :func:`runtime.preemption.spin_gaps`'s (start, gaps)
    :param hz: the kernel's tick rate (:attr:`runtime.preemption.Preemption.tick_hz`, > 0)
    :param offset_ms: the grid's phase (:attr:`runtime.preemption.Preemption.tick_offset_ms`)
    :param spin_ms: how long each wake spun: later ticks were not seen
    :return: ({bin: [ticks, taken]}, how many wakes' first gap started between ticks, uncounted)
    """
    period = tick_nsec(hz) / 1e6
    table: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    off_tick = 0
    for start, gaps in wakes:
        first_gap = (gaps[0][0] - start) * 1e3 if gaps else None
        at = period - tick_phase_ms(round(start * 1e9), hz, offset_ms)  # the first tick, ms after the wake
        while at < spin_ms:
            if first_gap is not None and first_gap < at - AT_TICK_MS:
                off_tick += 1  # the CPU was taken between ticks: not a tick's doing
                break
            taken = first_gap is not None and first_gap <= at + LATE_MS
            row = table[int(at // BIN_MS)]
            row[0] += 1
            row[1] += taken
            if taken:
                break
            at += period
    return table, off_tick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", type=int, default=1, help="the CPU the thread and its co-runner share")
    ap.add_argument("--wakes", type=int, default=1000, help="how many times the thread wakes")
    ap.add_argument("--spin-ms", type=float, default=6.0, help="how long it runs after each wake")
    args = ap.parse_args()
    if args.wakes < 1 or args.spin_ms <= 0:
        ap.error("--wakes must be at least 1 and --spin-ms above 0")
    try:
        probe = measure_preemption("cpu", args.cpu)
        if not probe.tick_hz:
            raise SystemExit(f"the probe found no tick grid on cpu {args.cpu} ({probe}): nothing to count ticks against")
        rng = random.Random(0)
        wakes = []
        with beside_one_co_runner("cpu", args.cpu):
            for _ in range(args.wakes):
                time.sleep(0.02 + 0.01 * rng.random())
                wakes.append(spin_gaps(args.spin_ms / 1e3))
    except LiveError as exc:
        ap.exit(2, f"--cpu {args.cpu}: {exc}\n")
    table, off_tick = hazard(wakes, probe.tick_hz, probe.tick_offset_ms, args.spin_ms)
    print(
        f"tick {probe.tick_hz} Hz, quantum {probe.quantum_ms:.2f} ms; {args.wakes} wakes on cpu {args.cpu} beside one busy thread"
    )
    print(f"{'ms run since the wake':>22} {'ticks':>6} {'taken':>6}")
    for b, (ticks, taken) in sorted(table.items()):
        print(f"{b * BIN_MS:>10.2f} - {(b + 1) * BIN_MS:<9.2f} {ticks:>6} {taken / ticks:>6.0%}")
    print(f"{off_tick} wakes' first gap started between ticks (not counted)")


if __name__ == "__main__":
    main()
