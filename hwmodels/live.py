"""Live Linux backends: sysfs access, cpufreq and GPU devfreq control with guaranteed restore,
power rails (INA231, INA3221), RAPL counters, NVML, thermal zones, CPU topology, and background
load from /proc/stat less this process's own CPU time.

Everything goes through one :class:`Sysfs` root, so tests point it at a fake tree shaped like
an XU3 or a Nano. Writing a frequency needs an explicit ``allow_dvfs=True``; the original
governor and frequency of every policy touched are saved before the first write and restored
by :meth:`Cpufreq.restore`, which :func:`restore_on_exit` also runs on normal interpreter
exit and on SIGTERM/SIGINT. :class:`hwmodels.board.LiveBoard` puts these together.

numpy-free and torch-free: this is what the board runs beside the exported policy.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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


class Restorable(Protocol):
    """Anything that puts the board back as it found it (DVFS controls, the load generator)."""

    def restore(self) -> list[str]: ...


def restore_on_exit(*things: Restorable) -> Callable[[], None]:
    """Restore ``things`` at interpreter exit and on SIGTERM / SIGINT (then die of that signal,
    as the caller expects).

    :return: the function to call on a normal end: it restores them all and puts back the
        signal handlers and exit hooks it replaced
    """

    def restore_all() -> None:
        for t in things:
            t.restore()

    def handler(signum, _frame):
        restore_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    atexit.register(restore_all)
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def finish() -> None:
        restore_all()
        atexit.unregister(restore_all)
        for sig, h in previous.items():
            signal.signal(sig, h)

    return finish


@dataclass(frozen=True)
class PowerRail:
    """One power reading: a rail name and the file that gives its power, with the unit scale."""

    name: str
    path: str
    watts_per_unit: float
    enable: str | None = None


#: XU3 INA231 addresses -> rail (mainline exynos5422-odroidxu3.dts; FACTS A)
INA231_RAILS = {"0040": "a15", "0041": "mem", "0044": "gpu", "0045": "a7"}
#: Nano INA3221 rail names -> rail (energymon JetsonPowerRails; FACTS A)
INA3221_RAILS = {"POM_5V_IN": "total", "POM_5V_CPU": "a57", "POM_5V_GPU": "gpu"}


def discover_power_rails(fs: Sysfs) -> list[PowerRail]:
    """Power rails the board exposes: XU3 INA231 (bus discovered by listing), Nano INA3221."""
    rails: list[PowerRail] = []
    ina231 = fs.path("/sys/bus/i2c/drivers/INA231")
    if ina231.is_dir():
        for dev in sorted(ina231.iterdir()):
            addr = dev.name.split("-")[-1]
            if addr in INA231_RAILS and (dev / "sensor_W").exists():
                rel = f"/sys/bus/i2c/drivers/INA231/{dev.name}"
                rails.append(PowerRail(INA231_RAILS[addr], f"{rel}/sensor_W", 1.0, f"{rel}/enable"))
    for drv in ("ina3221x",):
        base = fs.path(f"/sys/bus/i2c/drivers/{drv}")
        if not base.is_dir():
            continue
        for iio in sorted(base.glob("*/iio:device*")):
            for name_file in sorted(iio.glob("rail_name_*")):
                n = name_file.name.rsplit("_", 1)[-1]
                label = name_file.read_text().strip()
                rel = f"/{iio.relative_to(fs.root)}/in_power{n}_input"
                if fs.exists(rel):
                    rails.append(PowerRail(INA3221_RAILS.get(label, label.lower()), rel, 1e-3))
    return rails


def read_power_w(fs: Sysfs, rail: PowerRail) -> float:
    """Instantaneous power of ``rail`` in watts (enabling an INA231 sensor on first use)."""
    if rail.enable and fs.read(rail.enable) != "1":
        fs.write(rail.enable, 1)
    return float(fs.read(rail.path)) * rail.watts_per_unit


@dataclass(frozen=True)
class EnergyCounter:
    """A cumulative energy counter (Intel/AMD RAPL through powercap), in microjoules."""

    name: str
    path: str
    max_range_uj: int


def discover_energy_counters(fs: Sysfs) -> list[EnergyCounter]:
    """RAPL domains under ``/sys/class/powercap`` (package, core, dram, ...)."""
    out = []
    base = fs.path("/sys/class/powercap")
    if base.is_dir():
        for d in sorted(base.glob("intel-rapl:*")):
            rel = f"/sys/class/powercap/{d.name}"
            if fs.exists(f"{rel}/energy_uj") and fs.exists(f"{rel}/name"):
                rng = int(fs.read(f"{rel}/max_energy_range_uj")) if fs.exists(f"{rel}/max_energy_range_uj") else 0
                out.append(EnergyCounter(f"{fs.read(f'{rel}/name')}:{d.name.split(':', 1)[1]}", f"{rel}/energy_uj", rng))
    return out


def energy_j(before_uj: int, after_uj: int, counter: EnergyCounter) -> float:
    """Energy between two readings of ``counter``, allowing for one wrap of the counter."""
    delta = after_uj - before_uj
    if delta < 0:
        if counter.max_range_uj <= 0:
            raise LiveError(f"{counter.path}: counter went backwards and its range is unknown")
        delta += counter.max_range_uj
    return delta / 1e6


def set_affinity(cpus: list[int] | tuple[int, ...], pid: int = 0) -> None:
    """Pin ``pid`` (0: this process) to ``cpus``; a clear error for CPUs that are not online."""
    try:
        os.sched_setaffinity(pid, set(cpus))
    except OSError as exc:
        allowed = sorted(os.sched_getaffinity(pid))
        raise LiveError(f"cannot run on cpus {sorted(cpus)} ({exc.strerror}); this process may use {allowed}") from None


def thermal_zones(fs: Sysfs) -> dict[str, str]:
    """Thermal zone type -> its temperature file (millidegrees C)."""
    out = {}
    base = fs.path("/sys/class/thermal")
    if base.is_dir():
        for z in sorted(base.glob("thermal_zone*"), key=lambda p: int(p.name[12:] or 0)):
            if (z / "type").exists() and (z / "temp").exists():
                out.setdefault(z.joinpath("type").read_text().strip(), f"/sys/class/thermal/{z.name}/temp")
    return out


def read_temp_c(fs: Sysfs, path: str) -> float:
    return int(fs.read(path)) / 1000.0


def online_cpus(fs: Sysfs) -> list[int]:
    """Online logical CPUs from ``/sys/devices/system/cpu/online`` (``0-3,6``), else all of them."""
    text = (
        fs.read("/sys/devices/system/cpu/online")
        if fs.exists("/sys/devices/system/cpu/online")
        else f"0-{(os.cpu_count() or 1) - 1}"
    )
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def board_info(fs: Sysfs) -> dict:
    """What the board offers and what dynscale can do with it (``dynscale board info``)."""
    cf = Cpufreq(fs)
    units = []
    for p in cf.policies:
        ok, why = cf.can_control(p)
        cap = fs.path(f"/sys/devices/system/cpu/cpu{p.cpus[0]}/cpu_capacity")
        units.append(
            {
                "name": p.name,
                "kind": "cpu",
                "cpus": list(p.cpus),
                "capacity": int(cap.read_text()) if cap.exists() else None,
                "freqs_mhz": [f / 1000 for f in p.freqs_khz],
                "dvfs_control": ok,
                "why_not": why or None,
            }
        )
    if not units:  # no cpufreq (a VM, a container): the CPUs are still there, without DVFS
        units.append(
            {
                "name": "cpu",
                "kind": "cpu",
                "cpus": online_cpus(fs),
                "capacity": None,
                "freqs_mhz": [],
                "dvfs_control": False,
                "why_not": f"{fs.path(Cpufreq.BASE)}/cpu*/cpufreq missing (no cpufreq driver)",
            }
        )
    gpu = GpuDevfreq(fs)
    if gpu.present:
        writable = os.access(fs.path(f"{gpu.directory}/min_freq"), os.W_OK)
        units.append(
            {
                "name": "gpu",
                "kind": "gpu",
                "freqs_mhz": [f / 1e6 for f in gpu.freqs_hz],
                "dvfs_control": writable,
                "why_not": None if writable else f"{gpu.directory}/min_freq is not writable (needs root)",
            }
        )
    rails = discover_power_rails(fs)
    nvml = Nvml()
    return {
        "root": str(fs.root),
        "units": units,
        "power_rails": {r.name: r.path for r in rails},
        "power": "measured" if rails else "none: no INA231, INA3221 or other supported sensor; energy can only be estimated",
        "energy_counters": {c.name: c.path for c in discover_energy_counters(fs)},
        "nvml": nvml.devices if nvml.available else f"none: {nvml.why_not}",
        "cpu_clusters": [list(c) for c in cpu_clusters(fs)],
        "thermal_zones": thermal_zones(fs),
    }


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


def cpu_clusters(fs: Sysfs) -> list[tuple[int, ...]]:
    """Online CPUs grouped into clusters: same package, same cluster id (where the kernel knows
    one: 65535 and -1 mean unknown) and same ``cpu_capacity`` (big.LITTLE)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for cpu in online_cpus(fs):
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        key = []
        for name in (f"{topo}/physical_package_id", f"{topo}/cluster_id", f"/sys/devices/system/cpu/cpu{cpu}/cpu_capacity"):
            v = fs.read(name) if fs.exists(name) else ""
            key.append("" if v in ("65535", "-1") else v)
        groups.setdefault(tuple(key), []).append(cpu)
    return sorted((tuple(c) for c in groups.values()), key=lambda c: c[0])


