"""Evaluate controllers on held-out episodes; metrics, comparison table and JSON.

Metrics per controller (over all requests of all episodes):

* ``deadline_miss_rate``: requests whose latency exceeded the time budget;
* ``energy_violation_rate``: requests whose energy exceeded the energy budget;
* ``mean_accuracy``: top-1 accuracy of the configurations chosen (what the requests got);
* ``energy_mj``: mean energy per inference;
* ``mean_reward``: mean reward per request (the env's reward);
* ``oracle_gap``: ``1 - mean_reward / oracle mean_reward`` (when the oracle was run);
* ``switches_per_100``: configuration changes per 100 requests;
* ``decision_us``: median time of one ``act`` call.

The same shape serves the live comparison (``dynscale compare --live``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from agents.controllers import Controller
from envs.dyndnn_env import DynDNNEnv

METRICS = (
    "deadline_miss_rate",
    "energy_violation_rate",
    "mean_accuracy",
    "energy_mj",
    "mean_reward",
    "oracle_gap",
    "switches_per_100",
    "decision_us",
)


@dataclass
class EpisodeLog:
    """Per-request record of one episode (lists, one entry per request)."""

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

    def add(self, **request: object) -> None:
        """Append one request: a keyword for every list field (simulated and live runs alike)."""
        for f in fields(self):
            if f.name != "seed":
                getattr(self, f.name).append(request[f.name])


def run_episode(env: DynDNNEnv, controller: Controller, seed: int | None) -> EpisodeLog:
    """One episode of ``controller`` on ``env`` reset with ``seed``."""
    obs, _ = env.reset(seed=seed)
    controller.reset(seed)
    log = EpisodeLog(seed)
    done = False
    while not done:
        request = env.request
        mask = env.action_masks()
        t0 = time.perf_counter()
        a = controller.act(obs, mask, request)
        decision_us = (time.perf_counter() - t0) * 1e6
        obs, r, term, trunc, info = env.step(a)
        done = term or trunc
        cfg = info["config"]
        log.add(
            actions=a,
            rewards=r,
            decision_us=decision_us,
            latency_ms=info["latency_ms"],
            energy_mj=info["energy_mj"],
            accuracy=info["accuracy"],
            deadline_met=info["deadline_met"],
            energy_met=info["energy_met"],
            time_budget_ms=info["time_budget_ms"],
            energy_budget_mj=info["energy_budget_mj"],
            temperature=info["temperature"],
            freq_mhz=info["freq_mhz"],
            load=request["load"],
            groups=cfg.groups,
            unit=cfg.unit,
        )
    return log


def summarize(logs: list[EpisodeLog]) -> dict:
    """The metrics over every request of ``logs`` (``oracle_gap`` is filled in by :func:`compare`)."""
    n = sum(len(lg.actions) for lg in logs)
    switches = sum(sum(a != b for a, b in zip(lg.actions, lg.actions[1:])) for lg in logs)
    cat = lambda f: np.concatenate([np.asarray(getattr(lg, f), dtype=float) for lg in logs])
    return {
        "deadline_miss_rate": float(1 - cat("deadline_met").mean()),
        "energy_violation_rate": float(1 - cat("energy_met").mean()),
        "mean_accuracy": float(cat("accuracy").mean()),
        "energy_mj": float(cat("energy_mj").mean()),
        "mean_reward": float(cat("rewards").mean()),
        "oracle_gap": None,
        "switches_per_100": 100.0 * switches / n,
        "decision_us": float(np.median(cat("decision_us"))),
    }


def fill_oracle_gap(metrics: dict[str, dict]) -> None:
    """Set every controller's ``oracle_gap`` = 1 - mean_reward / the oracle's (when the oracle
    ran and its reward is positive; otherwise the gap is undefined and left ``None``)."""
    if "oracle" not in metrics:
        return
    ref = metrics["oracle"]["mean_reward"]
    for m in metrics.values():
        m["oracle_gap"] = (1.0 - m["mean_reward"] / ref) if ref > 0 else None


def compare(
    env_factory: Callable[[], DynDNNEnv],
    controllers: dict[str, Callable[[DynDNNEnv], Controller]],
    seeds: list[int | None],
    progress: bool = True,
) -> tuple[dict, dict[str, list[EpisodeLog]]]:
    """Run every controller on the same episodes (one per seed) and compare them.

    :param env_factory: builds the evaluation env (same platform, scenario, noise for all)
    :param controllers: name -> factory taking the env (the oracle needs it)
    :param seeds: episode seeds (held out from training); ``None`` entries for a replayed trace
    :return: the report (``platform``, ``requests``, ``controllers`` -> metrics) and the logs
    """
    from tqdm.auto import tqdm

    env = env_factory()
    logs: dict[str, list[EpisodeLog]] = {}
    bar = tqdm(total=len(controllers) * len(seeds), desc="evaluating", disable=not progress, leave=False)
    for name, make in controllers.items():
        ctrl = make(env)
        logs[name] = []
        for seed in seeds:
            logs[name].append(run_episode(env, ctrl, seed))
            bar.update()
    bar.close()
    metrics = {name: summarize(lg) for name, lg in logs.items()}
    fill_oracle_gap(metrics)
    report = {
        "platform": env.model.spec.name,
        "scenario": env.scenario_name,
        "seeds": [s for s in seeds if s is not None],
        "requests": sum(len(lg.actions) for lg in next(iter(logs.values()))),
        "noise": env.noise,
        "controllers": metrics,
    }
    return report, logs


def format_report(report: dict) -> str:
    """The comparison as a fixed-width table."""
    head = f"{'controller':<22} {'miss%':>6} {'energy viol%':>12} {'accuracy%':>9} {'mJ/inf':>8} {'reward':>7} {'oracle gap':>10} {'sw/100':>7} {'decide us':>9}"
    lines = [
        f"{report['platform']} / {report['scenario']}: {report['requests']} requests"
        + (f", seeds {report['seeds'][0]}-{report['seeds'][-1]}" if report["seeds"] else ""),
        head,
        "-" * len(head),
    ]
    for name, m in report["controllers"].items():
        gap = "-" if m["oracle_gap"] is None else f"{m['oracle_gap'] * 100:.1f}%"
        lines.append(
            f"{name:<22} {m['deadline_miss_rate'] * 100:>6.1f} {m['energy_violation_rate'] * 100:>12.1f} {m['mean_accuracy'] * 100:>9.2f} "
            f"{m['energy_mj']:>8.2f} {m['mean_reward']:>7.3f} {gap:>10} {m['switches_per_100']:>7.1f} {m['decision_us']:>9.1f}"
        )
    return "\n".join(lines)
