"""CPU topology: online CPUs, clusters (package, cluster id, ``cpu_capacity``), the nominal
clock where there is no cpufreq, and pinning this process to CPUs.
"""

from __future__ import annotations

import os

from runtime.sysfs import LiveError, Sysfs


def set_affinity(cpus: list[int] | tuple[int, ...], pid: int = 0) -> None:
    """Pin ``pid`` (0: this process, every thread of it) to ``cpus``; a clear error for CPUs that
    are not online.

    Linux pins one thread per call, and a thread keeps the mask it was created with: the OpenMP
    pools of torch and ncnn, made on the first multi-threaded inference, would otherwise run a
    later two-core configuration on the CPUs of whichever configuration ran first (measured: a
    pool made while the process was pinned to CPU 1 stayed on CPU 1 after it was given 0-1).
    """
    want = set(cpus)
    try:
        os.sched_setaffinity(pid, want)
    except OSError as exc:
        allowed = sorted(os.sched_getaffinity(pid))
        raise LiveError(f"cannot run on cpus {sorted(cpus)} ({exc.strerror}); this process may use {allowed}") from None
    if pid != 0:
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), want)
        except (ProcessLookupError, FileNotFoundError):  # the thread ended meanwhile
            pass


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
