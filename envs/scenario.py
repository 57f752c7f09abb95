"""Scenarios: what the requests ask for and what else the board is doing.

A scenario produces an :class:`EpisodeTrace`, one row per inference request: the time and energy
budgets, the background load (busy threads) and its memory intensity on each unit, the
request period and, optionally, how far the board departs from its nominal model (a latency
and a power factor per unit: the board is slower, faster, hungrier than profiled). Two kinds:

* :class:`ScenarioGenerator`: seeded synthetic episodes from a named preset
  (``envs/scenarios.yaml``). Budgets change in *phases*, as an application switches between
  demands (camera-rate frames with tight deadlines, interactive requests, relaxed background
  inference with a tight energy budget, a battery-saver mode). Budgets are multiples of the
  platform's own reference latency and energy (the fastest and the most frugal full-accuracy
  configuration on the idle board), so a preset means the same thing on every platform.
  Background load on each unit is a Markov chain over levels (idle / light / heavy, heavier
  levels more memory-intensive); it is what makes the best configuration move within a phase.
* :class:`TraceScenario`: replay of a recorded CSV (documented format below), so the same
  environment runs on load recorded on a real board, and any generated episode can be
  replayed exactly (``dynscale env record``).

CSV format (one row per request; header required)::

    time_budget_ms, energy_budget_mj, load_<unit> (one per unit), [mem_<unit>], [period_ms], [phase],
    [latency_error_<unit>], [power_error_<unit>], [awake_ms], [wake_tick_phase_ms]

``load_<unit>`` is busy background threads (fractional allowed), ``mem_<unit>`` their memory
intensity in [0, 1] (default 0), ``period_ms`` the time from this request to the next
(default 100), ``phase`` an informational integer, ``latency_error_<unit>`` and
``power_error_<unit>`` the board's true latency and power on the unit over the nominal model's
(default 1; within 0.1..10; the latency error stretches the compute and the mean wait for
co-runners, not the whole scheduler quanta a run waits, which are the kernel's), ``awake_ms``
how long the controller's process has run since its wake when the inference starts (default 0;
0..1000: it spends the scheduler's wake-up credit, :class:`hwmodels.model.State`),
``wake_tick_phase_ms`` how far into a scheduler tick the process woke for the request (default:
drawn per request, uniform over the profile's tick; a replayed deploy log's, so the simulated
runs meet the ticks where the live ones did; used on a profile with a tick grid, within one tick
of it, a phase logged as the tick itself, by rounding, being 0).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from dnn.errors import UserError
from dnn.fileio import atomic_write, read_csv_rows, read_yaml
from hwmodels.model import MAX_LOAD_THREADS_PER_CORE

SCENARIOS_FILE = Path(__file__).resolve().parent / "scenarios.yaml"
DEFAULT_PERIOD_MS = 100.0


class ScenarioError(UserError, ValueError):
    """A scenario preset or trace that cannot be used; the message names file, row and column."""


@dataclass
class EpisodeTrace:
    """One episode's requests, as arrays (row i = request i)."""

    units: tuple[str, ...]
    time_budget_ms: np.ndarray
    energy_budget_mj: np.ndarray
    load: np.ndarray  # (n, units)
    mem: np.ndarray  # (n, units)
    period_ms: np.ndarray
    phase: np.ndarray
    latency_error: np.ndarray | None = None  # (n, units): true latency / nominal model's; None: 1
    power_error: np.ndarray | None = None  # (n, units): true power / nominal model's; None: 1
    awake_ms: np.ndarray | None = None  # (n,): ms the process ran since its wake when the inference starts; None: 0
    tick_phase_ms: np.ndarray | None = None  # (n,): how far into a scheduler tick the process woke; None: drawn

    def __len__(self) -> int:
        return len(self.time_budget_ms)

    def rows(self, length: int) -> EpisodeTrace:
        """The first ``length`` requests."""
        cut = lambda a: None if a is None else a[:length]  # noqa: E731
        return EpisodeTrace(
            self.units,
            self.time_budget_ms[:length],
            self.energy_budget_mj[:length],
            self.load[:length],
            self.mem[:length],
            self.period_ms[:length],
            self.phase[:length],
            cut(self.latency_error),
            cut(self.power_error),
            cut(self.awake_ms),
            cut(self.tick_phase_ms),
        )

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the documented CSV format (atomically)."""
        cols = [
            "time_budget_ms",
            "energy_budget_mj",
            *(f"load_{u}" for u in self.units),
            *(f"mem_{u}" for u in self.units),
            "period_ms",
            "phase",
        ]
        errors = [e for e in (self.latency_error, self.power_error) if e is not None]
        if errors:  # both are written when either is set (the other as ones)
            cols += [*(f"latency_error_{u}" for u in self.units), *(f"power_error_{u}" for u in self.units)]
            ones = np.ones_like(self.load)
            lat_e = ones if self.latency_error is None else self.latency_error
            pow_e = ones if self.power_error is None else self.power_error
        if self.awake_ms is not None:
            cols.append("awake_ms")
        if self.tick_phase_ms is not None:
            cols.append("wake_tick_phase_ms")
        with atomic_write(path, newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for i in range(len(self)):
                w.writerow(
                    [
                        repr(float(self.time_budget_ms[i])),
                        repr(float(self.energy_budget_mj[i])),
                        *(repr(float(x)) for x in self.load[i]),
                        *(repr(float(x)) for x in self.mem[i]),
                        repr(float(self.period_ms[i])),
                        int(self.phase[i]),
                        *((repr(float(x)) for x in (*lat_e[i], *pow_e[i])) if errors else ()),
                        *(() if self.awake_ms is None else (repr(float(self.awake_ms[i])),)),
                        *(() if self.tick_phase_ms is None else (repr(float(self.tick_phase_ms[i])),)),
                    ]
                )


# ---------------------------------------------------------------- generated scenarios


@dataclass(frozen=True)
class BudgetMode:
    """One kind of phase: budgets as multiples of the platform's reference latency and energy."""

    name: str
    time: tuple[float, float]
    energy: tuple[float, float]
    period_ms: float
    weight: float


