"""The live session: a controller drives real inference of the dynamic DNN on this board.

Per request of the budget trace: follow the load schedule, then *observe* (background load per
unit from /proc/stat less this process, die temperature, current frequencies) into an
:class:`envs.step.Request`, *decide* (``controller.act(request, mask)``, as in simulation; a
policy builds its observation from its own stored spec), *apply* (CPU affinity, DVFS), run one
real inference on the next CIFAR-10 test image, meter its latency and energy, and score it with
the env's own :class:`envs.step.StepScorer`. The decision overhead (observe + decide + apply,
not the inference) is logged per request, and so is the model's prediction for the chosen
configuration at the observed state, after the online correction (``predicted_latency_ms``:
the typical run's, whole quanta of co-runner wait as most runs take them; ``predicted_energy_mj``),
so the model's error can be read off any deploy log, and how long the process had run since
it woke for the request when the inference started (``awake_ms``, its CPU time: the scheduler's wake-up
credit counts from the wake and is spent by running, :func:`runtime.preemption.cpu_clock_ns`; the prediction uses this request's, the next request carries it to the
controller, whose decision comes before its own is known). Where the profile found the kernel's
tick grid in this boot, the request also carries how far into a tick the loop woke
(``Request.tick_phase_ms``, logged as ``wake_tick_phase_ms``: whether a co-runner can preempt the
run at all depends on where the ticks fall in it), and each inference's own phase is logged
(``tick_phase_ms``). The online slow-down estimate per unit
(:mod:`envs.slowdown`) is updated after every request from the measured latency and the nominal
prediction, less the quanta the run waited (a run a tick landed in teaches nothing:
:func:`envs.step.correct_slowdown`), as the simulated env updates it, and every request carries
it to the controller.

Requests arrive on the trace's clock (``period_ms`` from one to the next); one that cannot
start on time starts as soon as the previous one ends. The trace's ``load_*`` columns are
ignored live: the load is what the board measures.

The session imports numpy, the DNN's runtime (torch, or ONNX Runtime or ncnn for an export) and
the project's own modules; never stable-baselines3: a policy runs as
:class:`agents.numpy_policy.NumpyPolicy`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agents.controllers import CONTROLLERS, Controller, make_controller
from agents.numpy_policy import NumpyPolicy, PolicyFileError, check_run_complete, load_policy, policy_paths, stored_reward
from agents.report import ControllerMetrics, LiveMetrics, Report
from dnn.errors import Terminated
from dnn.fileio import json_text
from dnn.profile import load_dnn_profile
from dnn.progress import progress as progress_bar
from envs.reward import RewardConfig, load_objective
from envs.scenario import TraceScenario
from envs.slowdown import SlowdownEstimator
from envs.step import EpisodeLog, Request, StepScorer, correct_slowdown, observed_state
from hwmodels.model import PlatformModel
from hwmodels.profile import load_platform
from runtime.board import LiveBoard, LiveUnit, units_of_spec
from runtime.loadgen import LoadGenerator, load_schedule
from runtime.preemption import boot_id, cpu_clock_ns, tick_phase_ms
from runtime.sysfs import LiveError, Sysfs, restore_on_exit


@dataclass
class LiveRun:
    """The outcome of one live run: per-request records and what the run measured with."""

    controller: str
    log: EpisodeLog = field(default_factory=lambda: EpisodeLog(None))
    overhead_ms: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    energy_is_estimate: bool = False
    seconds: float = 0.0
    load_phases: list[str] = field(default_factory=list)
    predicted_latency_ms: list[float] = field(default_factory=list)
    predicted_energy_mj: list[float] = field(default_factory=list)
    max_groups: int = 4
    units: tuple[str, ...] = ()
    objective: str | None = None

    def metrics(self) -> ControllerMetrics:
        """The comparison metrics of the run, with the live-only ones."""
        m = ControllerMetrics.from_logs([self.log], self.max_groups, self.units)
        phases = np.asarray(self.load_phases)
        met = np.asarray(self.log.deadline_met, dtype=bool)
        acc = np.asarray(self.log.accuracy)
        lat_err = _abs_pct_error(self.log.latency_ms, self.predicted_latency_ms)
        energy_err = None if self.energy_is_estimate else _abs_pct_error(self.log.energy_mj, self.predicted_energy_mj)
        m.live = LiveMetrics(
            overhead_ms_median=float(np.median(self.overhead_ms)),
            overhead_ms_p99=float(np.percentile(self.overhead_ms, 99)),
            measured_top1=float(np.mean(self.correct)) if self.correct else None,
            energy_is_estimate=self.energy_is_estimate,
            seconds=self.seconds,
            requests=len(self.log),
            by_load_threads={
                t: {
                    "requests": int((phases == t).sum()),
                    "deadline_miss_rate": float(1 - met[phases == t].mean()),
                    "mean_accuracy": float(acc[phases == t].mean()),
                    "latency_mape": float(lat_err[phases == t].mean()),
                }
                for t in sorted(set(self.load_phases))
            },
            latency_mape=float(lat_err.mean()),
            energy_mape=None if energy_err is None else float(energy_err.mean()),
        )
        return m


def load_phase(running: dict[str, tuple[int, float]]) -> str:
    """The label of a generated load: its busy threads, with the highest memory intensity among
    them where they stream (``"2"``, ``"1 mem 1"``), so CPU and memory hogs report apart."""
    threads = sum(t for t, _ in running.values())
    mem = max((m for t, m in running.values() if t > 0), default=0.0)
    return f"{threads} mem {mem:g}" if mem > 0 else str(threads)


def _abs_pct_error(measured: list[float], predicted: list[float]) -> np.ndarray:
    """|measured - predicted| / measured per request (the terms of a mean absolute percentage error)."""
    m = np.asarray(measured, dtype=float)
    return np.abs(m - np.asarray(predicted, dtype=float)) / m


def make_live_controller(name_or_path: str, model: PlatformModel, reward: RewardConfig | None = None) -> Controller:
    """A baseline of :data:`agents.controllers.CONTROLLERS` by name (``reward``: what a
    model-based one maximises), or an exported policy (``.npz`` or a run folder holding
    ``policy.npz``) checked against the board's profile."""
    if name_or_path in CONTROLLERS:
        return make_controller(name_or_path, model, env=None, reward=reward)
    if not Path(name_or_path).exists() and not policy_paths(name_or_path)[0].exists():
        raise PolicyFileError(
            f"{name_or_path}: neither a controller ({', '.join(n for n, c in CONTROLLERS.items() if not c.simulation_only)}) "
            "nor a policy file or run folder"
        )
    check_run_complete(name_or_path)
    return load_policy(name_or_path, model)