def nominal_cpu_mhz(fs: Sysfs) -> float | None:
    """The clock /proc/cpuinfo reports for the first CPU (machines without cpufreq), if any."""
    if not fs.exists("/proc/cpuinfo"):
        return None
    for line in fs.read("/proc/cpuinfo").splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("cpu MHz", "CPU MHz"):
            try:
                return float(val)
            except ValueError:
                return None
    return None


class Nvml:
    """Power of CUDA GPUs through NVML (``libnvidia-ml.so.1``), where a driver provides it.

    ``available`` says whether it works; ``why_not`` says why it does not.
    """

    def __init__(self) -> None:
        self.why_not = ""
        self._lib = None
        self.devices: list[str] = []
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            self.why_not = "libnvidia-ml.so.1 not found (no NVIDIA driver)"
            return
        if lib.nvmlInit_v2() != 0:
            self.why_not = "nvmlInit failed (driver not loaded?)"
            return
        count = ctypes.c_uint(0)
        lib.nvmlDeviceGetCount_v2(ctypes.byref(count))
        for i in range(count.value):
            h = ctypes.c_void_p()
            name = ctypes.create_string_buffer(96)
            lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(h))
            lib.nvmlDeviceGetName(h, name, 96)
            self.devices.append(name.value.decode(errors="replace"))
        self._lib = lib
        if not self.devices:
            self.why_not = "NVML sees no GPU"

    @property
    def available(self) -> bool:
        return bool(self.devices)

    def power_w(self, index: int = 0) -> float:
        """Board power of GPU ``index`` (W)."""
        if not self.available:
            raise LiveError(f"nvml: {self.why_not}")
        h = ctypes.c_void_p()
        mw = ctypes.c_uint(0)
        self._lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(h))
        if self._lib.nvmlDeviceGetPowerUsage(h, ctypes.byref(mw)) != 0:
            raise LiveError(f"nvml: GPU {index} does not report power")
        return mw.value / 1e3


class LoadMonitor:
    """Background load per unit: busy CPUs from ``/proc/stat`` minus this process's own CPU
    time, over a sliding window of recent samples.

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
            self.per_cpu[c] = max(0.0, frac - (self._sum_own[j] / wall if wall > 0 else 0.0))
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
