"""``DynDNNEnv``: the Gymnasium environment of runtime performance scaling of the dynamic DNN."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from dnn.profile import DNNProfile, load_dnn_profile
from envs.observation import ObservationBuilder, ObservationSpec
from envs.reward import DEFAULT_OBJECTIVE, RewardConfig, load_objective
from envs.scenario import EpisodeTrace, ScenarioError, ScenarioGenerator, TraceScenario, load_scenario
from envs.slowdown import SlowdownEstimator
from envs.step import Request, StepScorer, correct_slowdown, observed_state
from hwmodels.config import Config
from hwmodels.model import PlatformModel, State, lognormal_factors
from hwmodels.profile import PlatformSpec, load_platform

#: how far a logged tick phase may be past the tick by rounding (deploy logs them to 1e-4 ms)
ROUNDED_MS = 1e-3
#: what ``reset(options=...)`` may set for the first request (anything else is refused)
RESET_OPTIONS = ("time_budget_ms", "energy_budget_mj", "load", "mem", "temp_c")


def reference_budgets(model: PlatformModel) -> tuple[float, float]:
    """(t_ref, e_ref): latency of the fastest and energy of the most frugal full-accuracy
    configuration on the idle board; scenario budgets are multiples of these."""
    latency, energy = model.idle_table()
    full = model.space.groups == model.dnn.max_groups
    return float(latency[full].min()), float(energy[full].min())


class DynDNNEnv(gym.Env):
    """Choose the dynamic DNN's group count, task mapping and DVFS for each inference request.

    One step is one inference request on a simulated board (a :class:`PlatformModel` of the XU3,
    the Nano, or a profiled board) under a scenario of changing budgets and background load.

    **Observation** (``Box(0, 1, (n,), float32)``; names in ``observation_names``): time budget
    and energy budget (log scale), background load per unit (busy threads / (2 x cores)), die
    temperature, current frequency per unit (/ max), the previous configuration (groups / G,
    one-hot unit, cores / max cores, frequency / unit max), the last request's latency and
    energy (log scale), the online slow-down estimate per unit (log scale; measured /
    predicted latency less the quanta co-runners made a run wait, filtered: :mod:`envs.slowdown`,
    updated after every request exactly as the live runtime updates it), and, on a profile with a
    tick grid, ``tick_free``: how long the inference may run before the first tick at which a
    co-runner may take its core (log scale; :meth:`envs.observation.ObservationBuilder.tick_free_ms`,
    from the request's tick phase and time awake). Only what a live board
    measures: every step builds a :class:`envs.step.Request` (``env.request``) and the
    observation from it with :class:`envs.observation.ObservationBuilder`, as the live runtime
    does.

    **Action** (``Discrete(N)``): an index into the platform's configurations in the order of
    :class:`hwmodels.config.ConfigSpace` (k ascending; units in profile order; cores ascending;
    frequency ascending). ``decode(action) -> Config``, ``encode(Config) -> action``.
    ``action_masks()`` marks frequencies above the current thermal cap as unavailable (for
    sb3-contrib's MaskablePPO); a masked action still runs, at the capped frequency.

    **Reward**: the named ``objective`` (``envs/objectives.yaml``; :class:`envs.reward.RewardConfig`):
    ``accuracy`` (default) earns the top-1 of the chosen group count when both budgets are met,
    with energy only as a tie-break; ``energy`` earns less the more energy a request takes, above
    a minimum accuracy; ``balanced`` trades accuracy against energy; a miss costs a penalty that
    grows with the overshoot. Scored by :class:`envs.step.StepScorer` (the live loop's too). ``info``
    holds ``latency_ms, energy_mj, power_w, accuracy, config, groups, unit, deadline_met,
    energy_met, is_success`` (both met), ``temperature`` and ``freq_mhz`` (delivered), and the
    request's ``load``, ``time_budget_ms`` and ``energy_budget_mj``.

    **Run-to-run jitter** (common random numbers): at reset the env draws each request's latency
    and power jitter (log-normal, mean 1, the profile's CVs) for the whole episode, and, where the
    profile's co-runners preempt in quanta (``interference.quantum_ms``), a uniform draw that
    decides the whole quanta a configuration waits
    (:meth:`hwmodels.model.PlatformModel.realised_latency`) and, where the profile also found the
    tick grid (``interference.tick_hz``), how far into a tick the process wakes (uniform over the
    tick; a trace's ``wake_tick_phase_ms`` column where it has one, as a replayed deploy log does): the request carries it (``Request.tick_phase_ms``, as the live loop reads it at the
    wake) and the wait is conditioned on it (:class:`hwmodels.model.State`). Request i gets the
    same factors and draws whatever configuration runs it. So a controller's luck does not depend
    on its choices, and the ceiling (``ceiling_action``: the best configuration given the realised
    jitter and the true state) is a true upper bound when the past does not matter (no thermal
    trips, no DVFS switch cost, no temperature-dependent leakage).

    **Model error** (sim-to-real): a scenario with ``model_error`` (``slow-board``; a board
    agent's training scenario, as ``docs/live/camera-model-error.yaml``) makes the board's true
    latency and power per unit depart from the nominal model by factors drawn per episode
    (drifting within some); controllers see only the nominal model and the slow-down estimate.
    The ceiling knows the true factors.

    **Time awake before the inference**: a scenario with ``awake_ms`` (or a trace with that
    column) says how long the controller's process runs between its wake and the inference
    (live: observing, deciding, applying); the scheduler's wake-up credit counts from the wake,
    so that much of it is spent before the inference (:class:`hwmodels.model.State`). The request
    carries the previous request's (``Request.awake_ms``; 0 for the first), as the live loop's does.

    **Starting state**: a new scenario episode drawn from the reset seed; the die at the
    profile's ``thermal.start_c``; every unit at its highest frequency; the previous
    configuration is the full network on the first unit's cores at its highest frequency, with
    no last latency or energy. ``reset(options=...)`` may set the first request's
    ``time_budget_ms``, ``energy_budget_mj``, ``load`` and ``mem`` (one value per unit) and the
    die's ``temp_c`` (what-if experiments and tests; see ``RESET_OPTIONS``).

    **Episode end**: never terminated; truncated after ``episode_length`` requests (or at the
    end of a replayed trace).

    :param platform: ``xu3``, ``nano``, a profile YAML path, or a :class:`PlatformSpec`
    :param scenario: a preset name or YAML file (``envs/scenarios.yaml``), or a trace CSV path
    :param episode_length: requests per episode (``None`` with a trace: its length)
    :param objective: a shipped objective (``accuracy``, ``energy``, ``balanced``) or a YAML file
    :param reward: the resolved weights (:class:`RewardConfig` or a dict of its fields, as a run
        or policy stores them); given, it replaces ``objective``
    :param noise: sample run-to-run latency and power noise and the tick's phase (off: the
        noise-free model, co-runners' wait at its mean)
    :param dnn_profile: DNN profile YAML (default: the shipped one)
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(
        self,
        platform: str | PlatformSpec = "xu3",
        scenario: str = "default",
        episode_length: int | None = 1000,
        objective: str = DEFAULT_OBJECTIVE,
        reward: RewardConfig | dict | None = None,
        noise: bool = True,
        dnn_profile: str | DNNProfile | None = None,
    ) -> None:
        spec = platform if isinstance(platform, PlatformSpec) else load_platform(platform)
        dnn = dnn_profile if isinstance(dnn_profile, DNNProfile) else load_dnn_profile(dnn_profile)
        self.model = PlatformModel(spec, dnn)
        self.space = self.model.space
        top1 = dnn.column("top1").tolist()
        self.reward_config = RewardConfig.from_value(reward) if reward is not None else load_objective(objective, top1)
        self.noise = bool(noise)
        self.obs_spec = ObservationSpec.for_model(self.model)
        self._obs = ObservationBuilder(self.obs_spec)
        self.observation_names = self._obs.names
        self.scorer = StepScorer(self.space, dnn, self.reward_config)
        self.t_ref_ms, self.e_ref_mj = reference_budgets(self.model)
        units = self.obs_spec.units
        if str(scenario).endswith(".csv"):
            self.scenario: ScenarioGenerator | TraceScenario = TraceScenario.from_csv(scenario, units, self.obs_spec.cores)
            self.scenario_name = str(scenario)
            self._check_tick_phases(self.scenario.trace)
            if episode_length is None:
                episode_length = len(self.scenario.trace)
        else:
            cfg = load_scenario(scenario)
            self.scenario = ScenarioGenerator(cfg, units, self.obs_spec.cores, self.t_ref_ms, self.e_ref_mj)
            self.scenario_name = cfg.name
        if episode_length is None or int(episode_length) < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        self.episode_length = int(episode_length)
        self.action_space = gym.spaces.Discrete(len(self.space))
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self._obs.size,), np.float32)
        self._max_freq = [u.max_freq_mhz for u in spec.units]
        self._state = State(
            np.zeros(len(units)), np.zeros(len(units)), spec.thermal.start_c, np.array(self._max_freq, dtype=np.float64)
        )
        self._mask = np.ones(len(self.space), dtype=bool)
        self._slowdown = SlowdownEstimator(len(units), latency_cv=spec.noise.latency_cv)
        self._observed = State(np.zeros(len(units)), np.zeros(len(units)), 0.0, np.zeros(len(units)))
        self.trace: EpisodeTrace | None = None
        self._request: Request | None = None

    # ------------------------------------------------------------------ API

    def decode(self, action: int) -> Config:
        """The configuration of ``action``."""
        return self.space.decode(action)

    def encode(self, config: Config) -> int:
        """The action of ``config`` (raises :class:`hwmodels.config.ConfigError` if not offered)."""
        return self.space.encode(config)

    def action_masks(self) -> np.ndarray:
        """Configurations available at the current temperature (frequency at or below the cap)."""
        return self.model.available(self._state.temp_c, out=self._mask).copy()

    def expected_rewards(self, realised: bool = False) -> np.ndarray:
        """The reward every action would get for the pending request in the true current state
        (load, memory intensity, temperature, frequencies); ``-inf`` where it is unavailable.

        :param realised: with the request's realised jitter (what the action will get); without
            it, the noise-free model's reward
        """
        req = self.request
        o = self.model.expected_all(self._state)
        unit = self.model.space.unit_idx
        i = self._i
        error = np.asarray(self._lat_err)[unit]
        if realised and self._phase[i] is not None:
            latency = self.model.realised_latency(o.latency_ms, o.wait_ms, self._phase[i], error)
        else:
            latency = o.latency_ms * error
        power = o.power_w * np.asarray(self._pow_err)[unit]
        if realised:
            latency = latency * self._jitter_latency[i]
            power = power * self._jitter_power[i]
        energy = latency * power
        r = self.reward_config(self.scorer.accuracy_arr, latency, energy, req.time_budget_ms, req.energy_budget_mj)
        r[~self.model.available(self._state.temp_c, out=self._mask)] = -np.inf
        return r

    def ceiling_action(self) -> int:
        """The ceiling's choice: the available configuration with the highest reward given the
        request's realised jitter and the true state (exhaustive search)."""
        return int(np.argmax(self.expected_rewards(realised=True)))

    def noise_free_best_action(self) -> int:
        """The available configuration with the highest noise-free reward in the true state."""
        return int(np.argmax(self.expected_rewards()))

    @property
    def request(self) -> Request:
        """The pending request and the state it meets, as the board would observe it (what
        every controller reads)."""
        if self._request is None:
            raise RuntimeError("call reset() before reading the request")
        return self._request

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.trace = self.scenario.episode(self.np_random, self.episode_length)
        t = self.trace
        self._tb, self._eb, self._period = t.time_budget_ms.tolist(), t.energy_budget_mj.tolist(), t.period_ms.tolist()
        self._load_rows, self._mem_rows = t.load.tolist(), t.mem.tolist()
        ones = [[1.0] * len(self._max_freq)] * len(t)
        self._lat_err_rows = ones if t.latency_error is None else t.latency_error.tolist()
        self._pow_err_rows = ones if t.power_error is None else t.power_error.tolist()
        self._awake_rows = [0.0] * len(t) if t.awake_ms is None else t.awake_ms.tolist()
        self._slowdown.reset()
        self._draw_jitter()
        self._i = 0
        s = self._state
        s.temp_c = self.model.spec.thermal.start_c
        s.freq_mhz[:] = self._max_freq
        self._freqs = list(self._max_freq)
        self._prev = self.scorer.prev_of(self.scorer.start_action)
        self._last = (0.0, 0.0)
        if options:
            self._apply_options(options)
        self._set_load(0)
        return self._observe().copy(), {"time_budget_ms": self._tb[0], "energy_budget_mj": self._eb[0]}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.trace is None:
            raise RuntimeError("call reset() before step()")
        if self._i >= self.episode_length:
            raise RuntimeError("the episode was truncated: call reset() before step()")
        a = int(action)
        if not 0 <= a < self.action_space.n:
            raise ValueError(f"action {action!r} outside Discrete({self.action_space.n})")
        i = self._i
        s = self._state
        u = self.scorer.unit_of[a]
        o = self.model.expected(a, s)
        phase = self._phase[i]
        error = self._lat_err[u]  # the board's departure from the model: its compute, not the kernel's quanta
        latency = o.latency_ms * error if phase is None else self.model.realised_latency(o.latency_ms, o.wait_ms, phase, error)
        latency *= self._jitter_latency[i]
        power = o.power_w * self._pow_err[u] * self._jitter_power[i]
        energy = latency * power
        reward, info = self.scorer.score(self._request, a, latency, energy, power, o.freq_mhz)
        # the online estimate learns as the live runtime's does: measured vs the nominal model at the observed state
        seen = observed_state(self._request, out=self._observed)
        nominal = self.model.expected(a, seen)
        if phase is None:  # a mean run (noise off) or a fluid share: no whole quanta to take apart
            self._slowdown.update(u, latency, float(nominal.latency_ms))
        else:
            correct_slowdown(self.model, self._slowdown, a, u, seen, nominal, latency)
        self._advance_time(u, power, latency, max(self._period[i], latency))
        self._freqs[u] = o.freq_mhz
        s.freq_mhz[u] = o.freq_mhz
        self._prev = self.scorer.prev_of(a)
        self._last = (latency, energy)
        self._i = i + 1
        truncated = self._i >= self.episode_length
        if not truncated:
            self._set_load(self._i)
        return self._observe().copy(), reward, False, truncated, info

    # ------------------------------------------------------------------ internals

    def _draw_jitter(self) -> None:
        """Every request's latency and power jitter (and tick phase) for the episode, drawn before
        any decision."""
        n = self.episode_length
        self._phase = [None] * n  # the mean wait: a fluid share, or no noise
        self._tick_phase = [None] * n  # no tick grid, or no noise: the wait's mean over the tick's phase
        if not self.noise:
            self._jitter_latency = self._jitter_power = [1.0] * n
            return
        z = self.np_random.standard_normal((2, n))
        cv = self.model.spec.noise
        self._jitter_latency = lognormal_factors(z[0], cv.latency_cv).tolist()
        self._jitter_power = lognormal_factors(z[1], cv.power_cv).tolist()
        if self.model.quantum_ms > 0:  # drawn after the jitter: a fluid profile's episodes stay as they were
            self._phase = self.np_random.random(n).tolist()
        if self.model.tick_ms > 0:  # where in a tick each request's wake falls (observed, as live): drawn last
            self._tick_phase = (self.np_random.random(n) * self.model.tick_ms).tolist()
            if self.trace.tick_phase_ms is not None:  # a replayed log's: where the live loop woke
                self._tick_phase = self.trace.tick_phase_ms.tolist()

    def _check_tick_phases(self, trace: EpisodeTrace) -> None:
        """A trace's ``wake_tick_phase_ms`` (a replayed log's) on this profile's tick: within it, one
        logged as the tick itself by rounding wrapped to 0 (a log of another kernel HZ is refused
        naming its first row beyond; on a profile without a tick grid the column is not used)."""
        phases, tick = trace.tick_phase_ms, self.model.tick_ms
        if phases is None or tick <= 0:
            return
        beyond = np.flatnonzero(phases > tick + ROUNDED_MS)
        if len(beyond):
            i = int(beyond[0])
            raise ScenarioError(
                f"{self.scenario_name}:{i + 2}: column 'wake_tick_phase_ms': {phases[i]:g} ms is beyond the profile's "
                f"{tick:g} ms tick (a log of another kernel HZ?)"
            )
        trace.tick_phase_ms = np.where(phases >= tick, phases - tick, phases)

    def _apply_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"reset options {unknown} unknown; valid: {', '.join(RESET_OPTIONS)}")
        n = self.model.n_units
        for key, rows in (("load", self._load_rows), ("mem", self._mem_rows)):
            if key in options:
                values = [float(x) for x in options[key]]
                if len(values) != n:
                    raise ValueError(f"reset option {key!r} needs one value per unit ({n}), got {len(values)}")
                rows[0] = values
        if "time_budget_ms" in options:
            self._tb[0] = float(options["time_budget_ms"])
        if "energy_budget_mj" in options:
            self._eb[0] = float(options["energy_budget_mj"])
        if "temp_c" in options:
            self._state.temp_c = float(options["temp_c"])

    def _set_load(self, i: int) -> None:
        s = self._state
        s.load[:] = self._load_rows[i]
        s.mem[:] = self._mem_rows[i]
        self._load = self._load_rows[i]
        self._lat_err, self._pow_err = self._lat_err_rows[i], self._pow_err_rows[i]
        s.awake_ms = self._awake_rows[i]
        s.tick_phase_ms = self._tick_phase[i]
        s.latency_factor = self._lat_err  # where the run ends among the ticks on the board as it truly is

    def _observe(self) -> np.ndarray:
        i = min(self._i, self.episode_length - 1)
        self._slowdown.observe(self._load)
        self._request = Request(
            self._tb[i],
            self._eb[i],
            self._period[i],
            self._load,
            self._state.temp_c,
            tuple(self._freqs),
            self._prev,
            self._last[0],
            self._last[1],
            tuple(self._slowdown.factors),
            self._awake_rows[i - 1] if i > 0 else 0.0,  # the previous request's, as live: this one's has not run
            self._tick_phase[i],  # read at the wake, before the decision, as live
        )
        return self._obs.build(self._request)

    def _advance_time(self, unit: int, dnn_power_w: float, latency_ms: float, dt_ms: float) -> None:
        """Heat the die over one request interval: the DNN's rail power while it runs, each
        unit's background-load power the rest of the time (and the other units throughout)."""
        m, s = self.model, self._state
        temp = s.temp_c
        total = 0.0
        for v in range(m.n_units):
            bg = m.unit_power(v, self._freqs[v], self._load[v], temp)
            total += (dnn_power_w * latency_ms + bg * (dt_ms - latency_ms)) / dt_ms if v == unit else bg
        s.temp_c = m.thermal_step(temp, total, dt_ms / 1e3)

    def close(self) -> None:
        self.trace = None
        self._request = None
