"""``dynscale board info``: what the machine offers as a live board and what dynscale can do
with it (DVFS control and why not, power sensors, energy counters, NVML, clusters, thermal zones).
"""

from __future__ import annotations

import os

from runtime.dvfs import Cpufreq, GpuDevfreq
from runtime.sensors import Nvml, discover_energy_counters, discover_power_rails, thermal_zones
from runtime.sysfs import Sysfs
from runtime.topology import cpu_clusters, online_cpus


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
