"""Controllers: what picks a configuration for each request, behind one small interface.

The evaluator (simulated) and the live session call every controller the same way::

    action = controller.act(request, mask)

``request`` is the :class:`envs.step.Request` (budgets, measured load, temperature, current
frequencies, previous configuration, last latency and energy), ``mask`` the configurations
available now (or ``None``). A policy builds its observation from the request with its own
stored spec; baselines read the request; only the oracles need more: the simulated env.

``CONTROLLERS`` is the one registry of baseline names, for simulated and live comparisons
alike. This module imports numpy only, so the board can run every baseline without torch or SB3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dnn.errors import UsageError
from envs.reward import RewardConfig
from envs.step import observed_state
from hwmodels.model import PlatformModel, lognormal_factors

if TYPE_CHECKING:
    from envs.step import Request


class Controller:
    """Base class: ``act`` returns an action index; ``reset`` starts a new episode."""

    name = "controller"

    def reset(self, seed: int | None = None) -> None:
        """Forget per-episode state (most controllers have none)."""

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        raise NotImplementedError


class GreedyController(Controller):
    """The look-up-table manager: from the idle-board profile, the most accurate configuration
    whose profiled latency and energy meet the budgets, ties to lower energy; the fastest
    configuration when none fits. Blind to background load and temperature; honours the mask.

    :param model: the platform model whose idle-board table is the profile
    """

    name = "greedy"

    def __init__(self, model: PlatformModel) -> None:
        self.latency, self.energy = model.idle_table()
        acc = np.array([model.dnn.cost(int(k)).top1 for k in model.space.groups])
        # rank: accuracy first (descending), then energy (ascending): a stable order to scan
        self._order = np.lexsort((self.energy, -acc))
        self._fastest = np.argsort(self.latency, kind="stable")

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        fits = (self.latency <= request.time_budget_ms) & (self.energy <= request.energy_budget_mj)
        if mask is not None:
            fits &= mask
        ranked = self._order[fits[self._order]]
        if len(ranked):
            return int(ranked[0])
        fastest = self._fastest if mask is None else self._fastest[mask[self._fastest]]
        return int(fastest[0])


class OracleController(Controller):
    """Exhaustive search with the simulated env's true state (simulation only).

    ``realised=True`` is the ceiling (``oracle``): per request, the available configuration with
    the highest reward given the request's realised jitter (drawn before the decision, the same
    whatever runs). Nothing beats it when the past does not matter (no thermal trips, no DVFS
    switch cost, no temperature-dependent leakage); with them it is a near-ceiling.
    ``realised=False`` (``oracle-noise-free``) maximises the noise-free reward: it sits on the
    budget edge and misses when the jitter goes the wrong way, so it is no ceiling.

    :param env: the :class:`envs.DynDNNEnv` being evaluated
    :param realised: search with the realised jitter
    """

    def __init__(self, env: Any, realised: bool = True) -> None:
        self.env, self.realised = env, realised
        self.name = "oracle" if realised else "oracle-noise-free"

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        return self.env.ceiling_action() if self.realised else self.env.noise_free_best_action()


class ModelPredictiveController(Controller):
    """The strongest non-learned controller with the same model: per request, the available
    configuration with the highest expected reward under the model's run-to-run noise at the
    state the board observes (measured load, temperature and current frequencies). Numpy
    only and vectorised over every configuration, so it runs live as it runs in simulation.

    The expectation is over a fixed sample of ``n_draws`` (latency, power) noise pairs drawn
    once from the profile's log-normal noise (seeded: decisions are deterministic); where the
    profile's co-runners preempt in quanta (``interference.quantum_ms``), each draw also has its
    tick phase, evenly spread over [0, 1), and its run waits the quanta that phase gives
    (:meth:`hwmodels.model.PlatformModel.realised_latency`; energy is power over that whole run,
    as the env scores it). The memory
    intensity of background load cannot be observed (neither live nor in the env's request):
    the state is :func:`envs.step.observed_state` (a loaded unit at
    :data:`envs.step.ASSUMED_MEM`). What that assumption and the model get wrong, the request's
    online slow-down estimate per unit corrects (:mod:`envs.slowdown`): predicted latency and
    energy on unit ``u`` are the nominal model's times ``request.slowdown[u]``, except for the
    whole quanta a run waits, which are the kernel's and do not stretch with the board. The
    estimate is measured against the nominal model at that same state (less the quanta that
    explain each measurement), so the assumption is not a parameter
    here: another one would be corrected by a factor measured against a different prediction.

    :param model: the platform model
    :param reward: the reward it maximises (the env's; default weights when ``None``)
    :param n_draws: noise pairs per configuration
    """

    name = "model-predictive"

    def __init__(self, model: PlatformModel, reward: RewardConfig | None = None, n_draws: int = 16) -> None:
        self.model = model
        self.reward = RewardConfig.from_value(reward)
        self.accuracy = np.array([model.dnn.cost(int(k)).top1 for k in model.space.groups])
        rng = np.random.default_rng(0)
        z = rng.standard_normal((2, n_draws))
        noise = model.spec.noise
        self._lat_draws = lognormal_factors(z[0], noise.latency_cv)
        # where co-runners preempt in quanta, each draw is also a tick phase (stratified: evenly spread)
        self._phases = (np.arange(n_draws) + 0.5) / n_draws if model.quantum_ms > 0 else None
        self._energy_draws = self._lat_draws * lognormal_factors(z[1], noise.power_cv)
        self._mean_energy_draw = self._energy_draws / n_draws  # e @ this: the mean over draws of e x draw
        self._above_floor = self.accuracy >= self.reward.min_accuracy
        self._unit = model.space.unit_idx
        d = (self._lat_draws, self._energy_draws)
        self._draw_bounds = (*(float(x.max()) for x in d), *(float(x.min()) for x in d), float(d[1].mean()))

    def expected_rewards(self, request: Request) -> np.ndarray:
        """Expected reward of every configuration for ``request`` (its observed state)."""
        latency, energy = self._predict(request)
        return self._expected(latency, energy, request)

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        """The available configuration of highest expected reward. Exact, but it skips the
        draws where they cannot change the answer: a configuration that meets both budgets on
        every draw earns a known reward; one that misses on every draw earns at most
        ``-miss_penalty``, less than any sure meet above the accuracy floor."""
        latency, energy = self._predict(request)
        t = latency / request.time_budget_ms
        e = energy / request.energy_budget_mj
        lat_max, energy_max, lat_min, energy_min, energy_mean = self._draw_bounds
        if t.ndim == 2:  # per tick phase: bounds over the phases, the energy's mean over the draws
            t_hi, t_lo, e_hi, e_lo, e_mean = (
                t.max(axis=1),
                t.min(axis=1),
                e.max(axis=1),
                e.min(axis=1),
                e @ self._mean_energy_draw,
            )
        else:
            t_hi = t_lo = t
            e_hi = e_lo = e
            e_mean = e * energy_mean
        sure = (t_hi <= 1.0 / lat_max) & (e_hi <= 1.0 / energy_max) & self._above_floor
        if mask is not None:
            sure &= mask
        if not sure.any():
            return self._argmax(self._expected(latency, energy, request), mask)
        r = np.full(len(t), -np.inf)
        r[sure] = self.reward.sure_met(self.accuracy[sure], e_mean[sure])
        if r[sure].max() <= -self.reward.miss_penalty:  # no sure meet beats a sure miss: search all
            return self._argmax(self._expected(latency, energy, request), mask)
        maybe = ~sure & (t_lo <= 1.0 / lat_min) & (e_lo <= 1.0 / energy_min)
        if mask is not None:
            maybe &= mask
        if maybe.any():
            r[maybe] = self._expected(latency, energy, request, maybe)
        return int(np.argmax(r))

    def _predict(self, request: Request) -> tuple[np.ndarray, np.ndarray]:
        """(latency, energy) of every configuration: the model at the observed state, corrected
        by the slow-down estimate of each configuration's unit. Latency is per configuration, or,
        where co-runners preempt in quanta, per configuration and draw (each draw's tick phase)."""
        o = self.model.expected_all(observed_state(request))
        factor = 1.0 if request.slowdown is None else np.asarray(request.slowdown, dtype=float)[self._unit]
        if self._phases is None:
            return o.latency_ms * factor, o.energy_mj * factor
        # the slow-down stretches the compute and the mean wait, not the kernel's quanta; a run's
        # energy is its power over its whole latency, wait included (as the env's)
        factor = factor if request.slowdown is None else factor[:, None]
        latency = self.model.realised_latency(o.latency_ms[:, None], o.wait_ms[:, None], self._phases, factor)
        return latency, latency * o.power_w[:, None]

    def _expected(self, latency: np.ndarray, energy: np.ndarray, request: Request, which: np.ndarray | None = None) -> np.ndarray:
        """Expected rewards of every configuration, or of those ``which`` selects (a boolean mask)."""
        pick = slice(None) if which is None else which
        return self.reward.expected(
            self.accuracy[pick],
            latency[pick],
            energy[pick],
            self._lat_draws,
            self._energy_draws,
            request.time_budget_ms,
            request.energy_budget_mj,
        )

    @staticmethod
    def _argmax(r: np.ndarray, mask: np.ndarray | None) -> int:
        if mask is not None:
            r[~mask] = -np.inf
        return int(np.argmax(r))


class RandomController(Controller):
    """A uniformly random available configuration (seeded)."""

    name = "random"

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n = n_actions
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        if mask is None:
            return int(self.rng.integers(self.n))
        return int(self.rng.choice(np.flatnonzero(mask)))


class FixedController(Controller):
    """Always the same configuration (or, when the mask forbids it, the available one of the
    same group count and mapping with the highest frequency below it; the configuration itself
    if none is available).

    :param action: the configuration's action index
    :param name: label in reports
    :param model: the platform model (to find the fallback under a mask)
    """

    def __init__(self, action: int, name: str, model: PlatformModel) -> None:
        self.action, self.name = int(action), name
        sp = model.space
        same = (sp.groups == sp.groups[action]) & (sp.unit_idx == sp.unit_idx[action]) & (sp.cores == sp.cores[action])
        self._fallbacks = np.flatnonzero(same & (sp.freq_mhz <= sp.freq_mhz[action]))[::-1]

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        if mask is None or mask[self.action]:
            return self.action
        ok = self._fallbacks[mask[self._fallbacks]]
        return int(ok[0]) if len(ok) else self.action


def max_accuracy(model: PlatformModel) -> FixedController:
    """The full network on the mapping fastest on the idle board."""
    return FixedController(model.fastest_action(model.dnn.max_groups), "fixed-max-accuracy", model)


def min_energy(model: PlatformModel) -> FixedController:
    """The configuration with the least energy per inference on the idle board."""
    _, energy = model.idle_table()
    return FixedController(int(np.argmin(energy)), "fixed-min-energy", model)


@dataclass(frozen=True)
class ControllerEntry:
    """A baseline of the registry.

    :param make: builds it from the platform model, in simulation the env (``None`` live), and
        the reward of the run (``None``: the default weights)
    :param simulation_only: needs the simulated env (the oracle): refused live
    :param help: one line for ``--help``
    """

    make: Callable[[PlatformModel, Any, RewardConfig | None], Controller]
    simulation_only: bool
    help: str


#: every baseline by name, for ``compare``, ``compare --live`` and ``deploy`` alike
CONTROLLERS: dict[str, ControllerEntry] = {
    "oracle": ControllerEntry(
        lambda model, env, reward: OracleController(env),
        True,
        "the ceiling: best reward given the realised jitter (simulation only)",
    ),
    "oracle-noise-free": ControllerEntry(
        lambda model, env, reward: OracleController(env, realised=False),
        True,
        "best noise-free reward in the true state (simulation only)",
    ),
    "model-predictive": ControllerEntry(
        lambda model, env, reward: ModelPredictiveController(model, reward),
        False,
        "best expected reward under the model's noise at the observed state",
    ),
    "greedy": ControllerEntry(
        lambda model, env, reward: GreedyController(model), False, "the paper's look-up table on the idle-board profile"
    ),
    "random": ControllerEntry(
        lambda model, env, reward: RandomController(len(model.space)), False, "a random available configuration"
    ),
    "fixed-max-accuracy": ControllerEntry(
        lambda model, env, reward: max_accuracy(model), False, "the full network, fastest mapping"
    ),
    "fixed-min-energy": ControllerEntry(lambda model, env, reward: min_energy(model), False, "the least-energy configuration"),
}


def make_controller(name: str, model: PlatformModel, env: Any = None, reward: RewardConfig | None = None) -> Controller:
    """The baseline ``name`` of :data:`CONTROLLERS` (``env``: the simulated env; ``None`` live).

    :param reward: the reward a model-based baseline maximises (default: the env's, else the
        default weights)
    :raises UsageError: an unknown name, or a simulation-only controller asked for live
    """
    entry = CONTROLLERS.get(name)
    if entry is None:
        raise UsageError(f"unknown controller {name!r}; valid: {', '.join(CONTROLLERS)}")
    if entry.simulation_only and env is None:
        raise UsageError(f"controller {name!r} needs the simulated env's true model; it cannot run live")
    if reward is None and env is not None:
        reward = env.reward_config
    return entry.make(model, env, reward)