class LiveSession:
    """One controller on this board: open (the constructor: bind the profile to the board,
    load the DNN, warm up), :meth:`step` once per request, :meth:`close` (restore DVFS,
    affinity and stop load workers; also run on exit, SIGINT and SIGTERM).

    :param controller: a baseline name, a policy ``.npz`` or a run folder
    :param platform: the board's platform profile (from ``dynscale profile``, or a shipped one
        whose units' CPUs exist here)
    :param budgets: trace CSV (time and energy budgets, period per request)
    :param load: load schedule CSV (``t_s, unit, threads, mem_intensity``)
    :param load_repeat_s: repeat the load schedule every this many seconds (default: its last rows hold)
    :param allow_dvfs: let the session set frequencies (otherwise they are left to the governor)
    :param data: CIFAR-10 whose test images are classified (default: one random image; accuracy
        is then only the DNN profile's)
    :param weights: weight file (default: the shipped weights)
    :param dnn_profile: DNN profile YAML (default: the shipped one)
    :param objective: the objective the requests are scored by (``None``: a policy's own, else
        the default objective); ``min_accuracy`` overrides its floor
    :param reward: resolved reward weights (replace ``objective``)
    :param fs: sysfs root (tests: a fake tree)
    :param generator: a load generator the caller owns, started and restored by it (sessions
        run interleaved share one); replaces ``load``
    :param backend: the runtime that runs the DNN (:data:`dnn.backends.BACKENDS`); must be
        the one the profile was measured with
    :param export: the export folder of ``dynscale dnn export`` (``backend`` onnx or ncnn)
    """

    def __init__(
        self,
        controller: str,
        platform: str,
        budgets: str | os.PathLike,
        load: str | os.PathLike | None = None,
        load_repeat_s: float | None = None,
        allow_dvfs: bool = False,
        data: str | os.PathLike | None = None,
        weights: str | os.PathLike | None = None,
        dnn_profile: str | None = None,
        objective: str | None = None,
        min_accuracy: float | None = None,
        reward: dict | None = None,
        fs: Sysfs | None = None,
        generator: LoadGenerator | None = None,
        backend: str = "torch",
        export: str | os.PathLike | None = None,
    ) -> None:
        fs = fs or Sysfs("/")
        spec = load_platform(platform)
        self.model = model = PlatformModel(spec, load_dnn_profile(dnn_profile))
        if reward is None and objective is None and min_accuracy is None and policy_paths(controller)[1].is_file():
            reward = stored_reward(controller)  # a policy is scored by the objective it was trained for
        overrides = {} if min_accuracy is None else {"min_accuracy": min_accuracy}
        chosen = (
            RewardConfig.from_value(reward)
            if reward is not None
            else load_objective(objective, model.dnn.column("top1").tolist(), **overrides)
        )
        self.scorer = StepScorer(model.space, model.dnn, chosen)
        self.controller = make_live_controller(controller, model, self.scorer.reward)
        self.notes: list[str] = []
        if isinstance(self.controller, NumpyPolicy) and (note := self.controller.profile_note(model)):
            self.notes.append(note)
        self.trace = TraceScenario.from_csv(budgets, tuple(u.name for u in spec.units), tuple(u.cores for u in spec.units)).trace
        live_units = units_of_spec(spec, fs)
        unit_cpus = {u.name: u.cpus for u in live_units}
        schedule = load_schedule(load, unit_cpus, load_repeat_s) if load else None
        self.runners = _runners(live_units, model, platform, weights, data, backend, export)
        self.board = LiveBoard(live_units, fs, allow_dvfs)
        for u, why in zip(live_units, self.board.dvfs):
            if why is not None and len(u.freqs_mhz) > 1:
                self.notes.append(f"{u.name}: frequencies left to the governor ({why}); the delivered one is logged")
        self._owns_generator = generator is None and schedule is not None
        self.generator = generator if generator is not None else (LoadGenerator(schedule, unit_cpus) if schedule else None)
        self._finish = restore_on_exit(self.board, *([self.generator] if self._owns_generator else []))
        self.run = LiveRun(
            getattr(self.controller, "name", controller), max_groups=model.dnn.max_groups, units=tuple(u.name for u in spec.units)
        )
        self.run.objective = chosen.objective
        self._prev = self.scorer.prev_of(self.scorer.start_action)
        self._last = (0.0, 0.0)
        self._slowdown = SlowdownEstimator(len(spec.units), latency_cv=spec.noise.latency_cv)
        self._ticks = _tick_grid(spec, self.notes)
        if spec.measured is not None and not spec.measured.credit_from_wake and spec.interference.wake_credit_ms > 0:
            self.notes.append(
                f"{platform}: its wake-up credit was fitted at the inference's start (a profile from before awake_ms); "
                "the model counts it from the wake, so predictions wait a little too often: profile again"
            )
        self._awake_ms = 0.0
        self._i = 0
        self._t_start = 0.0
        self.controller.reset(0)

    def start(self) -> None:
        """Start the load schedule (a generator of its own) and the session's clock."""
        if self._owns_generator:
            self.generator.start()
        self._t_start = time.perf_counter()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t_start

    def period_s(self) -> float:
        """The trace's time from the request :meth:`step` runs next to the one after it."""
        return float(self.trace.period_ms[self._i % len(self.trace)]) / 1e3

    def step(self) -> dict:
        """Run the next request of the trace (it repeats): observe, decide, apply, infer, score.

        :return: the request's log record (JSON-ready)
        """
        cpu_wake_ns = cpu_clock_ns()  # the loop slept until now: the scheduler's wake-up credit runs from here
        wake_ns = time.perf_counter_ns()
        running = self.generator.tick() if self.generator else {}
        t0 = time.perf_counter()
        request, mask = self._observe(wake_ns)
        t_decide = time.perf_counter()
        a = self.controller.act(request, mask)
        decide_us = (time.perf_counter() - t_decide) * 1e6
        cfg, u = self.scorer.configs[a], self.scorer.unit_of[a]
        cpus, f = self.board.apply(u, cfg.cores, cfg.freq_mhz, request.freq_mhz[u])
        runner = self.runners[self.board.units[u].kind]
        runner.set_threads(cfg.cores)
        overhead_ms = (time.perf_counter() - t0) * 1e3
        seen = observed_state(request)
        mark = self.board.energy_begin(u)
        started_ns, cpu_started_ns = time.perf_counter_ns(), cpu_clock_ns()
        ms, correct = runner.infer(cfg.groups)
        # the model at the observed state and this request's time awake (known when it started):
        # the prediction, and the power of the energy estimate without a sensor
        self._awake_ms = seen.awake_ms = (cpu_started_ns - cpu_wake_ns) / 1e6
        nominal = self.model.expected(a, seen)
        energy, power, estimated = self.board.energy_end(u, mark, ms, float(nominal.power_w))
        reward, info = self.scorer.score(request, a, ms, energy, power, f)
        rec = _record(self._i, t0 - self._t_start, a, reward, info, cpus, correct, estimated, overhead_ms, decide_us, running)
        slow = self._slowdown.factors[u]  # the correction the controller saw
        # the typical run (whole quanta of co-runner wait, as most runs take them): its latency, and power over it
        typical = float(self.model.typical_latency(nominal, slow))
        predicted = (typical, typical * float(nominal.power_w))
        rec.update(
            predicted_latency_ms=round(predicted[0], 4), predicted_energy_mj=round(predicted[1], 4), slowdown=round(slow, 4)
        )
        rec["awake_ms"] = round(self._awake_ms, 4)
        if self._ticks:  # the kernel's ticks are on a known grid: how far into one the loop woke (what the
            # controller saw) and this inference started
            rec["wake_tick_phase_ms"] = round(request.tick_phase_ms, 4)
            rec["tick_phase_ms"] = round(tick_phase_ms(started_ns, *self._ticks), 4)
        self.run.predicted_latency_ms.append(predicted[0])
        self.run.predicted_energy_mj.append(predicted[1])
        correct_slowdown(self.model, self._slowdown, a, u, seen, nominal, ms)
        self._account(a, reward, info, decide_us, overhead_ms, correct, estimated, running)
        return rec

    def close(self) -> None:
        """Put the board back as it was (DVFS, affinity, load workers)."""
        self.run.seconds = self.elapsed_s() if self._t_start else 0.0
        self._finish()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _observe(self, wake_ns: int) -> tuple[Request, np.ndarray]:
        """The request the next trace row makes at the board's state now (``wake_ns``: when the loop
        woke for it, ``perf_counter_ns``), and the configurations available."""
        row = self._i % len(self.trace)
        temp = self.board.temperature_c(self.model.spec.thermal.start_c)
        load = self.board.sample_load()
        self._slowdown.observe(load)
        request = Request(
            float(self.trace.time_budget_ms[row]),
            float(self.trace.energy_budget_mj[row]),
            float(self.trace.period_ms[row]),
            load,
            temp,
            self.board.freqs_mhz(),
            self._prev,
            *self._last,
            tuple(self._slowdown.factors),
            self._awake_ms,  # the previous request's: this one's decision has not run yet
            tick_phase_ms(wake_ns, *self._ticks) if self._ticks else None,
        )
        return request, self.model.available(temp)

    def _account(self, a, reward, info, decide_us, overhead_ms, correct, estimated, running) -> None:
        run = self.run
        run.log.add(a, reward, info, decide_us)
        run.overhead_ms.append(overhead_ms)
        if correct is not None:
            run.correct.append(correct)
        run.energy_is_estimate |= estimated
        run.load_phases.append(load_phase(running))
        self._prev, self._last = self.scorer.prev_of(a), (info["latency_ms"], info["energy_mj"])
        self._i += 1


