"""``LiveBoard``: the machine the runtime runs on, seen through a platform profile's units.

One object answers what the simulated env's state holds (background load per unit, die
temperature, current frequency per unit), applies a configuration (CPU
affinity on the unit's least-loaded cores, DVFS) and meters the energy of
one inference (an INA231/INA3221 rail of the unit, a RAPL package counter, NVML for a CUDA
GPU, or, where the board has none, the platform model's power estimate, marked as such).
The profiler and the deploy loop both use it, so they measure the same way.

Without ``allow_dvfs`` a configuration's frequency is mapped away: the unit runs at whatever
the governor gives it and the delivered frequency is what gets logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.dvfs import Cpufreq, CpuPolicy, GpuDevfreq
from runtime.load import LoadMonitor
from runtime.sensors import (
    Nvml,
    discover_energy_counters,
    discover_power_rails,
    energy_j,
    read_power_w,
    read_temp_c,
    thermal_zones,
)
from runtime.sysfs import LiveError, Sysfs
from runtime.topology import cpu_clusters, nominal_cpu_mhz, online_cpus, set_affinity

#: thermal zone types that stand for the CPU die, most specific first
DIE_ZONES = ("cpu-thermal", "CPU-therm", "x86_pkg_temp", "cpu_thermal", "soc_thermal", "k10temp", "acpitz")


@dataclass(frozen=True)
class LiveUnit:
    """One processing unit of the live board.

    :param name: unit name (as in the platform profile)
    :param kind: ``cpu`` or ``gpu``
    :param cpus: logical CPUs of a CPU unit (the GPU's host thread runs on any)
    :param freqs_mhz: DVFS table offered by the board (one nominal entry where there is no cpufreq)
    """

    name: str
    kind: str
    cpus: tuple[int, ...]
    freqs_mhz: tuple[float, ...]


def discover_units(fs: Sysfs, cuda: bool = False) -> list[LiveUnit]:
    """The board's units: one per cpufreq policy (a clock domain: an XU3 cluster, the Nano's
    A57s); without cpufreq, one per CPU cluster of the topology at the nominal clock; plus the
    CUDA GPU when ``cuda`` (named ``gpu``, devfreq table where the board has one)."""
    cf = Cpufreq(fs)
    units = []
    if cf.policies:
        for p in cf.policies:
            freqs = tuple(f / 1000 for f in p.freqs_khz) or (_policy_max_mhz(fs, p),)
            units.append(LiveUnit(p.name, "cpu", p.cpus, freqs))
    else:
        mhz = nominal_cpu_mhz(fs)
        if mhz is None:
            raise LiveError(f"{fs.path('/proc/cpuinfo')}: no 'cpu MHz' line and no cpufreq: cannot tell the CPU clock")
        clusters = cpu_clusters(fs)
        for i, cpus in enumerate(clusters):
            units.append(LiveUnit("cpu" if len(clusters) == 1 else f"cpu{i}", "cpu", cpus, (round(mhz),)))
    if cuda:
        gpu = GpuDevfreq(fs)
        units.append(LiveUnit("gpu", "gpu", (), tuple(f / 1e6 for f in gpu.freqs_hz) or (0.0,)))
    return units


def _policy_max_mhz(fs: Sysfs, p: CpuPolicy) -> float:
    return int(fs.read(f"{p.directory}/cpuinfo_max_freq")) / 1000


def units_of_spec(spec, fs: Sysfs) -> list[LiveUnit]:
    """Bind a platform profile's units to this machine's CPUs (a CPU unit without ``cpus`` in
    a one-CPU-unit profile takes every online CPU)."""
    online = set(online_cpus(fs))
    cpu_units = [u for u in spec.units if u.kind == "cpu"]
    out = []
    for u in spec.units:
        cpus = tuple(u.cpus)
        if u.kind == "cpu" and not cpus:
            if len(cpu_units) > 1:
                raise LiveError(f"{spec.path}: field 'units.{u.name}.cpus' is needed on a board with several CPU units")
            cpus = tuple(sorted(online))[: u.cores]
        missing = sorted(set(cpus) - online)
        if missing:
            raise LiveError(
                f"{spec.path}: unit {u.name} needs cpus {list(cpus)}, but {missing} are not online here (online: {sorted(online)})"
            )
        out.append(LiveUnit(u.name, u.kind, cpus, tuple(float(f) for f in u.freqs_mhz)))
    return out


class LiveBoard:
    """State, mapping, DVFS and energy metering of the live board.

    :param units: the units, in profile (action) order
    :param fs: the sysfs root
    :param allow_dvfs: let :meth:`apply` write frequencies (and restore them on :meth:`restore`)
    :param window_s: background-load window (see :class:`runtime.load.LoadMonitor`)
    """

    def __init__(self, units: list[LiveUnit], fs: Sysfs | None = None, allow_dvfs: bool = False, window_s: float = 0.3) -> None:
        self.fs = fs or Sysfs("/")
        self.units = units
        self.allow_dvfs = allow_dvfs
        self.cpufreq = Cpufreq(self.fs, allow_dvfs)
        self.gpufreq = GpuDevfreq(self.fs, allow_dvfs)
        self._cpu_units = [i for i, u in enumerate(units) if u.kind == "cpu"]
        self.load = LoadMonitor(self.fs, [u.cpus for u in units if u.kind == "cpu"], window_s)
        self.dvfs = [self._dvfs_control(u) for u in units]
        zones = thermal_zones(self.fs)
        zone = next((zones[z] for z in DIE_ZONES if z in zones), next(iter(zones.values()), None))
        self.temp_path = zone
        self.rails = {r.name: r for r in discover_power_rails(self.fs)}
        self.counters = discover_energy_counters(self.fs)
        self._package = next((c for c in self.counters if c.name.startswith("package")), None)
        self.nvml = Nvml() if any(u.kind == "gpu" for u in units) else None
        self._energy_sources = [self._find_energy_source(u) for u in units]
        self._original_cpus = tuple(sorted(os.sched_getaffinity(0)))
        self.current_cpus = self._original_cpus

    # ------------------------------------------------------------------ what the board offers

    def _dvfs_control(self, u: LiveUnit) -> str | None:
        """Why DVFS of ``u`` cannot be controlled (``None``: it can, and is allowed)."""
        if len(u.freqs_mhz) == 1:
            return "one frequency only"
        if not self.allow_dvfs:
            return "DVFS writes are off (--allow-dvfs)"
        if u.kind == "gpu":
            return None if self.gpufreq.present else "no GPU devfreq device"
        try:
            ok, why = self.cpufreq.can_control(self.cpufreq.policy_of(u.cpus[0]))
        except LiveError as exc:
            return str(exc)
        return None if ok else why

    def describe(self) -> dict:
        """What is measured how (goes into profiles and run logs)."""
        return {
            "units": {
                u.name: {"cpus": list(u.cpus), "freqs_mhz": list(u.freqs_mhz), "dvfs": d or "controlled"}
                for u, d in zip(self.units, self.dvfs)
            },
            "temperature": self.temp_path or "none: no thermal zone; the profile's thermal.start_c is used",
            "energy": {u.name: self.energy_source(i) for i, u in enumerate(self.units)},
        }

    def energy_source(self, unit: int) -> str:
        """How the energy of an inference on ``unit`` is found: ``rail NAME (path)``, ``nvml``,
        ``rapl DOMAIN`` or ``estimate`` (resolved once, when the board is built)."""
        return self._energy_sources[unit]

    def _find_energy_source(self, u: LiveUnit) -> str:
        if u.name in self.rails:
            return f"rail {u.name} ({self.rails[u.name].path})"
        if u.kind == "gpu" and self.nvml is not None and self.nvml.available:
            return "nvml"
        if u.kind == "cpu" and self._package is not None:
            return f"rapl {self._package.name}"
        return "estimate"

    # ------------------------------------------------------------------ state

    def sample_load(self) -> list[float]:
        """Busy background threads per unit (GPU units: 0, time-sharing is not measured)."""
        cpu_load = self.load.sample()
        out = [0.0] * len(self.units)
        for j, i in enumerate(self._cpu_units):
            out[i] = cpu_load[j]
        return out

    def temperature_c(self, default: float) -> float:
        return read_temp_c(self.fs, self.temp_path) if self.temp_path else default

    def freqs_mhz(self) -> list[float]:
        """Current frequency of each unit (its only table entry where nothing can be read)."""
        out = []
        for u in self.units:
            if u.kind == "cpu" and self.cpufreq.policies:
                out.append(self.cpufreq.current_khz(u.cpus[0]) / 1000)
            elif u.kind == "gpu" and self.gpufreq.present:
                out.append(self.gpufreq.current_hz() / 1e6)
            else:
                out.append(u.freqs_mhz[-1])
        return out

    # ------------------------------------------------------------------ apply

    def apply(
        self, unit: int, cores: int, freq_mhz: float, current_mhz: float, cpus: tuple[int, ...] | None = None
    ) -> tuple[tuple[int, ...], float]:
        """Map the next inference onto ``cores`` of ``unit`` at ``freq_mhz``.

        Pins this process to the unit's least-loaded CPUs (or to ``cpus``, the profiler's
        per-CPU check) and sets the frequency when it differs from ``current_mhz`` and DVFS is
        controlled (otherwise the frequency is left to the governor).

        :return: (the CPUs used, the frequency the unit runs at)
        """
        u = self.units[unit]
        if u.kind == "cpu":
            cpus = self.load.least_loaded(u.cpus, cores) if cpus is None else tuple(cpus)
            if cpus != self.current_cpus:
                set_affinity(cpus)
                self.current_cpus = cpus
                self.load.ran_on(cpus)
        else:
            cpus = self.current_cpus
        if freq_mhz == current_mhz or self.dvfs[unit] is not None:
            return cpus, current_mhz if self.dvfs[unit] is not None else freq_mhz
        if u.kind == "cpu":
            self.cpufreq.set_khz(u.cpus[0], round(freq_mhz * 1000))
        else:
            self.gpufreq.set_hz(round(freq_mhz * 1e6))
        return cpus, freq_mhz

    # ------------------------------------------------------------------ energy

    def energy_begin(self, unit: int) -> int | None:
        """Start metering one inference on ``unit`` (a counter reading, where there is one)."""
        if self.energy_source(unit).startswith("rapl"):
            return int(self.fs.read(self._package.path))
        return None

    def energy_end(self, unit: int, mark: int | None, latency_ms: float, estimate_w: float) -> tuple[float, float, bool]:
        """Energy of the inference that just ran on ``unit``.

        :param mark: what :meth:`energy_begin` returned
        :param estimate_w: the platform model's power for this configuration and state, used
            where the board has no sensor for the unit
        :return: (energy mJ, power W, whether it is an estimate)
        """
        src = self.energy_source(unit)
        if src == "estimate":
            return estimate_w * latency_ms, estimate_w, True
        if src.startswith("rapl"):
            e = energy_j(mark, int(self.fs.read(self._package.path)), self._package) * 1e3
            return e, e / latency_ms if latency_ms > 0 else 0.0, False
        w = self.nvml.power_w() if src == "nvml" else read_power_w(self.fs, self.rails[self.units[unit].name])
        return w * latency_ms, w, False

    # ------------------------------------------------------------------ restore

    def restore(self) -> list[str]:
        """Put back every governor and frequency touched, and the process's CPU affinity."""
        done = self.cpufreq.restore() + self.gpufreq.restore()
        self.load.close()  # reopened by the next sample, if any
        if self.current_cpus != self._original_cpus:
            set_affinity(self._original_cpus)  # every thread, the runtimes' pools too
            self.current_cpus = self._original_cpus
        return done
