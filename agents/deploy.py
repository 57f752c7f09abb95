"""The deploy loop: a controller drives real inference of the dynamic DNN on the live board.

Per request of the budget trace: follow the load schedule, then *observe* (background load per
unit from /proc/stat less this process, die temperature, current frequencies), build the
observation with the env's own :class:`envs.observation.ObservationBuilder`, *decide*
(``controller.act``, as in simulation), *apply* (CPU affinity, torch threads, DVFS), run one
real inference on the next CIFAR-10 test image, meter its latency and energy, and append one
JSON line to the log (flushed, so a killed run loses at most the line in flight). The decision
overhead (observe + decide + apply, not the inference) is logged per request.

Requests arrive on the trace's clock (``period_ms`` from one to the next); one that cannot
start on time starts as soon as the previous one ends. A request meets its deadline when its
inference latency is within the time budget, as in the env. The trace's ``load_*`` columns are
ignored live: the load is what the board measures.

The loop imports numpy, torch (for the DNN) and the project's own modules; never
stable-baselines3: a policy runs as :class:`agents.numpy_policy.NumpyPolicy`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.controllers import Controller, GreedyController, RandomController, max_accuracy
from agents.evaluate import EpisodeLog, summarize
from agents.numpy_policy import PolicyFileError, load_policy, policy_paths
from dnn.profile import load_dnn_profile
from envs.dyndnn_env import observation_spec
from envs.observation import ObservationBuilder
from envs.reward import RewardConfig
from envs.scenario import TraceScenario
from hwmodels.board import LiveBoard, units_of_spec
from hwmodels.config import Config
from hwmodels.live import LiveError, Sysfs, restore_on_exit
from hwmodels.loadgen import LoadGenerator, load_schedule
from hwmodels.model import PlatformModel, State
from hwmodels.profile import load_platform

#: live controllers: name -> factory taking the platform model (the oracle needs a simulator)
LIVE_BASELINES: dict[str, Callable[[PlatformModel], Controller]] = {
    "greedy": GreedyController,
    "random": lambda model: RandomController(len(model.space)),
    "fixed-max": max_accuracy,
}


@dataclass
class LiveRun:
    """The outcome of one live run: per-request records and what the run measured with."""

    controller: str
    log: EpisodeLog
    overhead_ms: list[float]
    correct: list[bool]
    energy_is_estimate: bool
    seconds: float
    load_threads: list[int]


def make_live_controller(name_or_path: str, model: PlatformModel, observation_names: tuple[str, ...]) -> Controller:
    """A baseline by name (``greedy``, ``random``, ``fixed-max``) or an exported policy (``.npz``
    or a run folder holding ``policy.npz``), checked against the platform's spaces."""
    if name_or_path in LIVE_BASELINES:
        return LIVE_BASELINES[name_or_path](model)
    if name_or_path == "oracle":
        raise LiveError("the oracle needs the simulated env's true model; it cannot run live")
    if not Path(name_or_path).exists() and not policy_paths(name_or_path)[0].exists():
        raise PolicyFileError(
            f"{name_or_path}: neither a controller ({', '.join(LIVE_BASELINES)}) nor a policy file or run folder"
        )
    return load_policy(name_or_path, model, observation_names)