def check_measured_backend(spec, platform: str, backend: str, export_sha256: str | None = None) -> None:
    """A profile's table describes the backend (and, for an exported one, the export) it was measured with:
    refuse another (:class:`runtime.sysfs.LiveError`, naming the profile).

    :param spec: the profile (:class:`hwmodels.profile.PlatformSpec`)
    :param export_sha256: the SHA-256 of the export's weights about to run (``None``: not checked)
    """
    measured = spec.measured
    profiled = measured.backend if measured is not None else "torch"
    if backend != profiled:
        what = f"measured with --backend {profiled}" if measured is not None else "no measured table (it describes torch)"
        raise LiveError(f"{platform}: {what}; deploy with --backend {profiled}, or profile again with --backend {backend}")
    expected = measured.export_sha256 if measured is not None else None
    if export_sha256 is not None and expected is not None and export_sha256 != expected:
        raise LiveError(f"{platform}: measured with another export (its weights differ from --export's)")


def _tick_grid(spec, notes: list[str]) -> tuple[int, float] | None:
    """(HZ, phase) of the scheduler ticks the profile found, where they still hold: in the boot it
    was probed in (a reboot may move the phase; then a note says why ``tick_phase_ms`` is not logged)."""
    it = spec.interference
    if not it.tick_hz:
        return None
    probed = spec.measured.boot_id if spec.measured is not None else None
    if probed is not None and probed != boot_id():
        notes.append("tick_phase_ms not logged: the profile's tick grid was probed in another boot (profile again to log it)")
        return None
    return it.tick_hz, it.tick_offset_ms