@dataclass(frozen=True)
class LoadLevel:
    """A background-load level: busy threads per core of the unit and memory intensity ranges."""

    name: str
    threads_per_core: tuple[float, float]
    mem: tuple[float, float]


@dataclass(frozen=True)
class Bursts:
    """Short co-runner bursts on top of a unit's Markov level.

    :param rate: probability per request and unit that a burst starts
    :param length: burst length in requests [low, high]
    :param threads_per_core: extra busy threads per core of the unit [low, high]
    :param mem: memory intensity of the burst [low, high]
    """

    rate: float
    length: tuple[float, float]
    threads_per_core: tuple[float, float]
    mem: tuple[float, float]


@dataclass(frozen=True)
class Periodic:
    """A periodic co-runner (square wave) on top of a unit's Markov level.

    :param probability: chance per episode and unit that the unit has one
    :param period: period in requests [low, high]
    :param duty: fraction of the period it runs [low, high]
    :param threads_per_core: its busy threads per core of the unit [low, high]
    :param mem: its memory intensity [low, high]
    """

    probability: float
    period: tuple[float, float]
    duty: tuple[float, float]
    threads_per_core: tuple[float, float]
    mem: tuple[float, float]


@dataclass(frozen=True)
class ModelError:
    """The board's departure from its nominal model, drawn per episode and unit (sim-to-real
    domain randomisation: agents learn to read the online slow-down estimate instead of
    trusting the model).

    :param probability: share of episodes in which the board departs from the model at all
        (in the others it is exact: an agent must stay sharp on a board that matches its
        profile, not only be cautious on one that does not)
    :param latency: true latency / nominal, drawn log-uniformly from [low, high]
    :param power: true power / nominal, drawn log-uniformly from [low, high]
    :param drift: share of those episodes in which a unit's factors move log-linearly to a
        second draw by the episode's end (the board warms, a governor or a co-runner changes)
    """

    probability: float
    latency: tuple[float, float]
    power: tuple[float, float]
    drift: float


#: what ``randomise:`` may draw per episode (domain randomisation), each from [low, high]
RANDOMISED = {
    "time_scale": "multiplies every mode's time budget range",
    "energy_scale": "multiplies every mode's energy budget range",
    "phase_scale": "multiplies phase_length",
    "stay": "load.stay",
    "threads_scale": "multiplies every load level's (and burst's) threads per core",
    "drift": "budgets.drift",
    "jump_rate": "budgets.jump_rate",
    "burst_rate": "load.bursts.rate",
    "periodic_probability": "load.periodic.probability",
}