def deploy(
    controller: str,
    platform: str,
    budgets: str | os.PathLike,
    log_path: str | os.PathLike,
    load: str | os.PathLike | None = None,
    duration_s: float | None = None,
    allow_dvfs: bool = False,
    data: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    dnn_profile: str | None = None,
    reward: dict | None = None,
    fs: Sysfs | None = None,
    progress: bool = True,
) -> LiveRun:
    """Run ``controller`` live on this board against a budget trace (and a load schedule).

    :param controller: ``greedy``, ``random``, ``fixed-max``, a policy ``.npz`` or a run folder
    :param platform: the board's platform profile (from ``dynscale profile``, or a shipped one
        whose units' CPUs exist here)
    :param budgets: trace CSV (time and energy budgets, period per request)
    :param log_path: JSON-lines log to write (one line per request, flushed)
    :param load: load schedule CSV (``t_s, unit, threads, mem_intensity``)
    :param duration_s: stop after this long (the trace repeats if it is shorter); default: one pass
    :param allow_dvfs: let the loop set frequencies (otherwise they are left to the governor)
    :param data: CIFAR-10 whose test images are classified (default: one random image; accuracy
        is then only the DNN profile's)
    :param weights: weight file (default: the shipped weights)
    :param dnn_profile: DNN profile YAML (default: the shipped one)
    :param reward: reward weights (default: the env's)
    :param fs: sysfs root (tests: a fake tree)
    :param progress: show a progress bar
    """
    from tqdm.auto import tqdm

    from dnn.runner import InferenceRunner
    from dnn.train import load_weights

    fs = fs or Sysfs("/")
    spec = load_platform(platform)
    model = PlatformModel(spec, load_dnn_profile(dnn_profile))
    builder = ObservationBuilder(observation_spec(model))
    ctrl = make_live_controller(controller, model, builder.names)
    units = tuple(u.name for u in spec.units)
    trace = TraceScenario.from_csv(budgets, units).trace
    live_units = units_of_spec(spec, fs)
    unit_cpus = {u.name: u.cpus for u in live_units}
    schedule = load_schedule(load, unit_cpus) if load else None
    has_gpu = any(u.kind == "gpu" for u in live_units)
    if has_gpu:
        import torch

        if not torch.cuda.is_available():
            raise LiveError(f"{platform}: has a gpu unit, but torch sees no CUDA device here")
    ckpt = load_weights(weights)
    images = labels = None
    if data is not None:
        from dnn.data import load_cifar10

        cifar = load_cifar10(data)
        images, labels = cifar.test_x, cifar.test_y
    runners = {"cpu": InferenceRunner(ckpt, images, labels)}
    if has_gpu:
        runners["gpu"] = InferenceRunner(load_weights(weights), images, labels, device="cuda")

    n_total = len(trace) if duration_s is None else None
    cfgs = [model.space.decode(i) for i in range(len(model.space))]
    unit_of = model.space.unit_idx.tolist()
    accuracy = [model.dnn.cost(c.groups).top1 for c in cfgs]
    reward_fn = RewardConfig.from_value(reward)
    first = spec.units[0]
    start = model.space.encode(Config(model.dnn.max_groups, first.name, first.cores, first.max_freq_mhz))
    prev = (cfgs[start].groups, unit_of[start], cfgs[start].cores, cfgs[start].freq_mhz)
    last = (0.0, 0.0)
    state = State(np.zeros(len(units)), np.zeros(len(units)), spec.thermal.start_c, None)
    ctrl.reset(0)

    for kind, runner in runners.items():  # first inferences of a shape are slow: not the controller's fault
        cores = {c.cores for c, u in zip(cfgs, unit_of) if spec.units[u].kind == kind}
        for c in sorted(cores):
            for k in range(1, model.dnn.max_groups + 1):
                runner.time_config(k, c, repeats=0, warmup=3)
    board = LiveBoard(live_units, fs, allow_dvfs)
    for u, why in zip(live_units, board.dvfs):
        if why is not None and len(u.freqs_mhz) > 1:
            print(f"dynscale: {u.name}: frequencies left to the governor ({why}); the delivered one is logged", file=sys.stderr)
    gen = LoadGenerator(schedule, unit_cpus) if schedule else None
    finish = restore_on_exit(board, *([gen] if gen else []))
    log = EpisodeLog(None)
    run = LiveRun(getattr(ctrl, "name", controller), log, [], [], False, 0.0, [])
    bar = tqdm(total=n_total, desc=f"deploy {run.controller}", disable=not progress, unit="req")
    try:
        with _open_log(log_path) as out:
            if gen:
                gen.start()
            t_start = time.perf_counter()
            due = t_start
            i = 0
            while True:
                if n_total is not None and i >= n_total:
                    break
                if duration_s is not None and time.perf_counter() - t_start >= duration_s:
                    break
                row = i % len(trace)
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                running = gen.tick() if gen else {}
                tb, eb = float(trace.time_budget_ms[row]), float(trace.energy_budget_mj[row])
                # ---- observe, decide, apply: the decision overhead
                t0 = time.perf_counter()
                load_now = board.sample_load()
                temp = board.temperature_c(spec.thermal.start_c)
                freqs = board.freqs_mhz()
                obs = builder.build(tb, eb, load_now, temp, freqs, prev, last[0], last[1])
                mask = model.available(temp)
                request = {"time_budget_ms": tb, "energy_budget_mj": eb, "load": load_now, "temp_c": temp, "freq_mhz": freqs}
                t_decide = time.perf_counter()
                a = ctrl.act(obs, mask, request)
                decide_us = (time.perf_counter() - t_decide) * 1e6
                cfg, u = cfgs[a], unit_of[a]
                cpus, f = board.apply(u, cfg.cores, cfg.freq_mhz, freqs[u])
                runner = runners[spec.units[u].kind]
                runner.set_threads(cfg.cores)
                overhead_ms = (time.perf_counter() - t0) * 1e3
                # ---- one real inference
                mark = board.energy_begin(u)
                ms, correct = runner.infer(cfg.groups)
                state.load[:] = load_now
                state.temp_c = temp
                est_w = model.expected(a, state).power_w
                energy, power, estimated = board.energy_end(u, mark, ms, est_w)
                r = reward_fn(accuracy[a], ms, energy, tb, eb)
                rec = {
                    "i": i,
                    "t_s": round(t0 - t_start, 4),
                    "time_budget_ms": tb,
                    "energy_budget_mj": eb,
                    "load": [round(x, 3) for x in load_now],
                    "load_generated": {k: v[0] for k, v in running.items()},
                    "temp_c": temp,
                    "freq_mhz": f,
                    "action": a,
                    "groups": cfg.groups,
                    "unit": cfg.unit,
                    "cores": cfg.cores,
                    "cpus": list(cpus),
                    "latency_ms": round(ms, 4),
                    "energy_mj": round(energy, 4),
                    "power_w": round(power, 4),
                    "energy_is_estimate": estimated,
                    "accuracy": accuracy[a],
                    "correct": correct,
                    "deadline_met": ms <= tb,
                    "energy_met": energy <= eb,
                    "reward": round(float(r), 5),
                    "overhead_ms": round(overhead_ms, 4),
                    "decide_us": round(decide_us, 2),
                }
                out.write(json.dumps(rec) + "\n")
                out.flush()
                log.add(
                    actions=a,
                    rewards=rec["reward"],
                    decision_us=decide_us,
                    latency_ms=rec["latency_ms"],
                    energy_mj=rec["energy_mj"],
                    accuracy=accuracy[a],
                    deadline_met=rec["deadline_met"],
                    energy_met=rec["energy_met"],
                    time_budget_ms=tb,
                    energy_budget_mj=eb,
                    temperature=temp,
                    freq_mhz=f,
                    load=rec["load"],
                    groups=cfg.groups,
                    unit=cfg.unit,
                )
                run.overhead_ms.append(overhead_ms)
                if correct is not None:
                    run.correct.append(correct)
                run.energy_is_estimate |= estimated
                run.load_threads.append(sum(v[0] for v in running.values()))
                prev, last = (cfg.groups, u, cfg.cores, f), (ms, energy)
                due = max(due + float(trace.period_ms[row]) / 1e3, time.perf_counter())
                i += 1
                bar.update()
            run.seconds = time.perf_counter() - t_start
    finally:
        bar.close()
        finish()
    if not log.actions:
        raise LiveError("no request ran (empty trace or zero duration)")
    return run


