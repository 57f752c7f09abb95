"""The observation vector, shared by the simulated env and the live runtime.

Only quantities a live board can measure are used: the request's budgets, background load per
unit (/proc/stat), die temperature (thermal zones), current frequency per unit (cpufreq,
devfreq), the previous configuration, and the last request's latency and energy. Values are
normalised to about [0, 1]; budgets, latencies and energies span two to three decades, so they
are normalised on a log scale between fixed bounds derived from the platform model.

This module needs numpy only (the board runs it without torch or stable-baselines3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Temperatures are normalised over this range (C).
TEMP_RANGE = (20.0, 110.0)
#: Background load is normalised by this many threads per core.
LOAD_THREADS_PER_CORE = 2.0


@dataclass(frozen=True)
class ObservationSpec:
    """Everything needed to build observations for one platform, as plain numbers.

    :param units: unit names, in profile order
    :param cores: cores per unit
    :param max_freq_mhz: highest DVFS frequency per unit
    :param max_groups: G
    :param latency_range_ms: (low, high) bounds of the log scale for budgets and latencies
    :param energy_range_mj: (low, high) bounds of the log scale for energy budgets and energies
    """

    units: tuple[str, ...]
    cores: tuple[int, ...]
    max_freq_mhz: tuple[float, ...]
    max_groups: int
    latency_range_ms: tuple[float, float]
    energy_range_mj: tuple[float, float]

    def to_dict(self) -> dict:
        return {
            "units": list(self.units),
            "cores": list(self.cores),
            "max_freq_mhz": list(self.max_freq_mhz),
            "max_groups": self.max_groups,
            "latency_range_ms": list(self.latency_range_ms),
            "energy_range_mj": list(self.energy_range_mj),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ObservationSpec:
        return cls(
            tuple(d["units"]),
            tuple(int(c) for c in d["cores"]),
            tuple(float(f) for f in d["max_freq_mhz"]),
            int(d["max_groups"]),
            (float(d["latency_range_ms"][0]), float(d["latency_range_ms"][1])),
            (float(d["energy_range_mj"][0]), float(d["energy_range_mj"][1])),
        )


class ObservationBuilder:
    """Writes observations into one preallocated ``float32`` array (no allocation per step).

    :param spec: the platform's observation constants
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
        )
        self.size = len(self.names)
        self._n = n
        self._lt = (math.log(spec.latency_range_ms[0]), math.log(spec.latency_range_ms[1] / spec.latency_range_ms[0]))
        self._le = (math.log(spec.energy_range_mj[0]), math.log(spec.energy_range_mj[1] / spec.energy_range_mj[0]))
        self._load_scale = [1.0 / (LOAD_THREADS_PER_CORE * c) for c in spec.cores]
        self._inv_fmax = [1.0 / f for f in spec.max_freq_mhz]
        self._max_cores = max(spec.cores)
        self.out = np.zeros(self.size, dtype=np.float32)

    def build(
        self,
        time_budget_ms: float,
        energy_budget_mj: float,
        load: list[float],
        temp_c: float,
        freq_mhz: list[float],
        prev: tuple[int, int, int, float],
        last_latency_ms: float,
        last_energy_mj: float,
    ) -> np.ndarray:
        """Fill and return the observation array (owned by the builder: copy it to keep it).

        :param prev: previous configuration as (groups, unit index, cores, frequency MHz)
        """
        o = self.out
        n = self._n
        o[0] = _log01(time_budget_ms, self._lt)
        o[1] = _log01(energy_budget_mj, self._le)
        for i in range(n):
            o[2 + i] = min(load[i] * self._load_scale[i], 1.0)
        o[2 + n] = min(max((temp_c - TEMP_RANGE[0]) / (TEMP_RANGE[1] - TEMP_RANGE[0]), 0.0), 1.0)
        for i in range(n):
            o[3 + n + i] = freq_mhz[i] * self._inv_fmax[i]
        g, ui, c, f = prev
        j = 3 + 2 * n
        o[j] = g / self.spec.max_groups
        o[j + 1 : j + 1 + n] = 0.0
        o[j + 1 + ui] = 1.0
        o[j + 1 + n] = c / self._max_cores
        o[j + 2 + n] = f * self._inv_fmax[ui]
        o[j + 3 + n] = _log01(last_latency_ms, self._lt)
        o[j + 4 + n] = _log01(last_energy_mj, self._le)
        return o


def _log01(x: float, scale: tuple[float, float]) -> float:
    if x <= 0:
        return 0.0
    v = (math.log(x) - scale[0]) / scale[1]
    return 0.0 if v < 0.0 else (min(v, 1.0))