@dataclass(frozen=True)
class ScenarioConfig:
    """A named preset from ``envs/scenarios.yaml`` (see that file for each choice's reason).

    :param drift: share of phases whose budgets move log-linearly, over the phase, from their
        draw to a second draw of the same mode
    :param jump_rate: probability per request that the budgets jump to a new draw of the mode
    :param bursts: co-runner bursts (``None``: none)
    :param periodic: periodic co-runners (``None``: none)
    :param randomise: per-episode ranges of the parameters in :data:`RANDOMISED` (``None``: fixed)
    :param model_error: the board's departure from the nominal model (``None``: the model is exact)
    :param awake_ms: how long the controller runs between its wake and the inference, drawn
        uniformly per episode from [low, high] (``None``: 0): live, observing, deciding and applying
        spend the scheduler's wake-up credit before the inference does
    """

    name: str
    description: str
    phase_length: tuple[int, int]
    modes: tuple[BudgetMode, ...]
    levels: tuple[LoadLevel, ...]
    stay: float
    start: np.ndarray
    transitions: np.ndarray
    loaded_units: tuple[str, ...] | None
    drift: float = 0.0
    jump_rate: float = 0.0
    bursts: Bursts | None = None
    periodic: Periodic | None = None
    randomise: dict[str, tuple[float, float]] | None = None
    model_error: ModelError | None = None
    awake_ms: tuple[float, float] | None = None

    def drawn(self, rng: np.random.Generator) -> ScenarioConfig:
        """This preset with its ``randomise`` parameters drawn for one episode."""
        if not self.randomise:
            return self
        v = {k: float(rng.uniform(*r)) for k, r in self.randomise.items()}
        ts, es, ps, ls = (v.get(k, 1.0) for k in ("time_scale", "energy_scale", "phase_scale", "threads_scale"))
        scale = lambda pair, f: (pair[0] * f, pair[1] * f)  # noqa: E731
        phase = (max(1, round(self.phase_length[0] * ps)), max(1, round(self.phase_length[1] * ps)))
        bursts, periodic = self.bursts, self.periodic
        if bursts is not None:
            bursts = replace(bursts, rate=v.get("burst_rate", bursts.rate), threads_per_core=scale(bursts.threads_per_core, ls))
        if periodic is not None:
            periodic = replace(periodic, probability=v.get("periodic_probability", periodic.probability))
        return replace(
            self,
            phase_length=phase,
            modes=tuple(replace(m, time=scale(m.time, ts), energy=scale(m.energy, es)) for m in self.modes),
            levels=tuple(replace(lv, threads_per_core=scale(lv.threads_per_core, ls)) for lv in self.levels),
            stay=v.get("stay", self.stay),
            drift=v.get("drift", self.drift),
            jump_rate=v.get("jump_rate", self.jump_rate),
            bursts=bursts,
            periodic=periodic,
            randomise=None,
        )


def scenario_names() -> list[str]:
    return sorted(yaml.safe_load(SCENARIOS_FILE.read_text()))


def load_scenario(name_or_path: str) -> ScenarioConfig:
    """A preset by name from ``envs/scenarios.yaml``, or the single preset in a YAML file of the same shape."""
    if name_or_path in scenario_names():
        where, doc = SCENARIOS_FILE, yaml.safe_load(SCENARIOS_FILE.read_text())[name_or_path]
        name = name_or_path
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise ScenarioError(f"{name_or_path}: neither a scenario preset ({', '.join(scenario_names())}) nor a YAML file")
        raw = read_yaml(p, ScenarioError, "scenario file")
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ScenarioError(f"{p}: must hold exactly one preset (name: {{...}})")
        (name, doc), where = next(iter(raw.items())), p
    return _parse_scenario(name, doc, where)


