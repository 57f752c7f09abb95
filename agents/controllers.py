"""Controllers: what picks a configuration for each request, behind one small interface.

The evaluator (simulated) and the deploy loop (live) call every controller the same way::

    action = controller.act(observation, mask, request)

``observation`` is the vector of :class:`envs.observation.ObservationBuilder`, ``mask`` the
available configurations (or ``None``), ``request`` the decoded request and state
(``time_budget_ms``, ``energy_budget_mj``, ``load``, ``temp_c``, ``freq_mhz``) for baselines
that read budgets directly. Only the oracle needs more: the simulated env itself.

This module imports numpy only, so the board can run every baseline without torch or SB3.
"""

from __future__ import annotations

import numpy as np

from hwmodels.model import PlatformModel


class Controller:
    """Base class: ``act`` returns an action index; ``reset`` starts a new episode."""

    name = "controller"

    def reset(self, seed: int | None = None) -> None:
        """Forget per-episode state (most controllers have none)."""

    def act(self, observation: np.ndarray, mask: np.ndarray | None = None, request: dict | None = None) -> int:
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

    def act(self, observation: np.ndarray, mask: np.ndarray | None = None, request: dict | None = None) -> int:
        if request is None:
            raise ValueError("GreedyController needs the request's budgets (request=...)")
        tb, eb = request["time_budget_ms"], request["energy_budget_mj"]
        fits = (self.latency <= tb) & (self.energy <= eb)
        if mask is not None:
            fits &= mask
        ranked = self._order[fits[self._order]]
        if len(ranked):
            return int(ranked[0])
        fastest = self._fastest if mask is None else self._fastest[mask[self._fastest]]
        return int(fastest[0])


class OracleController(Controller):
    """Exhaustive search with the true noise-free model at the current state (simulation only).

    :param env: the :class:`envs.DynDNNEnv` being evaluated (its ``best_action``)
    """

    name = "oracle"

    def __init__(self, env) -> None:
        self.env = env

    def act(self, observation: np.ndarray, mask: np.ndarray | None = None, request: dict | None = None) -> int:
        return self.env.best_action()


class RandomController(Controller):
    """A uniformly random available configuration (seeded)."""

    name = "random"

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n = n_actions
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray, mask: np.ndarray | None = None, request: dict | None = None) -> int:
        if mask is None:
            return int(self.rng.integers(self.n))
        return int(self.rng.choice(np.flatnonzero(mask)))


class FixedController(Controller):
    """Always the same configuration (or, when the mask forbids it, the available one of the
    same group count and mapping with the highest frequency below it).

    :param action: the configuration's action index
    :param name: label in reports
    :param model: the platform model (to find the fallback under a mask)
    """

    def __init__(self, action: int, name: str, model: PlatformModel) -> None:
        self.action, self.name = int(action), name
        sp = model.space
        same = (sp.groups == sp.groups[action]) & (sp.unit_idx == sp.unit_idx[action]) & (sp.cores == sp.cores[action])
        self._fallbacks = np.flatnonzero(same & (sp.freq_mhz <= sp.freq_mhz[action]))[::-1]

    def act(self, observation: np.ndarray, mask: np.ndarray | None = None, request: dict | None = None) -> int:
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
