"""Background load per unit from ``/proc/stat``, less this process's own CPU time."""

from __future__ import annotations

import os
import time
from collections import deque

from runtime.sysfs import LiveError, Sysfs


def cpu_times(proc_stat: str) -> dict[int, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from the text of ``/proc/stat``."""
    out = {}
    for line in proc_stat.splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        vals = [int(v) for v in parts[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        total = sum(vals[:8])  # user..steal; guest time is already counted in user
        out[int(parts[0][3:])] = (total - idle, total)
    return out


def busy_threads(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpus: tuple[int, ...]) -> float:
    """Busy CPUs (0..len(cpus)) over the interval between two :func:`cpu_times` snapshots."""
    busy = 0.0
    for c in cpus:
        b0, t0 = before[c]
        b1, t1 = after[c]
        if t1 > t0:
            busy += (b1 - b0) / (t1 - t0)
    return busy


#: a CPU this busy (all processes) has no idle time left: a co-runner on it is runnable all along
SATURATED = 0.9
#: the least background share of a saturated CPU that counts as a co-runner's (below it, the
#: process saturated the CPU alone)
CO_RUNNER_MIN = 0.1


class LoadMonitor:
    """Background load per unit: busy CPUs from ``/proc/stat`` minus this process's own CPU
    time, over a sliding window of recent samples.

    The load is the co-runners' *demand*: on a CPU with no idle time (:data:`SATURATED`) that a
    co-runner shares with this process, the co-runner counts as one busy thread, not the share
    it got while the DNN ran (a compute-bound co-runner beside a 25 ms inference every 33 ms
    got 0.3 of the CPU: measured as 1.3 busy threads for two of them). That is what the
    platform model's fair share and the simulated env's load mean.

    ``/proc/stat`` counts in ticks of 10 ms, so one request's interval (tens of ms) is too short
    to measure alone; the window (default 0.3 s) smooths that while still following load
    phases that last seconds. The process's own time (the DNN's threads, the controller) is
    attributed to the CPUs it was allowed to run on, which the caller reports with
    :meth:`ran_on`.

    :param fs: the sysfs root (``/proc/stat`` is read through it)
    :param units: CPUs of each unit, in profile order
    :param window_s: length of the sliding window
    """

    def __init__(self, fs: Sysfs, units: list[tuple[int, ...]], window_s: float = 0.3) -> None:
        self.fs, self.units, self.window_s = fs, [tuple(u) for u in units], window_s
        self.cpus = sorted({c for u in self.units for c in u})
        self._pos = {c: j for j, c in enumerate(self.cpus)}
        n = len(self.cpus)
        # per interval: (seconds, busy ticks per CPU, total ticks per CPU, own CPU-seconds per CPU);
        # the window's sums are kept up to date as intervals enter and leave
        self._intervals: deque[tuple[float, list[int], list[int], list[float]]] = deque()
        self._sum_dt, self._sum_busy, self._sum_ticks, self._sum_own = 0.0, [0] * n, [0] * n, [0.0] * n
        self._fd: int | None = None
        self._last = (time.perf_counter(), self._snapshot(), time.process_time())
        self._own = [self._pos[c] for c in sorted(os.sched_getaffinity(0)) if c in self._pos]
        self.per_cpu: dict[int, float] = dict.fromkeys(self.cpus, 0.0)

    def _snapshot(self) -> list[tuple[int, int]]:
        if self._fd is None:  # held open: one pread per sample is several times cheaper than open + read
            self.fs.read("/proc/stat")  # a clear error if it cannot be read
            self._fd = os.open(self.fs.path("/proc/stat"), os.O_RDONLY)
        times = cpu_times(os.pread(self._fd, 1 << 20, 0).decode())
        try:
            return [times[c] for c in self.cpus]
        except KeyError as exc:
            raise LiveError(f"{self.fs.path('/proc/stat')}: no line for cpu{exc.args[0]}") from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def ran_on(self, cpus: tuple[int, ...] | list[int]) -> None:
        """This process runs on ``cpus`` from now on (for attributing its own time)."""
        self._own = [self._pos[c] for c in cpus if c in self._pos]

    def sample(self) -> list[float]:
        """Busy background threads per unit over the window ending now (0..cores each)."""
        now, snap, own = time.perf_counter(), self._snapshot(), time.process_time()
        t0, snap0, own0 = self._last
        self._last = (now, snap, own)
        n = len(self.cpus)
        busy = [snap[j][0] - snap0[j][0] for j in range(n)]
        ticks = [snap[j][1] - snap0[j][1] for j in range(n)]
        mine = [0.0] * n
        for j in self._own:
            mine[j] = (own - own0) / len(self._own)
        self._add((now - t0, busy, ticks, mine), 1)
        while len(self._intervals) > 1 and self._sum_dt - self._intervals[0][0] >= self.window_s:
            self._add(self._intervals.popleft(), -1)
        wall = self._sum_dt
        for j, c in enumerate(self.cpus):
            frac = self._sum_busy[j] / self._sum_ticks[j] if self._sum_ticks[j] else 0.0
            others = max(0.0, frac - (self._sum_own[j] / wall if wall > 0 else 0.0))
            # a saturated CPU that a co-runner shared with us: it wanted our time too (its demand,
            # what the model's fair share counts, not the share it got)
            self.per_cpu[c] = frac if frac >= SATURATED and others >= CO_RUNNER_MIN else others
        return [min(float(len(u)), sum(self.per_cpu[c] for c in u)) for u in self.units]

    def _add(self, interval: tuple[float, list[int], list[int], list[float]], sign: int) -> None:
        dt, busy, ticks, mine = interval
        if sign > 0:
            self._intervals.append(interval)
        self._sum_dt += sign * dt
        for j in range(len(busy)):
            self._sum_busy[j] += sign * busy[j]
            self._sum_ticks[j] += sign * ticks[j]
            self._sum_own[j] += sign * mine[j]

    def least_loaded(self, cpus: tuple[int, ...], n: int) -> tuple[int, ...]:
        """The ``n`` CPUs of ``cpus`` with the least background load in the last sample (ties:
        the lower-numbered CPU), sorted."""
        ranked = sorted(cpus, key=lambda c: (round(self.per_cpu.get(c, 0.0), 1), c))
        return tuple(sorted(ranked[:n]))