def _parse_scenario(name: str, d: dict, where: Path) -> ScenarioConfig:
    def err(field: str, msg: str) -> ScenarioError:
        return ScenarioError(f"{where}: field '{name}.{field}' {msg}")

    def pair(v, field: str, lo: float = 0.0) -> tuple[float, float]:
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)) or not lo <= v[0] <= v[1]:
            raise err(field, f"must be [low, high] with {lo:g} <= low <= high, got {v!r}")
        return float(v[0]), float(v[1])

    try:
        modes = tuple(
            BudgetMode(
                m,
                pair(c["time"], f"modes.{m}.time", 1e-9),
                pair(c["energy"], f"modes.{m}.energy", 1e-9),
                float(c["period_ms"]),
                float(c.get("weight", 1.0)),
            )
            for m, c in d["modes"].items()
        )
        load = d["load"]
        levels = tuple(
            LoadLevel(n, pair(c["threads_per_core"], f"load.levels.{n}.threads_per_core"), pair(c["mem"], f"load.levels.{n}.mem"))
            for n, c in load["levels"].items()
        )
        start = np.asarray(load["start"], dtype=np.float64)
        trans = np.asarray(load["transitions"], dtype=np.float64)
        stay = float(load["stay"])
        phase = pair(d["phase_length"], "phase_length", 1)
        units = load.get("units")
        moves = _parse_budget_moves(d.get("budgets") or {}, err)
        bursts = _parse_section(load.get("bursts"), "load.bursts", Bursts, ("rate",), pair, err)
        periodic = _parse_section(load.get("periodic"), "load.periodic", Periodic, ("probability",), pair, err)
        randomise = _parse_randomise(d.get("randomise"), pair, err)
        model_error = _parse_section(d.get("model_error"), "model_error", ModelError, ("probability", "drift"), pair, err)
        for k in ("latency", "power"):
            if model_error is not None and getattr(model_error, k)[0] <= 0:
                raise err(f"model_error.{k}", f"must be a range of positive factors, got {list(getattr(model_error, k))}")
        awake = None if d.get("awake_ms") is None else pair(d["awake_ms"], "awake_ms", 0.0)
        if awake is not None and not 0 <= awake[0] <= awake[1] <= MAX_AWAKE_MS:
            raise err("awake_ms", f"must be a range within [0, {MAX_AWAKE_MS:g}] ms, got {list(awake)}")
    except KeyError as exc:
        raise err(str(exc.args[0]), "is missing") from None
    except (TypeError, AttributeError, ValueError) as exc:
        raise ScenarioError(f"{where}: preset '{name}' malformed ({exc})") from None
    k = len(levels)
    if start.shape != (k,) or abs(start.sum() - 1) > 1e-9 or np.any(start < 0):
        raise err("load.start", f"must be {k} probabilities summing to 1")
    if trans.shape != (k, k) or np.any(trans < 0) or np.any(np.abs(trans.sum(1) - 1) > 1e-9):
        raise err("load.transitions", f"must be a {k}x{k} matrix whose rows sum to 1")
    if not 0 <= stay <= 1:
        raise err("load.stay", "must be a probability")
    if any(m.period_ms <= 0 or m.weight < 0 for m in modes) or not modes:
        raise err("modes", "need positive period_ms and non-negative weight")
    return ScenarioConfig(
        name,
        str(d.get("description", "")),
        (int(phase[0]), int(phase[1])),
        modes,
        levels,
        stay,
        start,
        trans,
        tuple(units) if units else None,
        moves["drift"],
        moves["jump_rate"],
        bursts,
        periodic,
        randomise,
        model_error,
        awake,
    )


def _probability(v, field: str, err) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise err(field, f"must be a probability in [0, 1], got {v!r}")
    return float(v)


def _parse_budget_moves(d: dict, err) -> dict[str, float]:
    """``budgets: {drift, jump_rate}`` (both probabilities, default 0)."""
    if not isinstance(d, dict) or set(d) - {"drift", "jump_rate"}:
        raise err("budgets", f"takes drift and jump_rate, got {d!r}")
    return {k: _probability(d.get(k, 0.0), f"budgets.{k}", err) for k in ("drift", "jump_rate")}


def _parse_section(d, where: str, cls: type, scalars: tuple[str, ...], pair, err):
    """``load.bursts`` or ``load.periodic``: its probability field(s) and [low, high] ranges."""
    if d is None:
        return None
    names = list(cls.__dataclass_fields__)
    if not isinstance(d, dict) or set(d) != set(names):
        raise err(where, f"needs exactly {', '.join(names)}")
    return cls(**{k: _probability(d[k], f"{where}.{k}", err) if k in scalars else pair(d[k], f"{where}.{k}") for k in names})


