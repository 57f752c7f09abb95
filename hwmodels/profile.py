"""Platform profiles: the YAML that describes a board, validated on load.

A profile holds the processing units (DVFS table with voltages, performance and power
coefficients), memory, thermal model with trip points, interference, noise, the ``sources``
each part was calibrated to, and optionally ``measured`` tables written by the profiler on a
live board, which win over the analytic terms. Every error names the file and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnn.errors import UserError
from dnn.fileio import read_yaml

PLATFORM_FORMAT = "dynscale-platform"
SHIPPED_DIR = Path(__file__).resolve().parent / "platforms"


#: upper bounds of a profile's tables and coefficients: far above any embedded board, low
#: enough that the model's arithmetic stays finite (1e308 is a typo, not a board)
MAX_LATENCY_MS = 1e7
MAX_POWER_W = 1e4


class PlatformProfileError(UserError, ValueError):
    """A platform profile that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class UnitPerf:
    """Performance coefficients of one unit (see hwmodels/MODEL.md for the equations).

    :param macs_per_cycle: multiply-accumulates per cycle of one core (or the whole GPU)
    :param serial_fraction: Amdahl serial fraction of the DNN's work across cores
    :param overhead_mcycles: fixed per-inference work (framework), in millions of cycles
    :param layer_overhead_kcycles: per-layer dispatch or kernel-launch work, thousands of cycles
    :param sync_kcycles: per-layer thread synchronisation cost per extra core, thousands of cycles
    :param mem_bw_gbps: memory bandwidth one core (or the GPU) streams at, GB/s
    :param overhead_fixed_ms: per-inference time that does not scale with this unit's clock
        (for a GPU: launch and copy work done by the host CPU), ms
    :param layer_fixed_us: per-layer time that does not scale with this unit's clock (GPU
        kernel launches issued by the host), microseconds
    """

    macs_per_cycle: float
    serial_fraction: float
    overhead_mcycles: float
    layer_overhead_kcycles: float
    sync_kcycles: float
    mem_bw_gbps: float
    overhead_fixed_ms: float = 0.0
    layer_fixed_us: float = 0.0


@dataclass(frozen=True)
class UnitPower:
    """Power coefficients of one unit's rail (W, V, GHz, degrees C).

    ``P = idle_dyn * V^2 f + leak * V * exp(leak_temp_coeff * (T - leak_ref_c))
    + activity * (uncore * [busy > 0] + per_core * busy) * V^2 f``

    ``activity`` is the DNN's dynamic power relative to the workload the coefficients were
    fitted to (1.0 for background load and for the calibration report).
    """

    idle_dyn: float
    leak: float
    leak_temp_coeff: float
    leak_ref_c: float
    uncore: float
    per_core: float
    activity: float = 1.0


@dataclass(frozen=True)
class Unit:
    """One processing unit: a CPU cluster or a GPU."""

    name: str
    kind: str
    cores: int
    freqs_mhz: np.ndarray
    volts: np.ndarray
    switch_latency_us: float
    perf: UnitPerf
    power: UnitPower
    cpus: tuple[int, ...] = ()

    @property
    def max_freq_mhz(self) -> float:
        return float(self.freqs_mhz[-1])


@dataclass(frozen=True)
class Trip:
    """A thermal trip point: at or above ``temp_c`` the unit's frequency is capped."""

    temp_c: float
    unit: str
    max_freq_mhz: float


@dataclass(frozen=True)
class Thermal:
    """First-order RC thermal model of the die: ``T_ss = ambient + r_th * P_total``."""

    ambient_c: float
    r_th_c_per_w: float
    tau_s: float
    start_c: float
    trips: tuple[Trip, ...]
    other_rails_w: float = 0.0


@dataclass(frozen=True)
class Noise:
    """Run-to-run jitter: log-normal multiplicative noise with these coefficients of variation."""

    latency_cv: float
    power_cv: float


