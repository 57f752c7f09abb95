"""Compare trained policies with the baselines, in simulation; tables, JSON and plots."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from agents.controllers import CONTROLLERS, Controller, make_controller
from agents.evaluate import compare
from agents.numpy_policy import check_run_complete, load_policy
from agents.report import Report
from dnn.fileio import atomic_write
from envs.dyndnn_env import DynDNNEnv
from envs.step import EpisodeLog


def agent_name(path: str | os.PathLike) -> str:
    """The label of a policy in reports: ``agent:RUN_FOLDER`` or ``agent:POLICY_STEM``."""
    p = Path(path)
    return f"agent:{p.name if p.is_dir() else p.stem}"


def controllers_for(
    agents: list[str], baselines: list[str] | None = None, require_complete: bool = True
) -> dict[str, Callable[[DynDNNEnv], Controller]]:
    """Controller factories: one per agent path, then the named baselines (default: all of
    :data:`agents.controllers.CONTROLLERS`).

    :param require_complete: refuse agents of run folders marked incomplete
    :raises UsageError: an unknown baseline name, or an incomplete run
    """
    names = list(CONTROLLERS) if baselines is None else baselines
    out: dict[str, Callable[[DynDNNEnv], Controller]] = {}
    for a in agents:
        if require_complete:
            check_run_complete(a)
        out[agent_name(a)] = lambda env, a=a: load_policy(a, env.model)
    for n in names:
        if n not in CONTROLLERS:
            make_controller(n, None)  # raises the one-line error naming the valid controllers
        out[n] = lambda env, n=n: make_controller(n, env.model, env)
    return out


def compare_run(run: str | os.PathLike, platform: str, env_kwargs: dict, seeds: list[int], progress: bool = True) -> Report:
    """Evaluate a run folder's exported policy against every baseline; write table and plots."""
    run = Path(run)
    env = DynDNNEnv(platform=platform, **env_kwargs)
    report, logs = compare(lambda: env, controllers_for([str(run)], require_complete=False), seeds, progress)
    with atomic_write(run / "evaluation.txt") as f:
        f.write(report.format() + "\n")
    plot_tradeoff(report, run / "tradeoff.png")
    agent = logs[agent_name(run)][0]
    plot_episode(
        agent,
        logs["greedy"][0],
        run / "episode.png",
        title=f"{report.platform} / {report.scenario}, seed {seeds[0]}",
        units=env.obs_spec.units,
    )
    return report


def plot_tradeoff(report: Report, path: str | os.PathLike) -> None:
    """Accuracy delivered vs energy per inference, colour = deadline-miss rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(report.controllers)
    ms = [report.controllers[n].to_dict() for n in names]
    sc = ax.scatter(
        [m["energy_mj"] for m in ms],
        [m["mean_accuracy"] * 100 for m in ms],
        c=[m["deadline_miss_rate"] * 100 for m in ms],
        s=120,
        cmap="viridis_r",
        vmin=0,
        edgecolors="k",
    )
    for i, (n, m) in enumerate(zip(names, ms)):  # alternate label sides: controllers often share an accuracy
        ax.annotate(
            f"{n}\n miss {m['deadline_miss_rate'] * 100:.0f}% / energy {m['energy_violation_rate'] * 100:.0f}%",
            (m["energy_mj"], m["mean_accuracy"] * 100),
            fontsize=7,
            xytext=(6, 6) if i % 2 == 0 else (6, -22),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (mJ, log)")
    ax.set_ylabel("mean top-1 accuracy delivered (%)")
    ax.set_title(f"{report.platform} / {report.scenario}: {report.requests} requests per controller")
    fig.colorbar(sc, ax=ax, label="deadline-miss rate (%)")
    fig.tight_layout()
    _save(fig, path)


def plot_episode(
    agent: EpisodeLog,
    greedy: EpisodeLog | None,
    path: str | os.PathLike,
    title: str = "",
    units: tuple[str, ...] = (),
    max_groups: int = 4,
) -> None:
    """One episode as a time series: budget vs latency, groups and frequency, load, temperature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.arange(len(agent.actions))
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    ax = axes[0]
    ax.plot(t, agent.time_budget_ms, "k-", lw=1.2, label="time budget")
    ax.plot(t, agent.latency_ms, ".", ms=2, label="agent latency")
    if greedy is not None:
        ax.plot(t, greedy.latency_ms, ".", ms=2, alpha=0.5, label="greedy latency")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[1]
    ax.step(t, agent.groups, where="post", label="groups (agent)")
    ax.set_ylim(0.5, max_groups + 0.5)
    ax.set_yticks(range(1, max_groups + 1))
    ax.set_ylabel("groups")
    ax2 = ax.twinx()
    ax2.plot(t, agent.freq_mhz, "r.", ms=2, label="frequency (agent)")
    ax2.set_ylabel("MHz", color="r")
    used = sorted(set(agent.unit))
    ax.set_title(
        "agent's unit per request: " + ", ".join(f"{u} {agent.unit.count(u) / len(agent.unit) * 100:.0f}%" for u in used),
        fontsize=8,
    )
    ax = axes[2]
    load = np.array(agent.load)
    for i in range(load.shape[1]):
        ax.plot(t, load[:, i], lw=1, label=f"load {units[i] if i < len(units) else i}")
    ax.set_ylabel("busy threads")
    ax.legend(fontsize=7, loc="upper right")
    axes[3].plot(t, agent.temperature, "m-")
    axes[3].set_ylabel("temperature (C)")
    axes[3].set_xlabel("request")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    from dnn.fileio import atomic_write

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