def _runners(
    live_units: list[LiveUnit], model: PlatformModel, platform: str, weights, data, backend: str = "torch", export=None
) -> dict:
    """One warmed-up inference runner per kind of unit (``cpu``, ``gpu``), on the backend the
    profile was measured with (another would time something the table does not describe)."""
    from dnn.backends import make_runner

    check_measured_backend(model.spec, platform, backend)
    kinds = {u.kind for u in live_units}
    if "gpu" in kinds:
        import torch

        if not torch.cuda.is_available():
            raise LiveError(f"{platform}: has a gpu unit, but torch sees no CUDA device here")
    images = labels = None
    if data is not None:
        from dnn.data import load_cifar10

        cifar = load_cifar10(data)
        images, labels = cifar.test_x, cifar.test_y
    runners = {kind: make_runner(backend, kind, images, labels, weights, export) for kind in sorted(kinds)}
    if backend != "torch":  # the runner read (and checked) the export's manifest: its weights must be the profiled ones
        check_measured_backend(model.spec, platform, backend, runners["cpu"].manifest["weights_sha256"])
    space = model.space
    for kind, runner in runners.items():  # first inferences of a shape are slow: not the controller's fault
        units = [i for i, u in enumerate(model.spec.units) if u.kind == kind]
        for c in sorted({int(c) for c, u in zip(space.cores, space.unit_idx) if u in units}):
            for k in range(1, model.dnn.max_groups + 1):
                runner.time_config(k, c, repeats=0, warmup=3)
    return runners


