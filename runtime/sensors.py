"""Sensors: power rails (XU3 INA231, Nano INA3221), RAPL energy counters, NVML GPU power and
thermal zones. Each discovers what the board has and says what it cannot do.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from runtime.sysfs import LiveError, Sysfs


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
