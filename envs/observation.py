"""The observation vector, shared by the simulated env and the live runtime.

Only quantities a live board can measure are used: the request's budgets, background load per
unit (/proc/stat), die temperature (thermal zones), current frequency per unit (cpufreq,
devfreq), the previous configuration, the last request's latency and energy, the online
slow-down estimate per unit (measured / predicted latency, filtered: :mod:`envs.slowdown`), and,
on a board whose scheduler ticks fall on a known grid, how long an inference may run before the
first tick at which a co-runner may take its core (the clock against the profiled grid and the
wake-up credit: whether a run can be preempted at all depends on it). Values are
normalised to about [0, 1]; budgets, latencies and energies span two to three decades, so they
are normalised on a log scale between fixed bounds.

Every constant that shapes the vector is a field of :class:`ObservationSpec`, and an exported
policy stores its spec: the board builds a policy's observations from the policy's own spec,
so re-profiling a board never rescales a deployed policy's inputs.

This module needs numpy only (the board runs it without torch or stable-baselines3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from envs.slowdown import SLOWDOWN_RANGE
from hwmodels.model import next_tick_ms

if TYPE_CHECKING:
    from envs.step import Request
    from hwmodels.model import PlatformModel


class ObservationSpecError(ValueError):
    """A stored observation spec that is incomplete or malformed (the message names the field)."""


@dataclass(frozen=True)
class ObservationSpec:
    """Everything needed to build observations for one platform, as plain numbers.

    :param units: unit names, in profile order
    :param cores: cores per unit
    :param max_freq_mhz: highest DVFS frequency per unit
    :param max_groups: G
    :param latency_range_ms: (low, high) bounds of the log scale for budgets and latencies
    :param energy_range_mj: (low, high) bounds of the log scale for energy budgets and energies
    :param range_headroom: (below, above): the ranges were the idle board's smallest latency and
        energy divided by ``below`` and its largest multiplied by ``above`` (room for load)
    :param temp_range_c: die temperatures normalised over this range
    :param load_threads_per_core: background load normalised by this many threads per core
    :param slowdown_range: (low, high) bounds of the log scale of the slow-down estimate per
        unit; ``None``: no slow-down features (policies exported before they existed)
    :param tick_ms: the scheduler tick's period, where the board's ticks fall on a known grid
        (``interference.tick_hz``) and co-runners take whole quanta; ``None``: no ``tick_free``
        feature (no grid, or a policy exported before it existed)
    :param credit_ms: the profile's wake-up credit (``interference.wake_credit_ms``): the feature
        ``tick_free`` is the time from the inference's start (the request's time awake after the
        wake) to the first tick after the credit, on the latency scale (its mean over the phase,
        half a tick after the credit, where the request does not know it): a run shorter than it
        cannot be preempted
    """

    units: tuple[str, ...]
    cores: tuple[int, ...]
    max_freq_mhz: tuple[float, ...]
    max_groups: int
    latency_range_ms: tuple[float, float]
    energy_range_mj: tuple[float, float]
    range_headroom: tuple[float, float] = (2.0, 4.0)
    temp_range_c: tuple[float, float] = (20.0, 110.0)
    load_threads_per_core: float = 2.0
    slowdown_range: tuple[float, float] | None = None
    tick_ms: float | None = None
    credit_ms: float = 0.0

    @classmethod
    def for_model(cls, model: PlatformModel, range_headroom: tuple[float, float] = (2.0, 4.0)) -> ObservationSpec:
        """The spec of a platform model: log-scale bounds span every configuration's idle-board
        latency and energy, with ``range_headroom`` below and above."""
        latency, energy = model.idle_table()
        below, above = range_headroom
        spec = model.spec
        return cls(
            units=tuple(u.name for u in spec.units),
            cores=tuple(u.cores for u in spec.units),
            max_freq_mhz=tuple(u.max_freq_mhz for u in spec.units),
            max_groups=model.dnn.max_groups,
            latency_range_ms=(float(latency.min()) / below, float(latency.max()) * above),
            energy_range_mj=(float(energy.min()) / below, float(energy.max()) * above),
            range_headroom=(float(below), float(above)),
            slowdown_range=SLOWDOWN_RANGE,
            tick_ms=model.tick_ms if model.tick_ms > 0 else None,
            credit_ms=float(spec.interference.wake_credit_ms),
        )

    def structure(self) -> dict:
        """What must match between a policy and a board: units, cores, top frequencies, G
        (the scales may differ: the policy's own are used)."""
        return {
            "units": list(self.units),
            "cores": list(self.cores),
            "max_freq_mhz": list(self.max_freq_mhz),
            "max_groups": self.max_groups,
        }

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> ObservationSpec:
        """The spec stored by :meth:`to_dict` (raises :class:`ObservationSpecError` naming the field)."""
        if not isinstance(d, dict):
            raise ObservationSpecError("not a mapping")
        names = {f.name for f in fields(cls)}
        optional = ("range_headroom", "temp_range_c", "load_threads_per_core", "slowdown_range", "tick_ms", "credit_ms")
        missing = [n for n in names if n not in d and n not in optional]
        if missing:
            raise ObservationSpecError(f"field {sorted(missing)[0]!r} missing")
        try:
            return cls(
                units=tuple(str(u) for u in d["units"]),
                cores=tuple(int(c) for c in d["cores"]),
                max_freq_mhz=tuple(float(f) for f in d["max_freq_mhz"]),
                max_groups=int(d["max_groups"]),
                latency_range_ms=_pair(d, "latency_range_ms", log=True),
                energy_range_mj=_pair(d, "energy_range_mj", log=True),
                range_headroom=_pair(d, "range_headroom", cls.range_headroom, log=True, ordered=False),
                temp_range_c=_pair(d, "temp_range_c", cls.temp_range_c),
                load_threads_per_core=float(d.get("load_threads_per_core", cls.load_threads_per_core)),
                slowdown_range=_pair(d, "slowdown_range", log=True) if d.get("slowdown_range") is not None else None,
                tick_ms=_positive(d, "tick_ms"),
                credit_ms=_positive(d, "credit_ms", zero=True) or 0.0,
            )
        except (TypeError, ValueError) as exc:
            raise ObservationSpecError(f"malformed ({exc})") from None


def _pair(
    d: dict, key: str, default: tuple[float, float] | None = None, log: bool = False, ordered: bool = True
) -> tuple[float, float]:
    """A stored (low, high) pair: ``low < high`` where ``ordered``, both > 0 where ``log`` (a
    log scale); a policy file that breaks either would scale its observations into nonsense."""
    v = d.get(key, default)
    if v is None or len(v) != 2:
        raise ObservationSpecError(f"field {key!r} is not a (low, high) pair")
    lo, hi = float(v[0]), float(v[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or (log and not (lo > 0 and hi > 0)) or (ordered and not lo < hi):
        need = "0 < low < high" if log and ordered else ("both > 0" if log else "low < high")
        raise ObservationSpecError(f"field {key!r} must be a pair with {need}, got {[lo, hi]}")
    return lo, hi


class ObservationBuilder:
    """Writes observations into one preallocated ``float32`` array (no array allocation per step).

    :param spec: the observation constants (the env's, or an exported policy's own)
    """

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        n = len(spec.units)
        self.names: tuple[str, ...] = (
            "time_budget",
            "energy_budget",
            *(f"load_{u}" for u in spec.units),
            "temperature",
            *(f"freq_{u}" for u in spec.units),
            "prev_groups",
            *(f"prev_unit_{u}" for u in spec.units),
            "prev_cores",
            "prev_freq",
            "last_latency",
            "last_energy",
            *((f"slowdown_{u}" for u in spec.units) if spec.slowdown_range else ()),
            *(("tick_free",) if spec.tick_ms else ()),
        )
        self.size = len(self.names)
        self._n = n
        self._lt = (math.log(spec.latency_range_ms[0]), math.log(spec.latency_range_ms[1] / spec.latency_range_ms[0]))
        self._le = (math.log(spec.energy_range_mj[0]), math.log(spec.energy_range_mj[1] / spec.energy_range_mj[0]))
        self._load_scale = [1.0 / (spec.load_threads_per_core * c) for c in spec.cores]
        self._temp = (spec.temp_range_c[0], spec.temp_range_c[1] - spec.temp_range_c[0])
        self._inv_fmax = [1.0 / f for f in spec.max_freq_mhz]
        self._max_cores = max(spec.cores)
        lo_hi = spec.slowdown_range
        self._ls = None if lo_hi is None else (math.log(lo_hi[0]), math.log(lo_hi[1] / lo_hi[0]))
        self._tick = spec.tick_ms
        self.out = np.zeros(self.size, dtype=np.float32)

    def build(self, request: Request) -> np.ndarray:
        """Fill and return the observation of ``request`` (the array is the builder's own:
        copy it to keep it)."""
        o = self.out
        n = self._n
        o[0] = _log01(request.time_budget_ms, self._lt)
        o[1] = _log01(request.energy_budget_mj, self._le)
        load = request.load
        for i in range(n):
            o[2 + i] = min(load[i] * self._load_scale[i], 1.0)
        o[2 + n] = min(max((request.temp_c - self._temp[0]) / self._temp[1], 0.0), 1.0)
        freq = request.freq_mhz
        for i in range(n):
            o[3 + n + i] = freq[i] * self._inv_fmax[i]
        g, ui, c, f = request.prev
        j = 3 + 2 * n
        o[j] = g / self.spec.max_groups
        o[j + 1 : j + 1 + n] = 0.0
        o[j + 1 + ui] = 1.0
        o[j + 1 + n] = c / self._max_cores
        o[j + 2 + n] = f * self._inv_fmax[ui]
        o[j + 3 + n] = _log01(request.last_latency_ms, self._lt)
        o[j + 4 + n] = _log01(request.last_energy_mj, self._le)
        if self._ls is not None:
            slow = request.slowdown
            for i in range(n):
                o[j + 5 + n + i] = _log01(1.0 if slow is None else slow[i], self._ls)
        if self._tick:
            o[-1] = _log01(self.tick_free_ms(request), self._lt)
        return o

    def tick_free_ms(self, request: Request) -> float:
        """How long the request's inference may run before the first tick at which a co-runner may
        take its core: the first tick after the wake-up credit, counted from the wake, or after the
        time awake (the request's: the previous one's), from the inference's start (the same
        stretch as :meth:`hwmodels.model.PlatformModel.expected`'s); where the request does not know
        its phase, the mean over it (half a tick after the credit); 0 where the spec has no tick."""
        tick = self._tick or 0.0
        if not tick:
            return 0.0
        start = float(request.awake_ms)
        exposed = max(self.spec.credit_ms, start)  # from here on a co-runner may take the core
        phase = request.tick_phase_ms
        if phase is None:
            return exposed - start + tick / 2
        first = next_tick_ms(phase, tick)  # the first tick after the wake
        if first <= exposed:
            first += tick * (math.floor((exposed - first) / tick) + 1)
        return first - start


def _positive(d: dict, key: str, zero: bool = False) -> float | None:
    """A stored optional positive number (``None`` where absent; 0 allowed where ``zero``)."""
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and (v > 0 or (zero and v == 0))):
        raise ObservationSpecError(f"field {key!r} must be a number {'>=' if zero else '>'} 0, got {v!r}")
    return float(v)


def _log01(x: float, scale: tuple[float, float]) -> float:
    if x <= 0:
        return 0.0
    v = (math.log(x) - scale[0]) / scale[1]
    return 0.0 if v < 0.0 else (min(v, 1.0))