def _record(i, t_s, a, reward, info, cpus, correct, estimated, overhead_ms, decide_us, running) -> dict:
    """One JSON line of the deploy log."""
    return {
        "i": i,
        "t_s": round(t_s, 4),
        "unix_s": round(time.time(), 3),  # wall clock: lines up a log with external events (a stress tool's phases)
        "time_budget_ms": info["time_budget_ms"],
        "energy_budget_mj": info["energy_budget_mj"],
        "load": [round(x, 3) for x in info["load"]],
        "load_generated": {k: v[0] for k, v in running.items()},
        "mem_generated": {k: v[1] for k, v in running.items()},
        "temp_c": info["temperature"],
        "freq_mhz": info["freq_mhz"],
        "action": a,
        "groups": info["groups"],
        "unit": info["unit"],
        "cores": info["config"].cores,
        "cpus": list(cpus),
        "latency_ms": round(info["latency_ms"], 4),
        "energy_mj": round(info["energy_mj"], 4),
        "power_w": round(info["power_w"], 4),
        "energy_is_estimate": estimated,
        "accuracy": info["accuracy"],
        "correct": correct,
        "deadline_met": info["deadline_met"],
        "energy_met": info["energy_met"],
        "reward": round(float(reward), 5),
        "overhead_ms": round(overhead_ms, 4),
        "decide_us": round(decide_us, 2),
    }


