"""Controllers: what picks a configuration for each request, behind one small interface.

The evaluator (simulated) and the live session call every controller the same way::

    action = controller.act(request, mask)

``request`` is the :class:`envs.step.Request` (budgets, measured load, temperature, current
frequencies, previous configuration, last latency and energy), ``mask`` the configurations
available now (or ``None``). A policy builds its observation from the request with its own
stored spec; baselines read the budgets directly; only the oracle needs more: the simulated env.

``CONTROLLERS`` is the one registry of baseline names, for simulated and live comparisons
alike. This module imports numpy only, so the board can run every baseline without torch or SB3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dnn.errors import UsageError
from hwmodels.model import PlatformModel

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
    """Exhaustive search with the true noise-free model at the current state (simulation only).

    :param env: the :class:`envs.DynDNNEnv` being evaluated (its ``best_action``)
    """

    name = "oracle"

    def __init__(self, env: Any) -> None:
        self.env = env

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
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

    :param make: builds it from the platform model and, in simulation, the env (``None`` live)
    :param simulation_only: needs the simulated env (the oracle): refused live
    :param help: one line for ``--help``
    """

    make: Callable[[PlatformModel, Any], Controller]
    simulation_only: bool
    help: str


#: every baseline by name, for ``compare``, ``compare --live`` and ``deploy`` alike
CONTROLLERS: dict[str, ControllerEntry] = {
    "oracle": ControllerEntry(
        lambda model, env: OracleController(env), True, "best noise-free expected reward (simulation only)"
    ),
    "greedy": ControllerEntry(
        lambda model, env: GreedyController(model), False, "the paper's look-up table on the idle-board profile"
    ),
    "random": ControllerEntry(lambda model, env: RandomController(len(model.space)), False, "a random available configuration"),
    "fixed-max-accuracy": ControllerEntry(lambda model, env: max_accuracy(model), False, "the full network, fastest mapping"),
    "fixed-min-energy": ControllerEntry(lambda model, env: min_energy(model), False, "the least-energy configuration"),
}


def make_controller(name: str, model: PlatformModel, env: Any = None) -> Controller:
    """The baseline ``name`` of :data:`CONTROLLERS` (``env``: the simulated env; ``None`` live).

    :raises UsageError: an unknown name, or a simulation-only controller asked for live
    """
    entry = CONTROLLERS.get(name)
    if entry is None:
        raise UsageError(f"unknown controller {name!r}; valid: {', '.join(CONTROLLERS)}")
    if entry.simulation_only and env is None:
        raise UsageError(f"controller {name!r} needs the simulated env's true model; it cannot run live")
    return entry.make(model, env)
