"""DVFS control: cpufreq policies (userspace governor + ``scaling_setspeed``) and the GPU's
devfreq device (min = max pin), each saving the original settings before the first write and
putting them back on ``restore()``.

Writing a frequency needs an explicit ``allow_dvfs=True`` and a frequency the device offers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.sysfs import LiveError, Sysfs

if TYPE_CHECKING:  # annotation only: nothing extra to install on the board
    from typing_extensions import Self


def _check_dvfs_write(name: str, allowed: bool, value: int, offered: tuple[int, ...], unit: str) -> None:
    """Refuse a frequency write without the opt-in, or of a frequency the device does not offer."""
    if not allowed:
        raise LiveError(f"{name}: DVFS writes are off; pass --allow-dvfs to let dynscale set frequencies")
    if value not in offered:
        raise LiveError(f"{name}: {value} {unit} is not offered; valid: {', '.join(map(str, offered))}")


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
        _check_dvfs_write(p.name, self.allow_dvfs, khz, p.freqs_khz, "kHz")
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


class GpuDevfreq:
    """A GPU devfreq device (the Nano's GM20B): pinned by writing ``min_freq = max_freq``.

    :param fs: the sysfs root
    :param allow_dvfs: permit frequency writes
    """

    CANDIDATES = ("/sys/devices/gpu.0/devfreq/57000000.gpu", "/sys/devices/57000000.gpu/devfreq/57000000.gpu")

    def __init__(self, fs: Sysfs, allow_dvfs: bool = False) -> None:
        self.fs, self.allow_dvfs = fs, allow_dvfs
        self.directory = next((d for d in self.CANDIDATES if fs.exists(f"{d}/available_frequencies")), None)
        self.freqs_hz: tuple[int, ...] = ()
        if self.directory:
            self.freqs_hz = tuple(sorted(int(f) for f in fs.read(f"{self.directory}/available_frequencies").split()))
        self._saved: tuple[str, str] | None = None

    @property
    def present(self) -> bool:
        return self.directory is not None

    def current_hz(self) -> int:
        return int(self.fs.read(f"{self._dir()}/cur_freq"))

    def set_hz(self, hz: int) -> None:
        d = self._dir()
        _check_dvfs_write("gpu", self.allow_dvfs, hz, self.freqs_hz, "Hz")
        if self._saved is None:
            self._saved = (self.fs.read(f"{d}/min_freq"), self.fs.read(f"{d}/max_freq"))
        # order matters: the kernel refuses min > max, so widen first, then pin
        if hz > int(self.fs.read(f"{d}/max_freq")):
            self.fs.write(f"{d}/max_freq", hz)
            self.fs.write(f"{d}/min_freq", hz)
        else:
            self.fs.write(f"{d}/min_freq", hz)
            self.fs.write(f"{d}/max_freq", hz)

    def restore(self) -> list[str]:
        if self._saved is None:
            return []
        d = self._dir()
        lo, hi = self._saved
        self.fs.write(f"{d}/max_freq", max(hi, self.fs.read(f"{d}/min_freq"), key=int))
        self.fs.write(f"{d}/min_freq", lo)
        self.fs.write(f"{d}/max_freq", hi)
        self._saved = None
        return [d]

    def _dir(self) -> str:
        if self.directory is None:
            raise LiveError(f"gpu: no devfreq device (looked for {', '.join(self.CANDIDATES)})")
        return self.directory