def _open_log(path: str | os.PathLike):
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return open(p, "w", buffering=1)


def live_report(runs: list[LiveRun], platform: str, budgets: str, load: str | None) -> dict:
    """The metrics table of :func:`agents.evaluate.summarize` for live runs, plus what only a
    live run has: decision overhead, measured top-1, whether energy was estimated, and the miss
    rate and accuracy per phase of the load schedule (by worker threads running)."""
    controllers = {}
    for r in runs:
        m = summarize([r.log])
        m["overhead_ms_median"] = float(np.median(r.overhead_ms))
        m["overhead_ms_p99"] = float(np.percentile(r.overhead_ms, 99))
        m["measured_top1"] = float(np.mean(r.correct)) if r.correct else None
        m["energy_is_estimate"] = r.energy_is_estimate
        m["seconds"] = r.seconds
        m["requests"] = len(r.log.actions)
        threads = np.asarray(r.load_threads)
        met = np.asarray(r.log.deadline_met, dtype=bool)
        acc = np.asarray(r.log.accuracy)
        m["by_load_threads"] = {
            str(t): {
                "requests": int((threads == t).sum()),
                "deadline_miss_rate": float(1 - met[threads == t].mean()),
                "mean_accuracy": float(acc[threads == t].mean()),
            }
            for t in sorted(set(r.load_threads))
        }
        controllers[r.controller] = m
    return {
        "platform": platform,
        "scenario": f"live: {budgets}" + (f" + load {load}" if load else ""),
        "seeds": [],
        "requests": len(runs[0].log.actions),
        "noise": "live",
        "controllers": controllers,
    }


def format_live_extras(report: dict) -> str:
    """The live-only columns, one line per controller."""
    lines = []
    for name, m in report["controllers"].items():
        top1 = "-" if m["measured_top1"] is None else f"{m['measured_top1'] * 100:.2f}%"
        lines.append(
            f"{name:<22} decision overhead median {m['overhead_ms_median']:.3f} ms "
            f"(p99 {m['overhead_ms_p99']:.3f}); measured top-1 {top1}; energy {'estimated' if m['energy_is_estimate'] else 'measured'}; "
            f"{m['seconds']:.0f} s"
        )
    for name, m in report["controllers"].items():
        phases = " | ".join(
            f"{t} thr: miss {v['deadline_miss_rate'] * 100:.1f}% acc {v['mean_accuracy'] * 100:.2f}% ({v['requests']})"
            for t, v in m["by_load_threads"].items()
        )
        lines.append(f"{name:<22} by generated load: {phases}")
    return "\n".join(lines)
