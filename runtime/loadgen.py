"""Real background load from a schedule: worker processes pinned to a unit's CPUs.

Schedule CSV (header required; rows in time order)::

    t_s, unit, threads, mem_intensity

From ``t_s`` seconds after the start, ``unit`` runs ``threads`` busy workers whose memory
intensity is ``mem_intensity`` (0: compute-bound, 1: streaming memory); that holds until the
unit's next row. The last rows hold to the end, unless the schedule repeats (``repeat_s``:
``--load-repeat-s``): then time runs modulo ``repeat_s`` (a 160 s cycle of phases covers a
``compare --live`` of any length alike). Worker j of a unit is pinned to the unit's CPUs from the highest-numbered
down (one per CPU, wrapping round when there are more workers than CPUs), so a load of one
thread on a two-core unit leaves one core free, as a co-runner pinned by the OS would.

Workers are separate processes (:mod:`runtime.load_worker`) that die with their parent; the
generator stops them on :meth:`LoadGenerator.restore`, which :func:`runtime.sysfs.restore_on_exit`
also runs on exit, SIGINT and SIGTERM.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dnn.fileio import read_csv_rows
from hwmodels.model import MAX_LOAD_THREADS_PER_CORE
from runtime.sysfs import LiveError

if TYPE_CHECKING:
    from typing_extensions import Self

COLUMNS = ("t_s", "unit", "threads", "mem_intensity")


@dataclass(frozen=True)
class LoadStep:
    """From ``t_s`` on, ``unit`` runs ``threads`` workers of memory intensity ``mem``."""

    t_s: float
    unit: str
    threads: int
    mem: float


@dataclass(frozen=True)
class LoadSchedule:
    """A validated load schedule (steps in time order)."""

    steps: tuple[LoadStep, ...]
    path: str = ""
    repeat_s: float | None = None

    @property
    def duration_s(self) -> float:
        return self.steps[-1].t_s if self.steps else 0.0

    def at(self, t_s: float) -> dict[str, tuple[int, float]]:
        """(threads, mem) per unit in force at ``t_s`` (units not yet named: absent)."""
        if self.repeat_s:
            t_s %= self.repeat_s
        now: dict[str, tuple[int, float]] = {}
        for s in self.steps:
            if s.t_s > t_s:
                break
            now[s.unit] = (s.threads, s.mem)
        return now


def load_schedule(path: str | os.PathLike, units: dict[str, tuple[int, ...]], repeat_s: float | None = None) -> LoadSchedule:
    """Read and validate a schedule CSV against the board's units.

    :param units: unit name -> its CPUs (GPU units cannot carry CPU workers)
    :param repeat_s: repeat the schedule every ``repeat_s`` seconds (after its last row's ``t_s``)
    :raises LiveError: naming the file, row and column at fault
    """
    p = Path(path)
    rows = read_csv_rows(p, LiveError, "load schedule")
    if not rows or [c.strip() for c in rows[0]] != list(COLUMNS):
        raise LiveError(f"{p}: header must be {','.join(COLUMNS)}, got {','.join(rows[0]) if rows else 'nothing'}")
    steps: list[LoadStep] = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(COLUMNS):
            raise LiveError(f"{p}: row {n} has {len(row)} columns, expected {len(COLUMNS)}")
        t, unit, threads, mem = (c.strip() for c in row)
        try:
            t_s = float(t)
            if not math.isfinite(t_s) or t_s < 0:
                raise ValueError
        except ValueError:
            raise LiveError(f"{p}: row {n}, column 't_s': {t!r} is not a time >= 0") from None
        if steps and t_s < steps[-1].t_s:
            raise LiveError(f"{p}: row {n}, column 't_s': {t_s:g} comes before the previous row's {steps[-1].t_s:g}")
        if unit not in units:
            raise LiveError(f"{p}: row {n}, column 'unit': unknown unit {unit!r}; valid: {', '.join(units)}")
        if not units[unit]:
            raise LiveError(f"{p}: row {n}, column 'unit': {unit} has no CPUs to run load workers on")
        if not threads.isdigit():
            raise LiveError(f"{p}: row {n}, column 'threads': {threads!r} is not a whole number >= 0")
        most = int(MAX_LOAD_THREADS_PER_CORE * len(units[unit]))
        if int(threads) > most:
            raise LiveError(
                f"{p}: row {n}, column 'threads': {unit} has {len(units[unit])} CPU(s); "
                f"at most {most} workers ({MAX_LOAD_THREADS_PER_CORE:g} per CPU), got {threads}"
            )
        try:
            m = float(mem)
            if not 0.0 <= m <= 1.0:
                raise ValueError
        except ValueError:
            raise LiveError(f"{p}: row {n}, column 'mem_intensity': {mem!r} is not in [0, 1]") from None
        steps.append(LoadStep(t_s, unit, int(threads), m))
    if not steps:
        raise LiveError(f"{p}: no rows after the header")
    if repeat_s is not None and not repeat_s > steps[-1].t_s:
        raise LiveError(f"--load-repeat-s {repeat_s:g}: must come after the last row of {p} (t_s {steps[-1].t_s:g})")
    return LoadSchedule(tuple(steps), str(p), repeat_s)


class LoadGenerator:
    """Starts and stops pinned worker processes to follow a :class:`LoadSchedule`.

    Call :meth:`start` once, then :meth:`tick` as often as the schedule needs following (the
    deploy loop calls it before each request); :meth:`restore` stops every worker.

    :param schedule: the load schedule
    :param units: unit name -> its CPUs
    """

    def __init__(self, schedule: LoadSchedule, units: dict[str, tuple[int, ...]]) -> None:
        self.schedule = schedule
        self.units = units
        self._workers: dict[str, list[subprocess.Popen]] = {u: [] for u in units}
        self._mem: dict[str, float] = {u: 0.0 for u in units}
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.tick()

    def elapsed_s(self) -> float:
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def tick(self) -> dict[str, tuple[int, float]]:
        """Bring the workers in line with the schedule now; returns (threads, mem) per unit."""
        want = self.schedule.at(self.elapsed_s())
        for unit in self.units:
            threads, mem = want.get(unit, (0, 0.0))
            running = self._workers[unit]
            if mem != self._mem[unit]:  # another kind of load: replace the workers
                self._stop(running)
                running.clear()
                self._mem[unit] = mem
            while len(running) > threads:
                self._stop([running.pop()])
            while len(running) < threads:
                running.append(self._spawn(unit, len(running), mem))
        return self.running()

    def running(self) -> dict[str, tuple[int, float]]:
        return {u: (len(w), self._mem[u]) for u, w in self._workers.items()}

    def pids(self) -> list[int]:
        return [w.pid for ws in self._workers.values() for w in ws]

    def restore(self) -> list[str]:
        """Stop every worker (and wait for it); returns a line per unit that had workers."""
        done = []
        for unit, ws in self._workers.items():
            if ws:
                self._stop(ws)
                done.append(f"load on {unit}: {len(ws)} worker(s) stopped")
                ws.clear()
        return done

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _spawn(self, unit: str, j: int, mem: float) -> subprocess.Popen:
        cpus = self.units[unit]
        cpu = cpus[-1 - (j % len(cpus))]
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.load_worker", repr(mem), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        try:
            os.sched_setaffinity(proc.pid, {cpu})
        except OSError as exc:
            proc.kill()
            proc.wait()
            raise LiveError(f"load worker: cannot pin to cpu{cpu} ({exc.strerror})") from None
        return proc

    @staticmethod
    def _stop(workers: list[subprocess.Popen]) -> None:
        for w in workers:
            if w.poll() is None:
                w.kill()
        for w in workers:
            w.wait()
