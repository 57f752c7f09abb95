"""Live Linux backends: sysfs access, cpufreq control with guaranteed restore, /proc/stat load.

Everything goes through one :class:`Sysfs` root, so tests point it at a fake tree shaped like
an XU3 or a Nano. Writing a frequency needs an explicit ``allow_dvfs=True``; the original
governor and frequency of every policy touched are saved before the first write and restored
by :meth:`Cpufreq.restore`, which :func:`restore_on_exit` also runs on normal interpreter
exit and on SIGTERM/SIGINT.

numpy-free and torch-free: this is what the board runs beside the exported policy.
"""

from __future__ import annotations

import atexit
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotation only: nothing extra to install on the board
    from typing_extensions import Self


class LiveError(RuntimeError):
    """A board interface that cannot be used; the message names the file and the reason."""


class Sysfs:
    """Reads and writes files under one root (``/`` on a board, a fake tree in tests).

    :param root: the directory that stands for ``/``
    """

    def __init__(self, root: str | os.PathLike = "/") -> None:
        self.root = Path(root)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def exists(self, p: str) -> bool:
        return self.path(p).exists()

    def read(self, p: str) -> str:
        f = self.path(p)
        try:
            return f.read_text().strip()
        except FileNotFoundError:
            raise LiveError(f"{f}: missing") from None
        except PermissionError:
            raise LiveError(f"{f}: permission denied (reading it needs root on this board)") from None
        except OSError as exc:
            raise LiveError(f"{f}: unreadable ({exc.strerror})") from None

    def write(self, p: str, value: str | int) -> None:
        f = self.path(p)
        try:
            with open(f, "w") as fh:
                fh.write(f"{value}\n")
        except FileNotFoundError:
            raise LiveError(f"{f}: missing") from None
        except PermissionError:
            raise LiveError(f"{f}: permission denied (DVFS control needs root)") from None
        except OSError as exc:
            raise LiveError(f"{f}: write of {value!r} refused ({exc.strerror})") from None


@dataclass(frozen=True)
class CpuPolicy:
    """One cpufreq policy: CPUs that share a clock, and the frequencies it offers (kHz)."""

    cpus: tuple[int, ...]
    freqs_khz: tuple[int, ...]
    directory: str

    @property
    def name(self) -> str:
        return f"cpu{self.cpus[0]}-{self.cpus[-1]}" if len(self.cpus) > 1 else f"cpu{self.cpus[0]}"


class Cpufreq:
    """cpufreq discovery and control (userspace governor + ``scaling_setspeed``).

    :param fs: the sysfs root
    :param allow_dvfs: permit frequency writes (without it :meth:`set_khz` refuses)
    """

    BASE = "/sys/devices/system/cpu"

    def __init__(self, fs: Sysfs, allow_dvfs: bool = False) -> None:
        self.fs = fs
        self.allow_dvfs = allow_dvfs
        self._saved: dict[str, tuple[str, str | None]] = {}
        self.policies = self._discover()

    def _discover(self) -> list[CpuPolicy]:
        base = self.fs.path(self.BASE)
        if not base.is_dir():
            return []
        seen: set[int] = set()
        policies = []
        for d in sorted(base.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
            cpu = int(d.name[3:])
            rel = f"{self.BASE}/{d.name}/cpufreq"
            if cpu in seen or not self.fs.exists(rel):
                continue
            related = self.fs.read(f"{rel}/related_cpus") if self.fs.exists(f"{rel}/related_cpus") else str(cpu)
            cpus = tuple(sorted(int(c) for c in related.split()))
            avail = f"{rel}/scaling_available_frequencies"
            freqs = tuple(sorted(int(f) for f in self.fs.read(avail).split())) if self.fs.exists(avail) else ()
            policies.append(CpuPolicy(cpus, freqs, rel))
            seen.update(cpus)
        return policies

    def policy_of(self, cpu: int) -> CpuPolicy:
        for p in self.policies:
            if cpu in p.cpus:
                return p
        raise LiveError(f"cpu{cpu}: no cpufreq policy (this board offers: {', '.join(p.name for p in self.policies) or 'none'})")

    def can_control(self, policy: CpuPolicy) -> tuple[bool, str]:
        """Whether frequencies can be pinned on ``policy``, and why not."""
        if not policy.freqs_khz:
            return False, f"{policy.directory}/scaling_available_frequencies missing (no discrete DVFS table)"
        govs = (
            self.fs.read(f"{policy.directory}/scaling_available_governors")
            if self.fs.exists(f"{policy.directory}/scaling_available_governors")
            else ""
        )
        if "userspace" not in govs.split():
            return False, f"{policy.directory}: the userspace governor is not available"
        if not os.access(self.fs.path(f"{policy.directory}/scaling_setspeed"), os.W_OK):
            return False, f"{policy.directory}/scaling_setspeed is not writable (needs root)"
        return True, ""

    def current_khz(self, cpu: int) -> int:
        return int(self.fs.read(f"{self.policy_of(cpu).directory}/scaling_cur_freq"))

    def set_khz(self, cpu: int, khz: int) -> None:
        """Pin the policy of ``cpu`` to ``khz`` (saving its original settings first)."""
        p = self.policy_of(cpu)
        if not self.allow_dvfs:
            raise LiveError(f"{p.name}: DVFS writes are off; pass --allow-dvfs to let dynscale set frequencies")
        if khz not in p.freqs_khz:
            raise LiveError(f"{p.name}: {khz} kHz is not offered; valid: {', '.join(map(str, p.freqs_khz))}")
        d = p.directory
        if d not in self._saved:
            gov = self.fs.read(f"{d}/scaling_governor")
            speed = self.fs.read(f"{d}/scaling_setspeed") if gov == "userspace" else None
            self._saved[d] = (gov, speed)
        self.fs.write(f"{d}/scaling_governor", "userspace")
        self.fs.write(f"{d}/scaling_setspeed", khz)

    def restore(self) -> list[str]:
        """Put back every saved governor (and userspace frequency); returns the policies restored."""
        done = []
        for d, (gov, speed) in list(self._saved.items()):
            if gov == "userspace" and speed is not None and speed.isdigit():
                self.fs.write(f"{d}/scaling_setspeed", speed)
            self.fs.write(f"{d}/scaling_governor", gov)
            del self._saved[d]
            done.append(d)
        return done

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def restore_on_exit(cpufreq: Cpufreq) -> None:
    """Restore ``cpufreq``'s saved settings at interpreter exit and on SIGTERM / SIGINT."""
    atexit.register(cpufreq.restore)

    def handler(signum, _frame):
        cpufreq.restore()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die of the same signal, as the caller expects

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


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