def _parse_randomise(d, pair, err) -> dict[str, tuple[float, float]] | None:
    """``randomise: {parameter: [low, high]}`` over the names of :data:`RANDOMISED`."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise err("randomise", "must map parameters to [low, high] ranges")
    for k in d:
        if k not in RANDOMISED:
            raise err(f"randomise.{k}", f"unknown; valid: {', '.join(RANDOMISED)}")
    out = {k: pair(v, f"randomise.{k}") for k, v in d.items()}
    for k in ("stay", "drift", "jump_rate", "burst_rate", "periodic_probability"):
        if k in out and out[k][1] > 1:
            raise err(f"randomise.{k}", f"is a probability range within [0, 1], got {list(out[k])}")
    for k in ("time_scale", "energy_scale", "phase_scale", "threads_scale"):
        if k in out and out[k][0] <= 0:
            raise err(f"randomise.{k}", f"must be a positive range, got {list(out[k])}")
    return out


class ScenarioGenerator:
    """Seeded synthetic episodes of a preset on one platform.

    :param cfg: the preset
    :param units: unit names of the platform
    :param cores: cores per unit
    :param t_ref_ms: reference latency (fastest full-accuracy configuration, idle board)
    :param e_ref_mj: reference energy (most frugal full-accuracy configuration, idle board)
    """

    def __init__(
        self, cfg: ScenarioConfig, units: tuple[str, ...], cores: tuple[int, ...], t_ref_ms: float, e_ref_mj: float
    ) -> None:
        self.cfg, self.units, self.cores = cfg, units, cores
        self.t_ref, self.e_ref = t_ref_ms, e_ref_mj
        if cfg.loaded_units is not None:
            bad = [u for u in cfg.loaded_units if u not in units]
            if bad:
                raise ScenarioError(f"scenario '{cfg.name}': load.units names {bad[0]!r}; valid: {', '.join(units)}")
        self._loaded = [cfg.loaded_units is None or u in cfg.loaded_units for u in units]
        w = np.array([m.weight for m in cfg.modes])
        self._mode_p = w / w.sum()

    def episode(self, rng: np.random.Generator, length: int) -> EpisodeTrace:
        """A new episode of ``length`` requests drawn from ``rng`` (with the preset's
        ``randomise`` parameters drawn first, when it has them)."""
        cfg = self.cfg.drawn(rng)
        tb, eb, period, phase = self._budgets(cfg, rng, length)
        load, mem = self._markov_load(cfg, rng, length)
        if cfg.bursts is not None:
            self._add_bursts(cfg.bursts, rng, load, mem)
        if cfg.periodic is not None:
            self._add_periodic(cfg.periodic, rng, load, mem)
        np.minimum(load, MAX_LOAD_THREADS_PER_CORE * np.asarray(self.cores, dtype=float), out=load)
        lat_err = pow_err = None
        if cfg.model_error is not None and rng.random() < cfg.model_error.probability:
            lat_err, pow_err = self._model_error(cfg.model_error, rng, length)
        awake = None if cfg.awake_ms is None else np.full(length, rng.uniform(*cfg.awake_ms))
        return EpisodeTrace(self.units, tb, eb, load, mem, period, phase, lat_err, pow_err, awake)

    def _model_error(self, me: ModelError, rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Latency and power factors per request and unit: one draw per unit, drifting to a
        second draw over the episode in a ``drift`` share of episodes."""
        n = len(self.units)
        out = []
        for bounds in (me.latency, me.power):
            lo, hi = math.log(bounds[0]), math.log(bounds[1])
            start = rng.uniform(lo, hi, n)
            end = np.where(rng.random(n) < me.drift, rng.uniform(lo, hi, n), start)
            w = np.linspace(0.0, 1.0, length)[:, None]
            out.append(np.exp(start + w * (end - start)))
        return out[0], out[1]

    def _budgets(self, cfg: ScenarioConfig, rng: np.random.Generator, length: int):
        """Budgets in phases of one mode each; within a phase they may drift and jump."""
        tb, eb, period = np.empty(length), np.empty(length), np.empty(length)
        phase = np.empty(length, dtype=np.int64)
        i, p, prev_mode = 0, 0, -1
        while i < length:
            m = int(rng.choice(len(cfg.modes), p=self._mode_p))
            if m == prev_mode and len(cfg.modes) > 1:  # a new phase is a new demand
                m = (m + 1 + int(rng.integers(len(cfg.modes) - 1))) % len(cfg.modes)
            mode = cfg.modes[m]
            n = min(int(rng.integers(cfg.phase_length[0], cfg.phase_length[1] + 1)), length - i)
            tb[i : i + n], eb[i : i + n] = self._phase_budgets(cfg, mode, rng, n)
            period[i : i + n] = mode.period_ms
            phase[i : i + n] = p
            i, p, prev_mode = i + n, p + 1, m
        return tb, eb, period, phase

    def _phase_budgets(self, cfg: ScenarioConfig, mode: BudgetMode, rng: np.random.Generator, n: int):
        """One phase's budgets: a draw of the mode held, or moving log-linearly to a second draw
        (drift); a jump redraws the budgets from where it happens (the drift goes on from there)."""
        draw = lambda: (self.t_ref * _log_uniform(rng, mode.time), self.e_ref * _log_uniform(rng, mode.energy))  # noqa: E731
        start = draw()
        end = draw() if cfg.drift > 0 and rng.random() < cfg.drift else None
        cuts = [0, n]
        if cfg.jump_rate > 0:
            cuts[1:1] = (np.flatnonzero(rng.random(n) < cfg.jump_rate) + 1)[:-1].tolist() if n > 1 else []
            cuts = sorted(set(cuts))
        out = np.empty((2, n))
        for a, b in zip(cuts, cuts[1:]):
            s = start if a == 0 else draw()
            for j in range(2):
                if end is None:
                    out[j, a:b] = s[j]
                else:  # log-linear from s at request a to the end draw at the phase's last request
                    w = (np.arange(a, b) - a) / max(n - 1 - a, 1)
                    out[j, a:b] = np.exp(np.log(s[j]) * (1 - w) + np.log(end[j]) * w)
        return out[0], out[1]

    def _markov_load(self, cfg: ScenarioConfig, rng: np.random.Generator, length: int):
        """Busy threads and memory intensity per unit: a Markov chain over the load levels."""
        n_units = len(self.units)
        load = np.zeros((length, n_units))
        mem = np.zeros((length, n_units))
        k = len(cfg.levels)
        leave = rng.random((length, n_units)) >= cfg.stay
        for u in range(n_units):
            if not self._loaded[u]:
                continue
            level = int(rng.choice(k, p=cfg.start))
            threads, intensity = self._draw(cfg, rng, level, u)
            for t in range(length):
                if t and leave[t, u]:
                    level = int(rng.choice(k, p=cfg.transitions[level]))
                    threads, intensity = self._draw(cfg, rng, level, u)
                load[t, u] = threads
                mem[t, u] = intensity
        return load, mem

    def _add_bursts(self, b: Bursts, rng: np.random.Generator, load: np.ndarray, mem: np.ndarray) -> None:
        """Short co-runners on top of the Markov level (memory intensity: the heavier of the two)."""
        length = len(load)
        for u in range(len(self.units)):
            if not self._loaded[u]:
                continue
            for t in np.flatnonzero(rng.random(length) < b.rate).tolist():
                n = int(rng.integers(int(b.length[0]), int(b.length[1]) + 1))
                threads = round(float(rng.uniform(*b.threads_per_core)) * self.cores[u], 2)
                load[t : t + n, u] += threads
                mem[t : t + n, u] = np.maximum(mem[t : t + n, u], round(float(rng.uniform(*b.mem)), 2))

    def _add_periodic(self, pc: Periodic, rng: np.random.Generator, load: np.ndarray, mem: np.ndarray) -> None:
        """A square-wave co-runner on some units (each with the episode's probability)."""
        t = np.arange(len(load))
        for u in range(len(self.units)):
            if not self._loaded[u] or rng.random() >= pc.probability:
                continue
            period = float(rng.uniform(*pc.period))
            on = ((t + rng.uniform(0, period)) % period) < float(rng.uniform(*pc.duty)) * period
            load[on, u] += round(float(rng.uniform(*pc.threads_per_core)) * self.cores[u], 2)
            mem[on, u] = np.maximum(mem[on, u], round(float(rng.uniform(*pc.mem)), 2))

    def _draw(self, cfg: ScenarioConfig, rng: np.random.Generator, level: int, unit: int) -> tuple[float, float]:
        lv = cfg.levels[level]
        threads = round(float(rng.uniform(*lv.threads_per_core)) * self.cores[unit], 2)
        return threads, (round(float(rng.uniform(*lv.mem)), 2) if threads > 0 else 0.0)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# ---------------------------------------------------------------- replay