@dataclass(frozen=True)
class Interference:
    """How co-runners slow the DNN down beyond the model's fair share of the cores.

    :param mem_slowdown: memory-bandwidth contention: memory-bound time grows by
        ``1 + mem_slowdown * sum(mem * threads)``
    :param barrier_slowdown: a configuration on ``c > 1`` cores that shares them with co-runner
        threads waits at every layer for the thread the scheduler took off its core: each
        co-runner thread on its cores costs ``1 + barrier_slowdown * (c - 1)`` threads' share
        instead of one (0: plain fair share)
    :param wake_credit_ms: the scheduler lets a DNN that slept between requests run its first
        ``wake_credit_ms`` of compute before co-runners on its cores take their share (Linux
        CFS/EEVDF place a waking task ahead of the ones that kept running): only the compute time
        beyond it is shared (0: plain fair share from the first instruction)
    :param quantum_ms: a co-runner that takes the DNN's core holds it this long (the kernel
        preempts at its scheduler tick, so the share arrives in whole quanta, not as a fluid
        slow-down): the fair-share time is the *mean* of a whole number of quanta, and one
        request waits for none, one or more of them (0: a fluid share, every request alike)
    :param thread_wait_ms: a run on ``c > 1`` cores every one of which a co-runner holds waits at
        least this long in mean (its wait is the larger of this and its fair share beyond the
        wake-up credit; it phases in as the last of its cores fills). Measured on the 2-CPU dev host
        beside two busy threads: a two-core run waited 0.8-2.4 ms in mean at every group count
        in three profiles, not rising with it as the share beyond the credit does (0: none)
    :param preempt_share: the share of the fair-share wait beyond the wake-up credit that a run
        waits (in whole quanta: the share of the scheduler ticks, after the credit is spent, at
        which a co-runner on its core takes it). 1: every one, the plain fair share. Measured on
        the 2-CPU dev host beside two busy threads: one-core runs waited a quantum in 26-29% of
        k = 2 and 25-29% of k = 3 requests, where the fair share beyond a credit fitted to the
        longer runs said 0% and 13% (``docs/live/quanta_split.py runs/live-acc8/*.jsonl``,
        hwmodels/MODEL.md); their mean wait grew about half as fast as their compute beyond a
        shorter credit
    :param tick_hz: the kernel's scheduler ticks fall on a grid of period ``1 s / tick_hz`` on the
        monotonic clock (0: no grid was seen, or not probed); the live loop then reads how far into
        a tick it woke for each request (the model's wait is conditioned on it:
        :class:`hwmodels.model.State`) and logs it and each inference's start (``tick_phase_ms``),
        in the boot the grid was probed in (``measured.preemption.boot_id``: the phase may move
        with a reboot)
    :param tick_offset_ms: the grid's phase on that clock, in [0, 1000 / tick_hz) ms: where the
        probe's gaps ended (the tick plus the switch back, tens of microseconds)
    """

    mem_slowdown: float
    barrier_slowdown: float = 0.0
    wake_credit_ms: float = 0.0
    quantum_ms: float = 0.0
    thread_wait_ms: float = 0.0
    tick_hz: int = 0
    tick_offset_ms: float = 0.0
    preempt_share: float = 1.0


@dataclass(frozen=True)
class Measured:
    """Tables measured on a live board, indexed like the platform's configuration order.

    ``latency_ms`` and ``power_w`` have one entry per configuration (NaN where not measured);
    ``backend`` is the runtime that ran the DNN (``torch``, ``onnx``, ``ncnn``): deploy must run
    the same; ``export_sha256`` the SHA-256 of the export's weights it ran (``None`` with torch);
    ``boot_id`` the boot the tick grid (``interference.tick_hz``) was probed in (``None``: not said);
    ``credit_from_wake`` whether the co-runner points logged the time awake before each inference, so
    ``interference.wake_credit_ms`` counts from the wake (profiles before that fitted it at the
    inference's start: the model, which counts it from the wake, then spends the time awake twice).
    """

    latency_ms: np.ndarray
    power_w: np.ndarray
    power_is_estimate: bool
    backend: str = "torch"
    export_sha256: str | None = None
    boot_id: str | None = None
    credit_from_wake: bool = True


