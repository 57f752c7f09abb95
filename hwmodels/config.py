"""``Config`` and the enumeration of a platform's configurations (the agent's action space).

Order (stable, documented): group count k ascending; within k, units in profile order; within
a unit, cores ascending; within that, frequencies ascending. For the XU3 that is
k x (A15: 4 cores x 19 frequencies, then A7: 4 x 13) = 4 x 128 = 512 configurations; for the
Nano, 4 x (A57: 4 x 15, then GPU: 1 x 12) = 288.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnn.errors import UserError
from hwmodels.profile import PlatformSpec


@dataclass(frozen=True)
class Config:
    """The dynamic DNN at ``groups`` groups, mapped on ``cores`` cores of ``unit`` at ``freq_mhz``.

    :param groups: channel groups run (1..G)
    :param unit: unit name in the platform profile (``a15``, ``a7``, ``a57``, ``gpu``, ...)
    :param cores: cores used (1 for a GPU)
    :param freq_mhz: the unit's DVFS frequency
    """

    groups: int
    unit: str
    cores: int
    freq_mhz: float

    def __str__(self) -> str:
        return f"k={self.groups} {self.unit}x{self.cores}@{self.freq_mhz:g}MHz"


class ConfigError(UserError, ValueError):
    """A configuration the platform does not offer; the message lists what is valid."""


class ConfigSpace:
    """The enumerated configurations of one platform for a DNN with ``max_groups`` groups.

    Arrays (one entry per configuration, in action order): ``groups``, ``unit_idx``, ``cores``,
    ``freq_mhz``, ``freq_idx`` (index in the unit's DVFS table), ``volt``.

    :param spec: the platform
    :param max_groups: G of the dynamic DNN
    """

    def __init__(self, spec: PlatformSpec, max_groups: int) -> None:
        self.spec = spec
        self.max_groups = max_groups
        rows = []
        for k in range(1, max_groups + 1):
            for ui, u in enumerate(spec.units):
                for c in range(1, u.cores + 1):
                    for fi, f in enumerate(u.freqs_mhz):
                        rows.append((k, ui, c, float(f), fi, float(u.volts[fi])))
        cols = list(zip(*rows))
        self.groups = np.array(cols[0], dtype=np.int64)
        self.unit_idx = np.array(cols[1], dtype=np.int64)
        self.cores = np.array(cols[2], dtype=np.int64)
        self.freq_mhz = np.array(cols[3], dtype=np.float64)
        self.freq_idx = np.array(cols[4], dtype=np.int64)
        self.volt = np.array(cols[5], dtype=np.float64)
        self._index = {(k, spec.units[ui].name, c, f): i for i, (k, ui, c, f, _, _) in enumerate(rows)}

    def __len__(self) -> int:
        return len(self.groups)

    def decode(self, index: int) -> Config:
        """The configuration at action ``index``."""
        if not 0 <= int(index) < len(self):
            raise ConfigError(f"action {index} out of range 0..{len(self) - 1}")
        i = int(index)
        return Config(int(self.groups[i]), self.spec.units[self.unit_idx[i]].name, int(self.cores[i]), float(self.freq_mhz[i]))

    def encode(self, cfg: Config) -> int:
        """The action index of ``cfg``.

        :raises ConfigError: naming what is valid when ``cfg`` is not offered by the platform
        """
        key = (cfg.groups, cfg.unit, cfg.cores, float(cfg.freq_mhz))
        if key in self._index:
            return self._index[key]
        self.validate(cfg)
        raise ConfigError(f"{cfg} is not a configuration of {self.spec.name}")  # pragma: no cover

    def validate(self, cfg: Config) -> None:
        """Raise a one-line :class:`ConfigError` listing what is valid for the field at fault."""
        names = [u.name for u in self.spec.units]
        if not 1 <= cfg.groups <= self.max_groups:
            raise ConfigError(f"groups {cfg.groups} out of range; valid: 1..{self.max_groups}")
        if cfg.unit not in names:
            raise ConfigError(f"unknown unit {cfg.unit!r}; valid: {', '.join(names)}")
        u = self.spec.unit(cfg.unit)
        if not 1 <= cfg.cores <= u.cores:
            raise ConfigError(f"cores {cfg.cores} out of range for {u.name}; valid: 1..{u.cores}")
        if float(cfg.freq_mhz) not in set(u.freqs_mhz.tolist()):
            raise ConfigError(
                f"{cfg.freq_mhz:g} MHz is not in the {u.name} DVFS table; valid: {', '.join(f'{f:g}' for f in u.freqs_mhz)}"
            )