class TraceScenario:
    """Replays one recorded episode (the same requests every reset).

    :param trace: the requests
    :param source: where they came from (for messages)
    """

    def __init__(self, trace: EpisodeTrace, source: str = "") -> None:
        self.trace, self.source = trace, source

    @classmethod
    def from_csv(cls, path: str | os.PathLike, units: tuple[str, ...], cores: tuple[int, ...]) -> TraceScenario:
        """Read and validate a trace CSV for a platform with ``units`` of ``cores`` cores each.

        :raises ScenarioError: one line naming the file, the line and the column at fault
        """
        rows = read_csv_rows(path, ScenarioError, "trace file")
        return cls(_trace_of_rows(Path(path), rows, units, cores), str(path))

    def episode(self, rng: np.random.Generator, length: int) -> EpisodeTrace:
        """The recorded requests (``rng`` unused: replay is exact); ``length`` must not exceed them."""
        if length > len(self.trace):
            raise ScenarioError(f"{self.source}: trace has {len(self.trace)} requests, episode_length asks for {length}")
        return self.trace.rows(length)


#: the longest a controller may run before its inference (a trace's or a scenario's ``awake_ms``)
MAX_AWAKE_MS = 1000.0
#: the longest scheduler tick (HZ 1): a trace's ``wake_tick_phase_ms`` is below it (and within the profile's tick)
MAX_TICK_MS = 1000.0
#: the longest gap between two requests a trace may ask for (one hour): longer ones are typos
MAX_PERIOD_MS = 3_600_000.0