@dataclass(frozen=True)
class PlatformSpec:
    """Everything a profile says about a board."""

    name: str
    description: str
    units: tuple[Unit, ...]
    thermal: Thermal
    noise: Noise
    interference: Interference
    sources: tuple[dict, ...]
    calibration: dict = field(default_factory=dict)
    measured: Measured | None = None
    path: str = ""
    digest: str = ""

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(f"unknown unit {name!r}; valid: {', '.join(u.name for u in self.units)}")

    def unit_index(self, name: str) -> int:
        return [u.name for u in self.units].index(self.unit(name).name)


def shipped_platforms() -> list[str]:
    """Names of the platform profiles shipped with the package."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def resolve_platform_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped platform name (``xu3``, ``nano``) or a path to a profile YAML."""
    text = str(name_or_path)
    if text in shipped_platforms():
        return SHIPPED_DIR / f"{text}.yaml"
    p = Path(text).expanduser()
    if p.is_file():
        return p
    raise PlatformProfileError(f"{text}: neither a shipped platform ({', '.join(shipped_platforms())}) nor a profile file")


def load_platform(name_or_path: str | os.PathLike) -> PlatformSpec:
    """Load and validate a platform profile.

    :param name_or_path: ``xu3``, ``nano`` or a path to a profile YAML
    :raises PlatformProfileError: naming the file and field at fault
    """
    path = resolve_platform_path(name_or_path)
    doc = read_yaml(path, PlatformProfileError, "platform profile")
    return parse_platform(doc, str(path))


def parse_platform(doc: Any, where: str) -> PlatformSpec:
    """Validate a profile already parsed from YAML; ``where`` names it in errors.

    Every number must be finite and within its physical range, and every key known: a
    misspelt or unknown key is refused with the nearest valid name.
    """
    r = _Reader(doc, where)
    if r.get("format", str) != PLATFORM_FORMAT:
        raise r.error("format", f"must be {PLATFORM_FORMAT!r}")
    units_raw = r.get("units", list)
    if not units_raw:
        raise r.error("units", "must list at least one unit")
    units = tuple(_parse_unit(r.child(f"units[{i}]", u)) for i, u in enumerate(units_raw))
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise r.error("units", f"unit names must be unique, got {names}")
    thermal = _parse_thermal(r.child("thermal", r.get("thermal", dict)), units)
    n = r.child("noise", r.get("noise", dict))
    noise = Noise(n.num("latency_cv", minimum=0.0, maximum=10.0), n.num("power_cv", minimum=0.0, maximum=10.0))
    it = r.child("interference", r.get("interference", dict))
    interference = Interference(
        it.num("mem_slowdown", minimum=0.0, maximum=100.0),
        it.num("barrier_slowdown", minimum=0.0, maximum=100.0, default=0.0),
        it.num("wake_credit_ms", minimum=0.0, maximum=1000.0, default=0.0),
        it.num("quantum_ms", minimum=0.0, maximum=1000.0, default=0.0),
        it.num("thread_wait_ms", minimum=0.0, maximum=1000.0, default=0.0),
        _whole(it, "tick_hz", it.num("tick_hz", minimum=0.0, maximum=100000.0, default=0.0)),
        it.num("tick_offset_ms", minimum=0.0, maximum=1000.0, default=0.0),
        it.num("preempt_share", minimum=0.0, maximum=1.0, default=1.0),
    )
    sources = r.get("sources", list)
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or "figure" not in s or "used_for" not in s:
            raise r.error(f"sources[{i}]", "must be a mapping with 'figure' and 'used_for'")
    calibration = r.get("calibration", dict, default={})  # checked by hwmodels.calibrate
    measured = None
    if doc.get("measured") is not None:
        measured = _parse_measured(r.child("measured", r.get("measured", dict)))
    spec = PlatformSpec(
        name=r.get("name", str),
        description=r.get("description", str, default=""),
        units=units,
        thermal=thermal,
        noise=noise,
        interference=interference,
        sources=tuple(sources),
        calibration=dict(calibration),
        measured=measured,
        path=where,
        digest=profile_digest(doc),
    )
    r.check_unknown()
    return spec


