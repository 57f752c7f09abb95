"""The profiler's measurement loop: measure every configuration of the dynamic DNN on the live board and write a
platform profile (the hwmodels YAML format) that ``train_agent.py --platform board.yaml``
trains on.

For each configuration the board offers (groups x unit x cores x frequency, in
:class:`hwmodels.config.ConfigSpace` order) it runs real CIFAR-10 test images one at a time, the
way the deploy loop runs requests (paced ``period_ms`` apart, configurations taking turns in
bursts of :data:`BURST`): ``warmup`` untimed requests, then ``repeats`` timed ones each; it
records the median (with a 95% confidence interval) and p90 latency and, where the unit has a
sensor, the mean power. The compute coefficients are fitted to that idle table; how latency
grows with co-runners (fair share, barriers of multi-core runs, memory contention) is fitted to
the mean latency of the same configurations run again beside the project's load generator
(:func:`_measure_co_runners`, :func:`hwmodels.fit.fit_interference`), and the quantum in which
a co-runner takes a shared CPU is probed directly (:mod:`runtime.preemption`); each group count pinned to
each CPU in turn checks that identical cores agree (:func:`_measure_core_agreement`). What
nothing here measures (power without a sensor, heat) is set to stated assumptions that the
profile's ``sources`` list as ASSUMED; without a power sensor the profile says
``power_is_estimate: true`` and its energies are relative estimates.

Resumable: the idle table's samples so far go to ``OUT.partial.json`` after every round; a rerun
with the same settings goes on from the next round (the co-runner and per-CPU checks run again whole).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dnn.errors import UsageError
from dnn.fileio import atomic_write
from dnn.progress import progress as progress_bar
from hwmodels.config import ConfigSpace
from hwmodels.profile import PLATFORM_FORMAT, parse_platform
from runtime.board import LiveBoard, LiveUnit, discover_units
from runtime.loadgen import LoadGenerator, LoadSchedule, LoadStep
from runtime.preemption import MIN_ALIGNED, MIN_PREEMPTIONS, cpu_clock_ns
from runtime.sysfs import LiveError, Sysfs, restore_on_exit

#: background load (busy threads) above which the board is not idle enough to profile
IDLE_LOAD_LIMIT = 0.3
#: nominal voltage where the board does not publish a V-f table (the power terms are relative)
NOMINAL_VOLT = 1.0
#: default time between profiled requests: a camera-rate stream, the tightest the presets ask for
DEFAULT_PERIOD_MS = 33.3
#: how far the median latencies of identical cores may differ (relative) for a profile to hold
IDENTICAL_CORES_TOLERANCE = 0.05
#: the per-CPU check times this many times ``repeats`` requests per (CPU, group count): the median
#: of 40 paced requests varies by about 2% from run to run on this VM (two of them differ by 5%
#: one time in ten), of 160 by about 1%
CORE_CHECK_FACTOR = 4
#: the co-runner condition that holds every core of a unit runs this many times the requests of
#: the others: its runs wait a whole quantum (4 ms on the dev host) or none, so the mean of 12 runs
#: of one-core k = 4 there moved by 0.7 ms between two profiles of one afternoon; with 48, one
#: profile had one-core k = 3 wait in 12% of runs where deploy's waited in 32-33% beside the
#: project's generator (``docs/live/quanta_split.py runs/live-acc9/*.jsonl``; a share's binomial
#: error at 48 runs is about 6 points, at 96 about 4.5)
HELD_FACTOR = 8
#: consecutive requests of one configuration per turn (the deploy loop mostly repeats a
#: configuration for a few requests; each turn starts on a switch, as a deploy switch does)
BURST = 4


def profile_board(
    out: str | os.PathLike,
    data: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    repeats: int = 40,
    warmup: int = 4,
    period_ms: float = DEFAULT_PERIOD_MS,
    allow_dvfs: bool = False,
    name: str = "board",
    fs: Sysfs | None = None,
    cuda: bool = False,
    allow_busy: bool = False,
    progress: bool = True,
    backend: str = "torch",
    export: str | os.PathLike | None = None,
) -> dict:
    """Profile this board and write its platform profile to ``out``.

    :param out: the profile YAML to write (atomically)
    :param data: CIFAR-10 (any layout :func:`dnn.data.load_cifar10` reads); its test images are run
    :param weights: weight file (default: the shipped weights)
    :param repeats: timed inferences per configuration
    :param warmup: untimed inferences before them
    :param period_ms: time from one profiled request to the next (as the deploy loop paces them)
    :param allow_dvfs: profile every frequency (writes cpufreq/devfreq; restored at the end)
    :param name: the platform's name in the profile (policies are checked against it)
    :param fs: sysfs root (tests: a fake tree)
    :param cuda: profile the CUDA GPU as a unit too
    :param allow_busy: profile even when background load is found (the result is then not an idle-board table)
    :param progress: show a progress bar
    :param backend: the runtime that runs the DNN (:data:`dnn.backends.BACKENDS`): deploy must run the same
    :param export: the export folder (``--backend onnx`` or ``ncnn``)
    :return: the profile document that was written
    """
    from dnn.data import load_cifar10
    from dnn.profile import load_dnn_profile

    if repeats < 3:
        raise UsageError(f"--repeats must be >= 3, got {repeats}")
    if warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {warmup}")
    out = Path(out)
    if out.is_dir():
        raise LiveError(f"{out}: --out is a directory; name the profile YAML to write (e.g. {out / 'board.yaml'})")
    try:  # checked before minutes of measuring, not after
        import scipy.optimize  # noqa: F401
    except ImportError:
        raise LiveError("profiling fits the board's model with SciPy, which is not installed: pip install scipy "
                        "(a bundle's requirements-profile.txt)") from None  # fmt: skip
    if weights is not None and backend != "torch":
        raise UsageError(f"--weights: only with --backend torch (--backend {backend} runs the export's weights)")
    dnn = load_dnn_profile()  # the work per group count the model will scale (torch's model counts the same)
    restore_threads = _keep_torch_threads(backend)  # before the board is bound: torch may be missing here
    cifar = load_cifar10(data)
    fs = fs or Sysfs("/")
    board = _open_board(fs, cuda, allow_dvfs)
    finish = restore_on_exit(board)
    try:
        idle = _idle_load(board, allow_busy)
        draft = _draft_spec(board.units, name, fs)
        space = ConfigSpace(parse_platform(draft, f"{out} (draft)"), dnn.max_groups)
        settings = {
            "repeats": repeats,
            "warmup": warmup,
            "period_ms": period_ms,
            "units": [u.name for u in board.units],
            "weights": str(weights or "shipped"),
            "backend": backend,
            "export": None if export is None else str(Path(export).resolve()),
        }
        partial = out.with_name(out.name + ".partial.json")
        results, runners = _measure_all(board, space, cifar, settings, partial, progress)
        quantum = _measure_quantum(board)
        co_runners = _measure_co_runners(board, runners, space, settings, progress, quantum["quantum_ms"])
        cores = _measure_core_agreement(board, runners, space, settings, progress)
        doc = _finish_profile(draft, space, dnn, results, board, idle, period_ms, co_runners, cores, quantum)
        doc["measured"]["backend"] = backend  # what deploy must run for this table to hold
        if backend != "torch":  # the export the runner timed (it read the manifest)
            doc["measured"]["export_sha256"] = runners["cpu"].manifest["weights_sha256"]
        with atomic_write(out) as f:
            f.write(f"# Measured by `dynscale profile` on {time.strftime('%Y-%m-%d %H:%M')} ({os.uname().nodename}).\n")
            yaml.safe_dump(doc, f, sort_keys=False, width=120)
        partial.unlink(missing_ok=True)
        return doc
    finally:
        restore_threads()
        finish()


def _keep_torch_threads(backend: str):
    """A function that puts torch's thread count back as it is now (the runner changes it);
    an exported backend does not import torch (a board profiles without it)."""
    if backend != "torch":
        return lambda: None
    from dnn.backends import require_torch

    torch = require_torch()
    before = torch.get_num_threads()
    return lambda: torch.set_num_threads(before)


def _open_board(fs: Sysfs, cuda: bool, allow_dvfs: bool) -> LiveBoard:
    """The board's units, bound; a unit without DVFS control is profiled (and described) at
    the one clock it runs at."""
    units = discover_units(fs, cuda)
    board = LiveBoard(units, fs, allow_dvfs)
    current = board.freqs_mhz()
    board.units = [
        u if d is None else LiveUnit(u.name, u.kind, u.cpus, (current[i],)) for i, (u, d) in enumerate(zip(units, board.dvfs))
    ]
    return board


def _idle_load(board: LiveBoard, allow_busy: bool) -> list[float]:
    """Background load per unit before profiling (refused above :data:`IDLE_LOAD_LIMIT` unless ``allow_busy``)."""
    time.sleep(0.5)
    idle = board.sample_load()
    if max(idle) > IDLE_LOAD_LIMIT and not allow_busy:
        busy = ", ".join(f"{u.name} {x:.2f}" for u, x in zip(board.units, idle))
        raise LiveError(
            f"the board is not idle: background load {busy} busy threads "
            f"(limit {IDLE_LOAD_LIMIT}); stop other work, or pass --allow-busy to profile anyway"
        )
    return idle


def _measure_all(board: LiveBoard, space: ConfigSpace, cifar, settings: dict, partial: Path, progress: bool):
    """Every configuration's measurement in action order, and the inference runner per kind of unit.

    Requests are run the way the deploy loop runs them: paced ``period_ms`` apart (the deploy
    loop idles between requests; back to back, this VM ran small configurations 1.4-1.9x
    faster), each one sampling the load, applying its configuration (affinity, threads, DVFS)
    and classifying the next test image. Configurations take turns in bursts of
    :data:`BURST` requests, round after round, so a machine that drifts affects them all alike;
    the first ``warmup`` requests of each are not kept. Resumes from ``partial`` (saved after
    every round)."""
    from dnn.backends import make_runner

    jobs = _config_jobs(space, range(len(space)))
    keys = [j.key for j in jobs]
    samples = _load_partial(partial, settings) or {k: {"latency": [], "power": []} for k in keys}
    runners: dict = {}
    for ui, u in enumerate(board.units):
        if u.kind not in runners and (space.unit_idx == ui).any():
            w = None if settings["weights"] == "shipped" else settings["weights"]
            runners[u.kind] = make_runner(settings["backend"], u.kind, cifar.test_x, cifar.test_y, w, settings["export"])
            if runners[u.kind].groups != space.max_groups:
                flag = "--weights" if settings["backend"] == "torch" else "--export"
                raise UsageError(
                    f"{flag}: the DNN has {runners[u.kind].groups} groups, the DNN profile the model uses {space.max_groups}"
                )
    per_config = settings["warmup"] + settings["repeats"]
    rounds = -(-per_config // BURST)
    done = len(samples[keys[0]]["latency"]) // BURST
    bar = progress_bar(rounds, "profiling", progress, "round")
    for _ in range(done):
        bar.update()  # rounds of an interrupted run, resumed
    for _ in range(done, rounds):
        _measure_round(board, runners, jobs, samples, settings["period_ms"] / 1e3)
        _write_partial(partial, settings, samples)
        bar.update()
    bar.close()
    return [_summary(samples[k], settings["warmup"], settings["repeats"]) for k in keys], runners


def _key(cfg) -> str:
    return f"{cfg.groups}/{cfg.unit}/{cfg.cores}/{cfg.freq_mhz:g}"


@dataclass(frozen=True)
class _Job:
    """One kind of profiled request: the DNN at ``groups`` on ``cores`` of ``unit`` at ``freq_mhz``
    (on ``cpus`` when given, else on the least-loaded CPUs, as deploy maps it)."""

    key: str
    unit: int
    cores: int
    freq_mhz: float
    groups: int
    cpus: tuple[int, ...] | None = None


def _config_jobs(space: ConfigSpace, indices) -> list[_Job]:
    jobs = []
    for i in indices:
        cfg = space.decode(int(i))
        jobs.append(_Job(_key(cfg), int(space.unit_idx[i]), cfg.cores, cfg.freq_mhz, cfg.groups))
    return jobs


def _measure_round(board: LiveBoard, runners: dict, jobs: list[_Job], samples: dict, period_s: float) -> None:
    """One turn of :data:`BURST` paced requests for every job (the load each request observed is
    kept beside its latency, power and CPUs, and the CPU time the loop had run since its wake when
    the inference started: the scheduler's wake-up credit counts from the wake, :func:`runtime.preemption.cpu_clock_ns`)."""
    due = time.perf_counter() + period_s  # paced from the previous round's last request too: every request wakes
    for job in jobs:
        runner = runners[board.units[job.unit].kind]
        got = samples.setdefault(job.key, {"latency": [], "power": []})
        for _ in range(BURST):
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            woke, cpu_woke = time.perf_counter(), cpu_clock_ns()
            due = max(due + period_s, woke)
            load = board.sample_load()
            board.apply(job.unit, job.cores, job.freq_mhz, board.freqs_mhz()[job.unit], cpus=job.cpus)
            runner.set_threads(job.cores)
            mark = board.energy_begin(job.unit)
            got.setdefault("awake_ms", []).append(round((cpu_clock_ns() - cpu_woke) / 1e6, 4))
            ms, _ = runner.infer(job.groups)
            _, w, estimated = board.energy_end(job.unit, mark, ms, 0.0)
            got["latency"].append(ms)
            got["power"].append(None if estimated else w)
            got.setdefault("load", []).append([round(x, 3) for x in load])


def _summary(sample: dict, warmup: int, repeats: int) -> dict:
    """Median, p90, jitter (:func:`_lognormal_cv`) and 95% confidence interval of the median latency (order statistics),
    and mean power (with a sensor), of one configuration's kept requests."""
    lat = sorted(sample["latency"][warmup : warmup + repeats])
    power = [w for w in sample["power"][warmup : warmup + repeats] if w is not None]
    n = len(lat)
    half = 0.98 * math.sqrt(n)  # rank half-width: 1.96 / 2 x sqrt(n), the binomial(n, 1/2) normal approximation
    return {
        "latency_ms": statistics.median(lat),
        "latency_p90_ms": lat[min(n - 1, round(0.9 * (n - 1)))],
        "latency_ci_ms": [lat[max(0, math.floor(n / 2 - half))], lat[min(n - 1, math.ceil(n / 2 + half) - 1)]],
        "latency_cv": _lognormal_cv(lat),
        "power_w": statistics.fmean(power) if power else None,
    }


def _lognormal_cv(sorted_ms: list[float]) -> float:
    """The CV of the log-normal jitter the model draws, from the interquartile range of the log
    latencies (sigma = IQR / 1.349): the standard deviation itself is the tail's, and one request
    descheduled for 100 ms would set the jitter of every simulated one."""
    q1, q3 = np.percentile(np.log(sorted_ms), [25, 75])
    sigma = (q3 - q1) / 1.349
    return math.sqrt(math.expm1(sigma * sigma))


def _draft_spec(units: list[LiveUnit], name: str, fs: Sysfs) -> dict:
    """The profile document before measuring: units and DVFS tables, placeholder coefficients."""
    doc_units = []
    for u in units:
        latency_us = 0.0
        path = f"/sys/devices/system/cpu/cpu{u.cpus[0]}/cpufreq/cpuinfo_transition_latency" if u.cpus else ""
        if path and fs.exists(path) and fs.read(path).isdigit():
            latency_us = int(fs.read(path)) / 1e3
        doc_units.append(
            {
                "name": u.name,
                "kind": u.kind,
                "cores": len(u.cpus) if u.kind == "cpu" else 1,
                "cpus": list(u.cpus),
                "switch_latency_us": latency_us,
                "dvfs": {"freq_mhz": [float(f) for f in u.freqs_mhz], "volt_v": [NOMINAL_VOLT] * len(u.freqs_mhz)},
                "perf": {
                    "macs_per_cycle": 1.0,
                    "serial_fraction": 0.0,
                    "overhead_mcycles": 0.0,
                    "layer_overhead_kcycles": 0.0,
                    "sync_kcycles": 0.0,
                    "mem_bw_gbps": 1.0,
                },
                # 1 W per busy core at the top clock (P = per_core V^2 f, V = 1, f in GHz)
                "power": {
                    "idle_dyn": 0.0,
                    "leak": 0.0,
                    "leak_temp_coeff": 0.0,
                    "leak_ref_c": 25.0,
                    "uncore": 0.0,
                    "per_core": round(1e3 / max(u.freqs_mhz), 6) if max(u.freqs_mhz) > 0 else 1.0,
                },
            }
        )
    return {
        "format": PLATFORM_FORMAT,
        "name": name,
        "description": f"profiled live by dynscale profile ({len(units)} unit{'s' if len(units) > 1 else ''})",
        "units": doc_units,
        "thermal": {"ambient_c": 25.0, "r_th_c_per_w": 1.0, "tau_s": 60.0, "start_c": 25.0, "trips": []},
        "interference": {"mem_slowdown": 0.0},
        "noise": {"latency_cv": 0.0, "power_cv": 0.0},
        "sources": [],
    }


def stream_bandwidth_gbps(megabytes: int = 64, repeats: int = 5) -> float:
    """Memory bandwidth one core streams at: best of ``repeats`` copies of a ``megabytes`` buffer
    (read + write bytes over time)."""
    src = np.ones(megabytes << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def _finish_profile(
    draft: dict,
    space: ConfigSpace,
    dnn,
    results: list[dict],
    board: LiveBoard,
    idle: list[float],
    period_ms: float,
    co_runners: list[dict],
    cores: list[dict],
    quantum: dict,
) -> dict:
    """Fill the draft with the measured tables and the coefficients fitted to them."""
    from hwmodels.fit import fit_perf  # SciPy: profiling needs it, the live loop beside it does not

    macs = dnn.column("macs")
    moved = dnn.column("weight_bytes") + dnn.column("activation_bytes")
    lat = np.array([r["latency_ms"] for r in results])
    power = [r["power_w"] for r in results]
    bw = stream_bandwidth_gbps()
    doc = draft
    sources = doc["sources"]
    measured_power = all(p is not None for p in power)
    t_mem = moved[space.groups - 1] / (bw * np.minimum(space.cores, 2) * 1e6)
    for ui, u in enumerate(doc["units"]):
        u["perf"].update(fit_perf(space, ui, lat, macs, t_mem))
        u["perf"]["mem_bw_gbps"] = round(bw, 3)
    sources.append(
        {
            "figure": f"dynscale profile: median batch-1 latency of every configuration, requests {period_ms:g} ms apart (measured.latency_ms)",
            "used_for": "perf (least-squares fit), measured.latency_ms",
        }
    )
    sources.append({"figure": f"dynscale profile: best single-core 64 MB copy, {bw:.2f} GB/s", "used_for": "perf.mem_bw_gbps"})
    # the interference fit evaluates the model, measured table included (the final "measured" replaces this)
    doc["measured"] = {"latency_ms": [round(float(x), 4) for x in lat], "power_w": [None] * len(lat)}
    _fit_interference(doc, co_runners, quantum)
    if not measured_power:
        sources.append(
            {
                "figure": "ASSUMED (no power sensor on this board): 1 W per busy core at the top clock, scaling with f, no idle power; energies are relative estimates",
                "used_for": "power, measured.power_is_estimate",
            }
        )
    cvs = [r["latency_cv"] for r in results]
    doc["noise"] = {"latency_cv": round(float(np.median(cvs)), 4), "power_cv": round(float(np.median(cvs)), 4)}
    sources.append(
        {
            "figure": "dynscale profile: median over configurations of the timed runs' jitter (log-normal CV from the interquartile range)",
            "used_for": "noise (power_cv assumed equal)",
        }
    )
    temp = board.temperature_c(25.0)
    doc["thermal"].update({"ambient_c": round(temp, 1), "start_c": round(temp, 1)})
    sources.append(
        {
            "figure": f"ASSUMED: thermal RC not profiled (die {'read from ' + board.temp_path if board.temp_path else 'not readable'}), no trip points",
            "used_for": "thermal",
        }
    )
    doc["measured"] = {
        "latency_ms": [round(float(x), 4) for x in lat],
        "latency_p90_ms": [round(float(r["latency_p90_ms"]), 4) for r in results],
        "latency_ci_ms": [[round(float(x), 4) for x in r["latency_ci_ms"]] for r in results],
        "period_ms": period_ms,
        "power_w": [round(float(p), 4) for p in power] if measured_power else [None] * len(power),
        "power_is_estimate": not measured_power,
        "idle_load": [round(x, 3) for x in idle],
        "co_runners": co_runners,
        "preemption": quantum,
        "cores": cores,
        "board": board.describe(),
    }
    doc = json.loads(json.dumps(doc, default=float))  # plain YAML: numpy scalars become floats
    parse_platform(doc, "profile")  # what is written must load
    return doc


#: the ``interference`` coefficients fitted beside the load generator (a profile's ``sources`` say so)
FITTED_INTERFERENCE = (
    "interference.mem_slowdown, interference.barrier_slowdown, interference.wake_credit_ms, interference.thread_wait_ms, "
    "interference.preempt_share"
)


def co_runner_points(doc: dict, co_runners: list[dict]) -> list[tuple]:
    """The interference fit's points (:func:`hwmodels.fit.fit_interference`) from ``measured.co_runners``:
    (configuration, observed load, memory intensity per unit, mean latency, time awake; 0 where a
    profile from before ``awake_ms`` has none).

    :param doc: the profile document (its ``units``)
    """
    points = []
    for cond in co_runners:
        mem = [cond["mem_intensity"] if u["name"] == cond["unit"] else 0.0 for u in doc["units"]]
        awake = cond.get("awake_ms", [0.0] * len(cond["configurations"]))
        for i, load, ms, up in zip(cond["configurations"], cond["observed_load"], cond["latency_mean_ms"], awake):
            points.append((i, load, mem, ms, up))
    return points


def _fit_interference(doc: dict, co_runners: list[dict], quantum: dict) -> None:
    """Set ``interference`` from the co-runner measurements and the preemption probe (or say why
    it is fair share only). The model's latency is a mean (its wait for co-runners is the mean of
    whole quanta), so it is fitted to the mean latency beside each co-runner."""
    from dnn.profile import load_dnn_profile
    from hwmodels.fit import fit_interference

    points = co_runner_points(doc, co_runners)
    if not points:
        doc["interference"] = {
            "mem_slowdown": 0.0,
            "barrier_slowdown": 0.0,
            "wake_credit_ms": 0.0,
            "thread_wait_ms": 0.0,
            "preempt_share": 1.0,
            "quantum_ms": 0.0,
        }
        doc["sources"].append(
            {
                "figure": "ASSUMED: no CPU unit with two or more CPUs to run co-runners beside the DNN; plain fair share, no contention",
                "used_for": "interference",
            }
        )
        return
    fit = fit_interference(doc, load_dnn_profile(), points)
    doc["interference"] = {
        **{k: round(v, 4) for k, v in fit.items()},
        **{k: quantum[k] for k in ("quantum_ms", "tick_hz", "tick_offset_ms")},
    }
    loads = "; ".join(sorted({f"{c['threads']} thread(s) of memory intensity {c['mem_intensity']:g}" for c in co_runners}))
    doc["sources"].append(
        {
            "figure": f"dynscale profile: mean latency of {len(points)} (configuration, load) points beside the load "
            f"generator ({loads}; measured.co_runners), robust least squares of log(model / measured)",
            "used_for": FITTED_INTERFERENCE,
        }
    )
    doc["sources"].append(
        {
            "figure": f"dynscale profile: a thread spinning beside one co-runner on cpu {quantum['cpu']} for "
            f"{quantum['seconds']:g} s was preempted {quantum['preemptions']} times, median gap {quantum['quantum_ms']:.2f} ms "
            f"(measured.preemption; 0: fewer than {MIN_PREEMPTIONS} gaps, a fluid share); "
            + (
                f"{quantum['aligned']:.0%} of the gaps ended within an eighth of a tick of one phase of a {quantum['tick_hz']} Hz "
                f"grid (in boot {quantum['boot_id']})"
                if quantum["tick_hz"]
                else f"no tick grid (at most {quantum['aligned']:.0%} of the gaps at one phase of a kernel HZ, under "
                f"{MIN_ALIGNED:.0%}, or skew_tick=1)"
            ),
            "used_for": "interference.quantum_ms, interference.tick_hz, interference.tick_offset_ms",
        }
    )


def _cpu_units(board: LiveBoard) -> list[int]:
    """CPU units with two or more CPUs: where co-runners and the DNN can share a unit and
    identical cores can be compared."""
    return [i for i, u in enumerate(board.units) if u.kind == "cpu" and len(u.cpus) >= 2]


def co_runner_loads(cpus: int) -> list[tuple[int, float]]:
    """The co-runner conditions profiled on a unit of ``cpus`` CPUs, as (threads, memory intensity):
    one compute-bound thread (it takes a core the DNN need not use), one per CPU (every core is
    shared), one memory-streaming thread."""
    return [(1, 0.0), (cpus, 0.0), (1, 1.0)]


def _measure_quantum(board: LiveBoard) -> dict:
    """The scheduler quantum a co-runner takes and the tick grid (:func:`runtime.preemption.measure_preemption`),
    probed on the last CPU of the first CPU unit that has co-runners profiled (0 where none has)."""
    from runtime.preemption import PROBE_SECONDS, Preemption, measure_preemption

    units = _cpu_units(board)
    if not units:
        return {**Preemption(0.0, 0)._asdict(), "cpu": None, "seconds": 0.0}
    u = board.units[units[0]]
    p = measure_preemption(u.name, u.cpus[-1], PROBE_SECONDS)
    rounded = p._replace(
        quantum_ms=round(p.quantum_ms, 4), tick_offset_ms=round(p.tick_offset_ms, 4), aligned=round(p.aligned, 3)
    )
    return {**rounded._asdict(), "cpu": u.cpus[-1], "seconds": PROBE_SECONDS}


def _capped_mean(latency_ms: list[float], quantum_ms: float) -> float:
    """Mean latency with each request capped at twice the median plus two quanta: a request that
    waited one or two quanta for a co-runner counts whole, one the host descheduled for 100 ms does
    not set the mean."""
    cap = 2.0 * statistics.median(latency_ms) + 2.0 * quantum_ms
    return statistics.fmean(min(x, cap) for x in latency_ms)


def _measure_co_runners(
    board: LiveBoard, runners: dict, space: ConfigSpace, settings: dict, progress: bool, quantum_ms: float
) -> list[dict]:
    """Each configuration of a multi-CPU unit beside the project's load generator in each of
    :func:`co_runner_loads` (the way deploy meets them: paced, in turns, the least-loaded CPUs):
    the points :func:`hwmodels.fit.fit_interference` fits the interference coefficients to.

    :param quantum_ms: the preemption quantum (caps the mean: :func:`_capped_mean`)
    :return: per condition, the unit, its load, the mean load the board observed, and the
        configurations' median and mean latencies
    """
    per_config = BURST * -(-max(8, settings["repeats"] // 4) // BURST)
    plan = [(ui, t, m) for ui in _cpu_units(board) for t, m in co_runner_loads(len(board.units[ui].cpus))]

    def rounds(ui: int, threads: int) -> int:
        # where every core is held, a run waits a whole quantum or none: its mean needs more runs
        return 1 + per_config // BURST * (HELD_FACTOR if threads >= len(board.units[ui].cpus) else 1)

    bar = progress_bar(sum(rounds(ui, t) for ui, t, _ in plan), "co-runners", progress, "round")
    conditions = []
    for ui, threads, mem in plan:
        u = board.units[ui]
        indices = np.flatnonzero(space.unit_idx == ui)
        jobs = _config_jobs(space, indices)
        samples: dict = {}
        with LoadGenerator(LoadSchedule((LoadStep(0.0, u.name, threads, mem),)), {u.name: u.cpus}):
            time.sleep(0.5)  # the load monitor's window sees the workers
            for _ in range(rounds(ui, threads)):  # the first round is a warm-up beside the new load
                _measure_round(board, runners, jobs, samples, settings["period_ms"] / 1e3)
                bar.update()
        kept = [samples[j.key]["latency"][BURST:] for j in jobs]
        loads = [np.mean(samples[j.key]["load"][BURST:], axis=0) for j in jobs]
        awake = [float(np.mean(samples[j.key]["awake_ms"][BURST:])) for j in jobs]
        conditions.append(
            {
                "unit": u.name,
                "threads": threads,
                "mem_intensity": mem,
                "configurations": [int(i) for i in indices],
                "observed_load": [[round(float(x), 3) for x in ld] for ld in loads],
                "latency_ms": [round(statistics.median(x), 4) for x in kept],
                "latency_mean_ms": [round(_capped_mean(x, quantum_ms), 4) for x in kept],
                "awake_ms": [round(x, 4) for x in awake],
            }
        )
    bar.close()
    return conditions


def _measure_core_agreement(board: LiveBoard, runners: dict, space: ConfigSpace, settings: dict, progress: bool) -> list[dict]:
    """Every group count on one core, pinned to each CPU of a multi-CPU unit in turn (paced,
    interleaved, ``warmup`` + :data:`CORE_CHECK_FACTOR` x ``repeats`` requests each): identical cores must agree within
    :data:`IDENTICAL_CORES_TOLERANCE` for the table (measured on whichever core deploy picks) to hold.

    :return: per unit, each CPU's median latency per group count and the worst relative spread
    """
    g = int(space.groups.max())
    units = _cpu_units(board)
    w, n = settings["warmup"], CORE_CHECK_FACTOR * settings["repeats"]
    rounds = -(-(w + n) // BURST)
    bar = progress_bar(rounds * len(units), "cores", progress, "round")
    checks = []
    for ui in units:
        u = board.units[ui]
        f = float(max(u.freqs_mhz))
        jobs = [_Job(f"cpu{c}/{k}", ui, 1, f, k, (c,)) for k in range(1, g + 1) for c in u.cpus]
        samples: dict = {}
        for _ in range(rounds):
            _measure_round(board, runners, jobs, samples, settings["period_ms"] / 1e3)
            bar.update()
        med = [
            [round(statistics.median(samples[f"cpu{c}/{k}"]["latency"][w : w + n]), 4) for k in range(1, g + 1)] for c in u.cpus
        ]
        spread = [max(col) / min(col) - 1.0 for col in zip(*med)]
        checks.append({"unit": u.name, "cpus": list(u.cpus), "latency_ms": med, "spread": [round(x, 4) for x in spread]})
    bar.close()
    return checks


def _load_partial(path: Path, settings: dict) -> dict:
    """The samples of the rounds done by an interrupted run with the same settings (else ``{}``)."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return doc.get("samples", {}) if doc.get("settings") == settings else {}


def _write_partial(path: Path, settings: dict, samples: dict) -> None:
    with atomic_write(path) as f:
        json.dump({"settings": settings, "samples": samples}, f)
