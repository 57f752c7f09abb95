"""Evaluate controllers on held-out simulated episodes (the metrics are in :mod:`agents.report`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from agents.controllers import Controller
from agents.report import Report
from dnn.progress import progress as progress_bar
from envs.dyndnn_env import DynDNNEnv
from envs.step import EpisodeLog


def run_episode(env: DynDNNEnv, controller: Controller, seed: int | None) -> EpisodeLog:
    """One episode of ``controller`` on ``env`` reset with ``seed``."""
    env.reset(seed=seed)
    controller.reset(seed)
    log = EpisodeLog(seed)
    done = False
    while not done:
        request = env.request
        mask = env.action_masks()
        t0 = time.perf_counter()
        a = controller.act(request, mask)
        decision_us = (time.perf_counter() - t0) * 1e6
        _, r, term, trunc, info = env.step(a)
        done = term or trunc
        log.add(a, r, info, decision_us)
    return log


def compare(
    env_factory: Callable[[], DynDNNEnv],
    controllers: dict[str, Callable[[DynDNNEnv], Controller]],
    seeds: list[int | None],
    progress: bool = True,
) -> tuple[Report, dict[str, list[EpisodeLog]]]:
    """Run every controller on the same episodes (one per seed) and compare them.

    :param env_factory: builds the evaluation env (same platform, scenario, noise for all)
    :param controllers: name -> factory taking the env (the oracle needs it)
    :param seeds: episode seeds (held out from training); ``None`` entries for a replayed trace
    :param progress: report progress on stderr
    :return: the report and every controller's episode logs
    """
    env = env_factory()
    logs: dict[str, list[EpisodeLog]] = {}
    bar = progress_bar(len(controllers) * len(seeds), "evaluating", progress, "episode", leave=False)
    for name, make in controllers.items():
        ctrl = make(env)
        logs[name] = []
        for seed in seeds:
            logs[name].append(run_episode(env, ctrl, seed))
            bar.update()
    bar.close()
    report = Report.from_logs(
        logs,
        env.model.spec.name,
        env.scenario_name,
        [s for s in seeds if s is not None],
        env.noise,
        objective=env.reward_config.objective,
        max_groups=env.model.dnn.max_groups,
        units=env.obs_spec.units,
    )
    return report, logs