def _trace_of_rows(p: Path, rows: list[list[str]], units: tuple[str, ...], cores: tuple[int, ...]) -> EpisodeTrace:
    """The requests of trace ``p`` read as CSV ``rows``, validated one by one."""
    col = _trace_columns(p, rows[0] if rows else None, units)
    requests = [
        _trace_row(p, line, row, col, units, cores)
        for line, row in enumerate(rows[1:], start=2)
        if row and any(c.strip() for c in row)
    ]
    if not requests:
        raise ScenarioError(f"{p}: no requests after the header")
    return EpisodeTrace(
        units=tuple(units),
        time_budget_ms=np.array([r["time_budget_ms"] for r in requests]),
        energy_budget_mj=np.array([r["energy_budget_mj"] for r in requests]),
        load=np.array([[r[f"load_{u}"] for u in units] for r in requests]),
        mem=np.array([[r.get(f"mem_{u}", 0.0) for u in units] for r in requests]),
        period_ms=np.array([r.get("period_ms", DEFAULT_PERIOD_MS) for r in requests]),
        phase=np.array([int(r.get("phase", 0)) for r in requests], dtype=np.int64),
        latency_error=_optional_columns(requests, "latency_error", units),
        power_error=_optional_columns(requests, "power_error", units),
        awake_ms=np.array([r.get("awake_ms", 0.0) for r in requests]) if "awake_ms" in requests[0] else None,
        tick_phase_ms=np.array([r["wake_tick_phase_ms"] for r in requests]) if "wake_tick_phase_ms" in requests[0] else None,
    )


def _optional_columns(requests: list[dict[str, float]], prefix: str, units: tuple[str, ...]) -> np.ndarray | None:
    """``prefix_<unit>`` per request and unit (1 where absent), or ``None`` if no row has any."""
    names = [f"{prefix}_{u}" for u in units]
    if not any(h in requests[0] for h in names):
        return None
    return np.array([[r.get(h, 1.0) for h in names] for r in requests])