def _parse_thermal(t: _Reader, units: tuple[Unit, ...]) -> Thermal:
    """The thermal section; each trip names a unit and a frequency of that unit's DVFS table."""
    by_name = {u.name: u for u in units}
    trips = []
    for i, tr in enumerate(t.get("trips", list)):
        tp = t.child(f"trips[{i}]", tr)
        unit = tp.get("unit", str)
        if unit not in by_name:
            raise tp.error("unit", f"unknown unit {unit!r}; valid: {', '.join(by_name)}")
        cap = tp.num("max_freq_mhz", positive=True)
        table = by_name[unit].freqs_mhz
        if not np.any(table == cap):
            raise tp.error("max_freq_mhz", f"{cap:g} MHz is not in {unit}'s DVFS table ({', '.join(f'{f:g}' for f in table)})")
        trips.append(Trip(tp.temp("temp_c"), unit, cap))
    return Thermal(
        ambient_c=t.temp("ambient_c"),
        r_th_c_per_w=t.num("r_th_c_per_w", positive=True, maximum=1e3),
        tau_s=t.num("tau_s", positive=True, maximum=1e5),
        start_c=t.temp("start_c"),
        trips=tuple(sorted(trips, key=lambda x: x.temp_c)),
        other_rails_w=t.num("other_rails_w", minimum=0.0, maximum=1e3, default=0.0),
    )


def _parse_measured(m: _Reader) -> Measured:
    """Tables the profiler measured; ``null`` entries are configurations not measured."""
    lat = m.array("latency_ms", allow_nan=True, positive=True, maximum=MAX_LATENCY_MS)
    pw = m.array("power_w", allow_nan=True, positive=True, maximum=MAX_POWER_W)
    if len(lat) != len(pw):
        raise m.error("power_w", f"has {len(pw)} entries, latency_ms has {len(lat)}")
    if m.doc.get("latency_p90_ms") is not None:
        p90 = m.array("latency_p90_ms", allow_nan=True, positive=True, maximum=MAX_LATENCY_MS)
        if len(p90) != len(lat):
            raise m.error("latency_p90_ms", f"has {len(p90)} entries, latency_ms has {len(lat)}")
    m.free_form(
        "latency_p90_ms", "latency_ci_ms", "period_ms", "idle_load", "co_runners", "preemption", "cores", "board"
    )  # what the profiler saw: for people, not the model
    backend = m.get("backend", str, default="torch")
    if backend not in ("torch", "onnx", "ncnn"):
        raise m.error("backend", f"must be 'torch', 'onnx' or 'ncnn', got {backend!r}")
    export_sha256 = m.get("export_sha256", str, default=None)
    probe = m.get("preemption", dict, default={})
    boot = probe.get("boot_id") if isinstance(probe.get("boot_id"), str) else None
    co_runners = m.get("co_runners", list, default=[])
    from_wake = all(isinstance(c, dict) and "awake_ms" in c for c in co_runners)
    return Measured(lat, pw, bool(m.get("power_is_estimate", bool, default=False)), backend, export_sha256, boot, from_wake)


def _whole(r: _Reader, key: str, v: float) -> int:
    if v != int(v):
        raise r.error(key, f"must be a whole number, got {v:g}")
    return int(v)