def deploy(
    controller: str,
    platform: str,
    budgets: str | os.PathLike,
    log_path: str | os.PathLike,
    duration_s: float | None = None,
    progress: bool = True,
    **session_kwargs,
) -> LiveRun:
    """Run ``controller`` live on this board against a budget trace; one JSON line per request
    (flushed, so a killed run loses at most the line in flight).

    :param log_path: the JSON-lines log to write
    :param duration_s: stop after this long (the trace repeats if it is shorter); default: one pass
    :param progress: report progress on stderr
    :param session_kwargs: the rest of :class:`LiveSession`'s arguments (``load``, ``allow_dvfs``,
        ``data``, ``weights``, ``dnn_profile``, ``reward``, ``fs``)
    """
    with LiveSession(controller, platform, budgets, **session_kwargs) as session, open_log(log_path) as out:
        for note in session.notes:
            print(f"dynscale: {note}", file=sys.stderr)
        total = len(session.trace) if duration_s is None else None
        bar = progress_bar(total, f"deploy {session.run.controller}", progress, "req")
        try:
            session.start()
            serve_requests(session, out, bar, total, duration_s)
        except (KeyboardInterrupt, Terminated) as exc:
            n = len(session.run.log)
            # say how it ended: the log is whole up to the request in flight, the board restored
            raise type(exc)(f"deploy stopped after {n} request{'s' if n != 1 else ''}; {log_path} holds each of them") from None
        finally:
            bar.close()
    if not session.run.log.actions:
        raise LiveError("no request ran (empty trace or zero duration)")
    return session.run


def serve_requests(
    session: LiveSession, out, bar, count: int | None, until_s: float | None, due_at: float | None = None
) -> float:
    """Serve ``count`` requests (``None``: no limit) on the trace's clock, stopping when the
    session's clock reaches ``until_s`` (``None``: no limit).

    Sleeps until the next request are capped by what is left before ``until_s`` (so a long
    ``period_ms`` cannot keep the run going past it) and end early on SIGINT / SIGTERM.

    :param due_at: when the first request is due (:func:`time.perf_counter`; ``None``: at once).
        Sessions taking turns pass on the time the previous turn's next request was due, so the
        first request of a turn wakes from a sleep a period after the last one, as every other
        request does (served at once, it came at a time the trace does not ask for, right after
        another controller's inference, where the model's wake-up credit assumes a wake)
    :return: when the request after the last one served is due (:func:`time.perf_counter`)
    """
    origin = time.perf_counter() - session.elapsed_s()  # the session's clock in perf_counter time
    due, served = (0.0 if due_at is None else due_at - origin), 0
    while count is None or served < count:
        now = session.elapsed_s()
        if until_s is not None and now >= until_s:
            return origin + due
        if due > now:
            time.sleep(due - now if until_s is None else min(due - now, until_s - now))
            continue
        period = session.period_s()
        out.write(json_text(session.step(), indent=None) + "\n")
        out.flush()
        due = max(due + period, session.elapsed_s())
        served += 1
        bar.update()
    return origin + due


def open_log(path: str | os.PathLike):
    """A deploy log opened for writing, line-buffered (its folder created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return open(p, "w", buffering=1)


def live_report(runs: list[LiveRun], platform: str, budgets: str, load: str | None, objective: str | None = None) -> Report:
    """The comparison report of live runs (the same metrics as in simulation, plus the live ones;
    no ``infeasible_rate``: live, nothing knows what the ceiling would have met)."""
    return Report(
        platform=platform,
        scenario=f"live: {budgets}" + (f" + load {load}" if load else ""),
        seeds=[],
        requests=len(runs[0].log),
        noise="live",
        controllers={r.controller: r.metrics() for r in runs},
        objective=objective,
    )