def _trace_columns(p: Path, header: list[str] | None, units: tuple[str, ...]) -> dict[str, int]:
    """Column name -> index of a trace's header row; unknown, missing or repeated names refused."""
    if not header:
        raise ScenarioError(f"{p}: empty file (a header row is required)")
    header = [h.strip() for h in header]
    required = ["time_budget_ms", "energy_budget_mj", *(f"load_{u}" for u in units)]
    optional = [
        *(f"mem_{u}" for u in units),
        "period_ms",
        "phase",
        *(f"latency_error_{u}" for u in units),
        *(f"power_error_{u}" for u in units),
        "awake_ms",
        "wake_tick_phase_ms",
    ]
    for i, h in enumerate(header):
        if h not in required and h not in optional:
            hint = (
                f" (this platform's units: {', '.join(units)})"
                if h.startswith(("load_", "mem_", "latency_error_", "power_error_"))
                else ""
            )
            raise ScenarioError(f"{p}:1: unknown column '{h}'{hint}; expected {', '.join(required + optional)}")
        if h in header[:i]:
            raise ScenarioError(f"{p}:1: column '{h}' appears twice (columns {header.index(h) + 1} and {i + 1})")
    for h in required:
        if h not in header:
            raise ScenarioError(f"{p}:1: missing column '{h}'")
    return {h: i for i, h in enumerate(header)}


def _trace_row(
    p: Path, line: int, row: list[str], col: dict[str, int], units: tuple[str, ...], cores: tuple[int, ...]
) -> dict[str, float]:
    """One request of a trace: every field a finite number within what the platform can run."""
    if len(row) != len(col):
        raise ScenarioError(f"{p}:{line}: {len(row)} fields, the header has {len(col)}")
    vals = {}
    for h, i in col.items():
        try:
            vals[h] = float(row[i])
        except ValueError:
            raise ScenarioError(f"{p}:{line}: column '{h}': {row[i]!r} is not a number") from None
        if not math.isfinite(vals[h]):
            raise ScenarioError(f"{p}:{line}: column '{h}': {row[i]!r} is not a finite number")
    for h in ("time_budget_ms", "energy_budget_mj", "period_ms"):
        if h in vals and vals[h] <= 0:
            raise ScenarioError(f"{p}:{line}: column '{h}': must be positive, got {vals[h]:g}")
    if vals.get("period_ms", 0.0) > MAX_PERIOD_MS:
        raise ScenarioError(f"{p}:{line}: column 'period_ms': {vals['period_ms']:g} is more than one hour ({MAX_PERIOD_MS:g})")
    if not 0 <= vals.get("wake_tick_phase_ms", 0.0) < MAX_TICK_MS:
        raise ScenarioError(
            f"{p}:{line}: column 'wake_tick_phase_ms': must be in [0, {MAX_TICK_MS:g}), got {vals['wake_tick_phase_ms']:g}"
        )
    if not 0 <= vals.get("awake_ms", 0.0) <= MAX_AWAKE_MS:
        raise ScenarioError(f"{p}:{line}: column 'awake_ms': must be in [0, {MAX_AWAKE_MS:g}], got {vals['awake_ms']:g}")
    if "phase" in vals and (vals["phase"] < 0 or vals["phase"] != int(vals["phase"])):
        raise ScenarioError(f"{p}:{line}: column 'phase': expected a whole number >= 0, got {row[col['phase']]!r}")
    for u, n in zip(units, cores):
        most = MAX_LOAD_THREADS_PER_CORE * n
        if not 0 <= vals[f"load_{u}"] <= most:
            raise ScenarioError(
                f"{p}:{line}: column 'load_{u}': {vals[f'load_{u}']:g} busy threads is outside 0..{most:g} "
                f"({n} core{'s' if n > 1 else ''} x {MAX_LOAD_THREADS_PER_CORE:g})"
            )
        if not 0 <= vals.get(f"mem_{u}", 0.0) <= 1:
            raise ScenarioError(f"{p}:{line}: column 'mem_{u}': must be in [0, 1], got {vals[f'mem_{u}']:g}")
        for h in (f"latency_error_{u}", f"power_error_{u}"):
            if not 0.1 <= vals.get(h, 1.0) <= 10:
                raise ScenarioError(f"{p}:{line}: column '{h}': must be in [0.1, 10], got {vals[h]:g}")
    return vals