def profile_digest(doc: Any) -> str:
    """A short content hash of a profile document (key order and YAML layout do not count):
    an exported policy records the one it was trained on, so a re-profiled board is noticed."""
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parse_unit(u: _Reader) -> Unit:
    kind = u.get("kind", str)
    if kind not in ("cpu", "gpu"):
        raise u.error("kind", f"must be 'cpu' or 'gpu', got {kind!r}")
    cores = int(u.num("cores", positive=True, maximum=1024))
    if kind == "gpu" and cores != 1:
        raise u.error("cores", "a gpu unit is one device: cores must be 1")
    d = u.child("dvfs", u.get("dvfs", dict))
    freqs = d.array("freq_mhz")
    volts = d.array("volt_v")
    if len(freqs) != len(volts):
        raise d.error("volt_v", f"has {len(volts)} entries, freq_mhz has {len(freqs)}")
    if np.any(freqs <= 0) or np.any(np.diff(freqs) <= 0) or freqs[-1] > 10_000:
        raise d.error("freq_mhz", "must be positive, strictly increasing and at most 10000 MHz")
    if np.any(volts <= 0) or np.any(np.diff(volts) < 0) or volts[-1] > 5.0:
        raise d.error("volt_v", "must be positive, non-decreasing with frequency and at most 5 V")
    p = u.child("perf", u.get("perf", dict))
    perf = UnitPerf(
        macs_per_cycle=p.num("macs_per_cycle", positive=True, maximum=1e5),
        serial_fraction=p.num("serial_fraction", minimum=0.0, maximum=1.0),
        overhead_mcycles=p.num("overhead_mcycles", minimum=0.0, maximum=1e5),
        layer_overhead_kcycles=p.num("layer_overhead_kcycles", minimum=0.0, maximum=1e6),
        sync_kcycles=p.num("sync_kcycles", minimum=0.0, maximum=1e6),
        mem_bw_gbps=p.num("mem_bw_gbps", positive=True, maximum=1e4),
        overhead_fixed_ms=p.num("overhead_fixed_ms", minimum=0.0, maximum=1e4, default=0.0),
        layer_fixed_us=p.num("layer_fixed_us", minimum=0.0, maximum=1e6, default=0.0),
    )
    w = u.child("power", u.get("power", dict))
    power = UnitPower(
        idle_dyn=w.num("idle_dyn", minimum=0.0, maximum=MAX_POWER_W),
        leak=w.num("leak", minimum=0.0, maximum=MAX_POWER_W),
        leak_temp_coeff=w.num("leak_temp_coeff", minimum=0.0, maximum=1.0),
        leak_ref_c=w.temp("leak_ref_c"),
        uncore=w.num("uncore", minimum=0.0, maximum=MAX_POWER_W),
        per_core=w.num("per_core", minimum=0.0, maximum=MAX_POWER_W),
        activity=w.num("activity", positive=True, maximum=100.0, default=1.0),
    )
    cpus_raw = u.get("cpus", list, default=[])
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 4096 for c in cpus_raw):
        raise u.error("cpus", f"must list logical CPU numbers (0..4095), got {cpus_raw}")
    cpus = tuple(cpus_raw)
    if kind == "cpu" and cpus and len(cpus) != cores:
        raise u.error("cpus", f"lists {len(cpus)} logical CPUs for {cores} cores")
    return Unit(
        name=u.get("name", str),
        kind=kind,
        cores=cores,
        freqs_mhz=freqs,
        volts=volts,
        switch_latency_us=u.num("switch_latency_us", minimum=0.0, maximum=1e6),
        perf=perf,
        power=power,
        cpus=cpus,
    )


#: die and ambient temperatures a profile may name, degrees C (silicon's operating range and then some)
TEMP_RANGE_C = (-40.0, 150.0)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _as_number(v: Any) -> Any:
    """YAML 1.1 reads ``1.0e308`` (no exponent sign) as a string: take it as the number it spells."""
    if isinstance(v, str) and _NUMBER.fullmatch(v.strip()):
        return float(v)
    return v


