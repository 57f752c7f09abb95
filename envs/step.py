"""The one step shared by the simulated env and the live loop.

A :class:`Request` is one inference request and the board state it meets, as the board
observes it. A controller picks a configuration for it; the configuration runs (on the model
or on the board) and gives an outcome (latency, energy, power, delivered frequency);
:meth:`StepScorer.score` turns request, action and outcome into the reward and the ``info``
dict; :meth:`EpisodeLog.add` keeps the record. :class:`envs.DynDNNEnv` and
:class:`runtime.session.LiveSession` both go through these, so a policy is scored the same
way in simulation and live.

numpy only: the board runs this without torch, gymnasium or stable-baselines3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from dnn.profile import DNNProfile
from envs.reward import RewardConfig
from hwmodels.config import Config, ConfigSpace
from hwmodels.model import Outcome, PlatformModel, State

#: memory intensity 0..1 assumed for a unit with background load: neither the live board nor the
#: env's request observes it, so model-based predictions take the middle of the range (not a
#: value fitted to any scenario); an idle unit has none
ASSUMED_MEM = 0.5

#: the previous configuration as the observation sees it: (groups, unit index, cores, frequency MHz)
PrevConfig = tuple[int, int, int, float]


@dataclass(slots=True)
class Request:
    """One inference request and the board state it meets: all a controller may read.

    :param time_budget_ms: deadline of this request
    :param energy_budget_mj: energy budget of this request
    :param period_ms: time from this request to the next
    :param load: busy background threads per unit, as measured
    :param temp_c: die temperature
    :param freq_mhz: current frequency per unit
    :param prev: the previous request's configuration (groups, unit index, cores, frequency)
    :param last_latency_ms: the previous request's latency (0 before the first)
    :param last_energy_mj: the previous request's energy (0 before the first)
    :param slowdown: the online slow-down estimate per unit (:class:`envs.slowdown.SlowdownEstimator`:
        measured / predicted latency, filtered); ``None``: the nominal model (1 everywhere)
    :param awake_ms: how long the process will have run since its wake when the inference starts
        (observing, deciding, applying: it spends the scheduler's wake-up credit; live, the
        previous request's; :class:`hwmodels.model.State`)
    :param tick_phase_ms: how far into a scheduler tick the process woke for this request (ms; live,
        read off the profile's tick grid at the wake, before the decision); ``None``: not known
        (no grid, or one probed in another boot), the model's wait then its mean over the phase
    """

    time_budget_ms: float
    energy_budget_mj: float
    period_ms: float
    load: Sequence[float]
    temp_c: float
    freq_mhz: Sequence[float]
    prev: PrevConfig
    last_latency_ms: float = 0.0
    last_energy_mj: float = 0.0
    slowdown: Sequence[float] | None = None
    awake_ms: float = 0.0
    tick_phase_ms: float | None = None


def observed_state(request: Request, assumed_mem: float = ASSUMED_MEM, out: State | None = None) -> State:
    """The model's :class:`hwmodels.model.State` as the board observes it in ``request``: measured
    load, die temperature and current frequencies, the time awake and the tick's phase at the wake
    (with the slow-down estimate, where the run ends among the ticks), memory intensity
    ``assumed_mem`` where a unit is loaded (what every model-based prediction of a
    live or simulated controller starts from).

    :param out: a state to fill in place (its arrays sized for the platform), for the env's hot path
    """
    if out is None:
        n = len(request.load)
        out = State(np.zeros(n), np.zeros(n), 0.0, np.zeros(n))
    load, mem, freq = out.load, out.mem, out.freq_mhz
    for u, (x, f) in enumerate(zip(request.load, request.freq_mhz)):
        load[u] = x
        mem[u] = assumed_mem if x > 0 else 0.0
        freq[u] = f
    out.temp_c = float(request.temp_c)
    out.awake_ms = float(request.awake_ms)
    out.tick_phase_ms = request.tick_phase_ms
    out.latency_factor = request.slowdown  # where the run ends among the ticks, as the estimate says
    return out


def correct_slowdown(
    model: PlatformModel, slowdown, action: int, unit: int, seen: State, nominal: Outcome, measured_ms: float
) -> None:
    """The online correction after a request, the same in the env and the live loop: the unit's
    slow-down estimate (:class:`envs.slowdown.SlowdownEstimator`) learns from the measured latency
    against the nominal model's, less the whole quanta the run waited where co-runners share its
    cores, and not from a run a tick landed in (:meth:`hwmodels.model.PlatformModel.explain`: a
    quantum is the kernel's, not the board's).

    :param seen: the state as observed (:func:`observed_state`), ``nominal`` the model's outcome of
        ``action`` there
    """
    shared = model.shares_cores(action, seen)
    explained = model.explain(nominal, measured_ms, slowdown.factors[unit], shared, model.spec.noise.latency_cv)
    if explained is None:  # a tick landed in the run: its length is the kernel's, not the board's
        slowdown.ran(unit)
    else:
        slowdown.update(unit, *explained)


class StepScorer:
    """Per-action constants and the scoring of one step, for one platform and DNN.

    ``configs``, ``accuracy`` (top-1 of each action's group count) and ``unit_of`` are lists in
    action order; ``start_action`` is the configuration a run starts from (the full network on
    the first unit's cores at its highest frequency).

    :param space: the platform's configurations
    :param dnn: the DNN profile (accuracy per group count)
    :param reward: the reward weights
    """

    def __init__(self, space: ConfigSpace, dnn: DNNProfile, reward: RewardConfig) -> None:
        self.reward = reward
        self.configs = [space.decode(i) for i in range(len(space))]
        self.accuracy = [dnn.cost(c.groups).top1 for c in self.configs]
        self.accuracy_arr = np.array(self.accuracy)
        self.unit_of = space.unit_idx.tolist()
        self._prev = [(c.groups, u, c.cores, c.freq_mhz) for c, u in zip(self.configs, self.unit_of)]
        first = space.spec.units[0]
        self.start_action = space.encode(Config(dnn.max_groups, first.name, first.cores, first.max_freq_mhz))

    def prev_of(self, action: int) -> PrevConfig:
        """``action`` as the next request's ``prev``."""
        return self._prev[action]

    def score(
        self, request: Request, action: int, latency_ms: float, energy_mj: float, power_w: float, freq_mhz: float
    ) -> tuple[float, dict]:
        """The reward and ``info`` of running ``action`` for ``request`` with this outcome.

        :param freq_mhz: the frequency the unit delivered
        :return: (reward, info); info holds ``latency_ms, energy_mj, power_w, accuracy, config,
            groups, unit, deadline_met, energy_met, is_success, temperature, freq_mhz, load,
            time_budget_ms, energy_budget_mj``
        """
        tb, eb = request.time_budget_ms, request.energy_budget_mj
        acc = self.accuracy[action]
        cfg = self.configs[action]
        deadline_met, energy_met = latency_ms <= tb, energy_mj <= eb
        reward = self.reward(acc, latency_ms, energy_mj, tb, eb)
        info = {
            "latency_ms": latency_ms,
            "energy_mj": energy_mj,
            "power_w": power_w,
            "accuracy": acc,
            "config": cfg,
            "groups": cfg.groups,
            "unit": cfg.unit,
            "deadline_met": deadline_met,
            "energy_met": energy_met,
            "is_success": deadline_met and energy_met,
            "temperature": request.temp_c,
            "freq_mhz": freq_mhz,
            "load": request.load,
            "time_budget_ms": tb,
            "energy_budget_mj": eb,
        }
        return reward, info


@dataclass
class EpisodeLog:
    """Per-request record of one episode, simulated or live (lists, one entry per request)."""

    seed: int | None
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    energy_mj: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    deadline_met: list[bool] = field(default_factory=list)
    energy_met: list[bool] = field(default_factory=list)
    decision_us: list[float] = field(default_factory=list)
    time_budget_ms: list[float] = field(default_factory=list)
    energy_budget_mj: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    freq_mhz: list[float] = field(default_factory=list)
    load: list[list[float]] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)

    def add(self, action: int, reward: float, info: dict, decision_us: float) -> None:
        """Append one request from :meth:`StepScorer.score`'s ``info``."""
        self.actions.append(action)
        self.rewards.append(reward)
        self.decision_us.append(decision_us)
        for f in _INFO_FIELDS:
            getattr(self, f).append(info[f])
        self.load[-1] = list(self.load[-1])

    def __len__(self) -> int:
        return len(self.actions)


_INFO_FIELDS = tuple(f.name for f in fields(EpisodeLog) if f.name not in ("seed", "actions", "rewards", "decision_us"))