class _Reader:
    """Typed access to one mapping of the YAML document, with errors naming file and field.

    Every key read is remembered; :meth:`check_unknown` then refuses the keys nobody read (a
    misspelt ``activty`` would otherwise leave ``activity`` at its default without a word).
    """

    _MISSING = object()

    def __init__(self, doc: Any, where: str, prefix: str = "", readers: list | None = None) -> None:
        if not isinstance(doc, dict):
            raise PlatformProfileError(f"{where}: {prefix or 'the document'} must be a mapping")
        self.doc, self.where, self.prefix = doc, where, prefix
        self.seen: set[str] = set()
        self.readers = readers if readers is not None else []
        self.readers.append(self)

    def error(self, key: str, msg: str) -> PlatformProfileError:
        return PlatformProfileError(f"{self.where}: field '{self.prefix}{key}' {msg}")

    def child(self, key: str, value: Any) -> _Reader:
        self.seen.add(key.split("[")[0])
        if not isinstance(value, dict):
            raise self.error(key, "must be a mapping")
        return _Reader(value, self.where, f"{self.prefix}{key}.", self.readers)

    def free_form(self, *keys: str) -> None:
        """Keys whose content is checked elsewhere (or is free text): known, not read here."""
        self.seen.update(keys)

    def check_unknown(self) -> None:
        """Refuse every key of every mapping read so far that no field read (nearest valid name)."""
        for r in self.readers:
            for key in r.doc:
                if key not in r.seen:
                    near = difflib.get_close_matches(str(key), sorted(r.seen), n=1)
                    hint = f"; did you mean '{r.prefix}{near[0]}'?" if near else f"; valid here: {', '.join(sorted(r.seen))}"
                    raise r.error(str(key), f"is not a known field{hint}")

    def get(self, key: str, typ: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        self.seen.add(key)
        if key not in self.doc or self.doc[key] is None:
            if default is self._MISSING:
                raise self.error(key, "is missing")
            return default
        v = self.doc[key]
        if typ == (int, float):
            v = _as_number(v)
        if not isinstance(v, typ):
            name = typ.__name__ if isinstance(typ, type) else "number"
            raise self.error(key, f"must be a {name}, got {type(v).__name__}")
        return v

    def num(
        self,
        key: str,
        positive: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        default: Any = _MISSING,
    ) -> float:
        v = self.get(key, (int, float), default)
        if isinstance(v, bool) or not np.isfinite(v):
            raise self.error(key, f"must be a finite number, got {v!r}")
        if positive and v <= 0:
            raise self.error(key, f"must be positive, got {v}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be >= {minimum:g}, got {v:g}")
        if maximum is not None and v > maximum:
            raise self.error(key, f"must be <= {maximum:g}, got {v:g}")
        return float(v)

    def temp(self, key: str, default: Any = _MISSING) -> float:
        """A temperature in :data:`TEMP_RANGE_C`."""
        return self.num(key, minimum=TEMP_RANGE_C[0], maximum=TEMP_RANGE_C[1], default=default)

    def array(self, key: str, allow_nan: bool = False, positive: bool = False, maximum: float | None = None) -> np.ndarray:
        """A non-empty list of finite numbers (``allow_nan``: ``null`` entries are NaN, "not
        measured"), each ``> 0`` if ``positive`` and ``<= maximum`` if given."""
        raw = self.get(key, list)
        try:
            a = np.array([np.nan if (allow_nan and x is None) else _as_number(x) for x in raw], dtype=np.float64)
        except (TypeError, ValueError):
            raise self.error(key, "must be a list of numbers") from None
        if a.ndim != 1 or len(a) == 0:
            raise self.error(key, "must be a non-empty list of numbers")
        given = a[~np.isnan(a)] if allow_nan else a
        if not np.all(np.isfinite(given)):
            raise self.error(key, "must hold finite numbers only")
        if positive and np.any(given <= 0):
            raise self.error(key, f"must hold positive numbers only, got {given[given <= 0][0]:g}")
        if maximum is not None and np.any(given > maximum):
            raise self.error(key, f"must hold numbers <= {maximum:g}, got {given[given > maximum][0]:g}")
        return a
