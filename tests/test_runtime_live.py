"""The live runtime: load monitor, load generator, live board, profiler and deploy loop.

Sysfs-dependent parts run against fake trees; the profiler and the deploy loop run for real on
this machine (one CPU, the tiny CIFAR fixture, a few seconds), so CI exercises them end to end.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import STAT_AFTER, STAT_BEFORE, fake_one_cpu_board, fake_two_cpu_board, xu3_with_stat

from runtime.load import LoadMonitor
from runtime.sysfs import LiveError, Sysfs

REPO = Path(__file__).resolve().parents[1]


def _clock(monkeypatch: pytest.MonkeyPatch, wall: list[float], own: list[float]) -> None:
    from runtime import load as live

    monkeypatch.setattr(live.time, "perf_counter", lambda: wall[0])
    monkeypatch.setattr(live.time, "process_time", lambda: own[0])


def _monitor_after_one_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_cpu_s: float) -> LoadMonitor:
    """A monitor of cpu0 and cpu1 (this process on cpu0) one second and ``own_cpu_s`` of this
    process's CPU time after it started: /proc/stat went from STAT_BEFORE to STAT_AFTER."""
    (tmp_path / "proc").mkdir()
    stat = tmp_path / "proc/stat"
    stat.write_text(STAT_BEFORE)
    wall, own = [10.0], [5.0]
    _clock(monkeypatch, wall, own)
    mon = LoadMonitor(Sysfs(tmp_path), [(0,), (1,)], window_s=0.5)
    mon.ran_on((0,))
    stat.write_text(STAT_AFTER)
    wall[0], own[0] = 11.0, 5.0 + own_cpu_s
    return mon


def test_load_monitor_subtracts_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mon = _monitor_after_one_second(tmp_path, monkeypatch, 0.2)
    # cpu1: 50 of 120 ticks busy, none ours (see test_hwmodels_live); cpu0: 100 of 100, 0.2 ours: a
    # co-runner that got 0.8 of a CPU with no idle time left wanted all of it: one busy thread
    assert mon.sample() == pytest.approx([1.0, 50 / 120])
    assert mon.least_loaded((0, 1), 1) == (1,)


def test_load_monitor_does_not_count_this_process_alone_as_a_co_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mon = _monitor_after_one_second(tmp_path, monkeypatch, 0.95)
    # cpu0 saturated by this process: the 0.05 left is background, not a co-runner's demand
    assert mon.sample()[0] == pytest.approx(0.05)


def test_load_monitor_window_drops_old_intervals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proc").mkdir()
    stat = tmp_path / "proc/stat"
    wall, own = [0.0], [0.0]
    _clock(monkeypatch, wall, own)
    busy = 0

    def write(busy_ticks: int, total: int) -> None:
        stat.write_text(f"cpu0 {busy_ticks} 0 0 {total - busy_ticks} 0 0 0 0 0 0\n")

    write(0, 0)
    mon = LoadMonitor(Sysfs(tmp_path), [(0,)], window_s=0.3)
    total = 0
    for step in range(10):  # 0.1 s per sample: fully busy for 5 samples, then idle
        wall[0] += 0.1
        total += 10
        busy += 10 if step < 5 else 0
        write(busy, total)
        load = mon.sample()[0]
    assert load == pytest.approx(0.0)  # the busy intervals left the 0.3 s window
    assert len(mon._intervals) == 3


# ---------------------------------------------------------------- load generator


def _worker_pids(parent: int) -> list[int]:
    """Live load workers started by ``parent`` (their command line names it)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
                state = (d / "stat").read_text().split(") ", 1)[1][0]
            except OSError:
                continue
            if b"runtime.load_worker" in argv and str(parent).encode() in argv and state != "Z":
                out.append(int(d.name))
    return out


def test_schedule_errors_name_file_row_and_column(tmp_path: Path) -> None:
    from runtime.loadgen import load_schedule

    units = {"cpu": (0,), "gpu": ()}
    cases = {
        "t_s,unit,threads\n": "header must be t_s,unit,threads,mem_intensity",
        "t_s,unit,threads,mem_intensity\n0,big,1,0\n": "row 2, column 'unit': unknown unit 'big'; valid: cpu, gpu",
        "t_s,unit,threads,mem_intensity\n0,cpu,1.5,0\n": "row 2, column 'threads': '1.5' is not a whole number",
        "t_s,unit,threads,mem_intensity\n0,cpu,1,2\n": "row 2, column 'mem_intensity': '2' is not in",
        "t_s,unit,threads,mem_intensity\n5,cpu,1,0\n1,cpu,0,0\n": "row 3, column 't_s': 1 comes before",
        "t_s,unit,threads,mem_intensity\n0,gpu,1,0\n": "gpu has no CPUs",
    }
    for text, msg in cases.items():
        f = tmp_path / "s.csv"
        f.write_text(text)
        with pytest.raises(LiveError, match=msg.replace("(", r"\(")) as e:
            load_schedule(f, units)
        assert str(f) in str(e.value)


def test_a_schedule_repeats_when_asked(tmp_path: Path) -> None:
    from runtime.loadgen import load_schedule

    f = tmp_path / "s.csv"
    f.write_text("t_s,unit,threads,mem_intensity\n0,cpu,0,0\n20,cpu,2,0.3\n")
    held = load_schedule(f, {"cpu": (0, 1)})
    cycle = load_schedule(f, {"cpu": (0, 1)}, repeat_s=40.0)
    assert held.at(50.0) == {"cpu": (2, 0.3)} and cycle.at(50.0) == {"cpu": (0, 0.0)} and cycle.at(65.0) == {"cpu": (2, 0.3)}
    with pytest.raises(LiveError, match=r"--load-repeat-s 20: must come after the last row of .*s.csv \(t_s 20\)"):
        load_schedule(f, {"cpu": (0, 1)}, repeat_s=20.0)


def test_load_generator_pins_workers_and_stops_them(tmp_path: Path) -> None:
    from runtime.loadgen import LoadGenerator, load_schedule

    cpus = tuple(sorted(os.sched_getaffinity(0)))
    f = tmp_path / "s.csv"
    f.write_text("t_s,unit,threads,mem_intensity\n0,cpu,1,0.5\n0.3,cpu,0,0\n")
    gen = LoadGenerator(load_schedule(f, {"cpu": cpus}), {"cpu": cpus})
    with gen:
        (pid,) = gen.pids()
        assert os.sched_getaffinity(pid) == {cpus[-1]}  # the highest-numbered CPU first
        assert gen.running() == {"cpu": (1, 0.5)}
        time.sleep(0.4)
        assert gen.tick() == {"cpu": (0, 0.0)} and gen.pids() == [] and _worker_pids(os.getpid()) == []
        f.write_text("t_s,unit,threads,mem_intensity\n0,cpu,2,0\n")
    gen = LoadGenerator(load_schedule(f, {"cpu": cpus}), {"cpu": cpus})
    gen.start()
    assert len(_worker_pids(os.getpid())) == 2
    assert gen.restore() == ["load on cpu: 2 worker(s) stopped"] and _worker_pids(os.getpid()) == []


# ---------------------------------------------------------------- live board on fake trees


def test_live_board_maps_sets_dvfs_meters_and_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwmodels.profile import load_platform
    from runtime import board as board_mod
    from runtime.board import LiveBoard, units_of_spec

    root = xu3_with_stat(tmp_path)
    pinned = []
    monkeypatch.setattr(board_mod, "set_affinity", lambda cpus: pinned.append(tuple(cpus)))
    spec = load_platform("xu3")
    b = LiveBoard(units_of_spec(spec, Sysfs(root)), Sysfs(root), allow_dvfs=True)
    assert [u.name for u in b.units] == ["a15", "a7"] and b.units[0].cpus == (4, 5, 6, 7)
    stat = root / "proc/stat"
    stat.write_text(stat.read_text().replace("cpu4 500 0 0 1000", "cpu4 600 0 0 1000"))  # cpu4 stays busy
    b.sample_load()
    cpus, f = b.apply(0, 2, 1200.0, 2000.0)
    assert cpus == (5, 6) and pinned == [(5, 6)] and f == 1200.0  # the busy cpu4 is avoided
    a15 = root / "sys/devices/system/cpu/cpu4/cpufreq"
    assert (a15 / "scaling_governor").read_text().strip() == "userspace"
    assert (a15 / "scaling_setspeed").read_text().strip() == "1200000"
    assert b.temperature_c(25.0) == 52.0 and b.freqs_mhz() == [2000.0, 1400.0]
    assert b.energy_source(0).startswith("rail a15")
    energy, power, estimated = b.energy_end(0, b.energy_begin(0), 10.0, estimate_w=99.0)
    assert (energy, power, estimated) == (pytest.approx(12.34), pytest.approx(1.234), False)
    b.restore()
    assert (a15 / "scaling_governor").read_text().strip() == "performance"
    # without --allow-dvfs the frequency is left to the governor, and said so
    b2 = LiveBoard(units_of_spec(spec, Sysfs(root)), Sysfs(root))
    assert b2.apply(0, 1, 1200.0, 2000.0)[1] == 2000.0 and b2.dvfs[0].startswith("DVFS writes are off")
    assert (a15 / "scaling_governor").read_text().strip() == "performance"


def test_units_of_spec_refuses_cpus_that_are_not_online(tmp_path: Path) -> None:
    from hwmodels.profile import load_platform
    from runtime.board import units_of_spec

    (tmp_path / "sys/devices/system/cpu").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/online").write_text("0-1\n")
    with pytest.raises(LiveError, match=r"unit a15 needs cpus \[4, 5, 6, 7\], but \[4, 5, 6, 7\] are not online here"):
        units_of_spec(load_platform("xu3"), Sysfs(tmp_path))


# ---------------------------------------------------------------- profiler and deploy loop on this machine


def test_profile_measures_every_configuration_and_restores(profiled: tuple[Path, Path, Path], capsys) -> None:
    from envs.dyndnn_env import DynDNNEnv
    from hwmodels.profile import load_platform

    root, board, _ = profiled
    doc = yaml.safe_load(board.read_text())
    spec = load_platform(board)
    assert [u.name for u in spec.units] == ["cpu0"] and list(spec.units[0].freqs_mhz) == [1000.0, 2000.0]
    m = spec.measured
    assert len(m.latency_ms) == 8 and all(x > 0 for x in m.latency_ms)  # 4 groups x 1 core x 2 frequencies
    assert m.power_is_estimate and doc["measured"]["power_w"] == [None] * 8
    assert any(s["figure"].startswith("ASSUMED (no power sensor") for s in doc["sources"])
    # one CPU: no co-runner can share the unit with the DNN, and the profile says so
    assert doc["measured"]["co_runners"] == [] and doc["measured"]["cores"] == []
    assert doc["interference"] == {
        "mem_slowdown": 0.0,
        "barrier_slowdown": 0.0,
        "wake_credit_ms": 0.0,
        "thread_wait_ms": 0.0,
        "preempt_share": 1.0,
        "quantum_ms": 0.0,
    }
    assert any(s["used_for"] == "interference" and s["figure"].startswith("ASSUMED") for s in doc["sources"])
    assert (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() == "ondemand"
    assert not (board.parent / "board.yaml.partial.json").exists()
    env = DynDNNEnv(platform=str(board), scenario="tiny", episode_length=5)
    env.reset(seed=0)
    env.step(0)
    capsys.readouterr()
    from dynscale_cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a profile without published points: no empty-mean warnings
        assert main(["platform", "show", str(board)]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "calibration: none (the profile has no published points" in out


def test_profile_resumes_where_it_stopped(tmp_path: Path, batches_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime import profiler

    root = fake_one_cpu_board(tmp_path / "root")
    real = profiler._measure_round
    calls = []

    def flaky(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(profiler, "_measure_round", flaky)
    out = tmp_path / "board.yaml"
    kw = {"repeats": 12, "warmup": 0, "period_ms": 1.0, "allow_dvfs": True, "fs": Sysfs(root), "progress": False}
    with pytest.raises(KeyboardInterrupt):
        profiler.profile_board(out, batches_dir, **kw)
    saved = json.loads((tmp_path / "board.yaml.partial.json").read_text())["samples"]
    assert {len(v["latency"]) for v in saved.values()} == {2 * profiler.BURST} and not out.exists()  # two whole rounds kept
    monkeypatch.setattr(profiler, "_measure_round", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    profiler.profile_board(out, batches_dir, **kw)
    assert len(calls) == 3 and out.exists()  # 2 rounds before the interruption + the 1 left


def test_profile_paces_and_interleaves_requests_as_deploy_runs_them(
    tmp_path: Path, batches_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dnn.runner import InferenceRunner
    from runtime import profiler

    root = fake_one_cpu_board(tmp_path / "root")  # 8 configurations: k = 1..4 x two frequencies
    seen = []
    real_infer = InferenceRunner.infer
    monkeypatch.setattr(InferenceRunner, "infer", lambda self, k: (seen.append((time.perf_counter(), k)), real_infer(self, k))[1])
    kw = {"repeats": 8, "warmup": 0, "period_ms": 20.0, "allow_dvfs": True, "fs": Sysfs(root), "progress": False}
    doc = profiler.profile_board(tmp_path / "board.yaml", batches_dir, **kw)
    rounds = seen[: 2 * 8 * profiler.BURST]  # the profiled requests (the interference check runs after them)
    assert np.median(np.diff([t for t, _ in rounds])) >= 0.019  # paced like deploy, not back to back
    # configurations take turns of BURST requests, round after round
    one_round = [k for k in (1, 2, 3, 4) for _ in range(2 * profiler.BURST)]
    assert [k for _, k in rounds] == one_round * 2
    m = doc["measured"]
    assert m["period_ms"] == 20.0 and all(lo <= med <= hi for (lo, hi), med in zip(m["latency_ci_ms"], m["latency_ms"]))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to run co-runners beside the DNN")
def test_profile_fits_interference_beside_the_load_generator_and_checks_identical_cores(
    tmp_path: Path, batches_dir: Path, capsys
) -> None:
    from dynscale_cli import main
    from runtime import profiler

    root = fake_two_cpu_board(tmp_path / "root")
    out = tmp_path / "board.yaml"
    # --allow-busy: the fits and the probe are the subject here, and a CI host's other tenants must not fail it
    assert main(["profile", "--out", str(out), "--data", str(batches_dir), "--repeats", "3", "--warmup", "0",
                 "--period-ms", "1", "--allow-busy", "--root", str(root), "--quiet"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    doc = yaml.safe_load(out.read_text())
    m = doc["measured"]
    conditions = [(c["threads"], c["mem_intensity"]) for c in m["co_runners"]]
    assert conditions == profiler.co_runner_loads(2) == [(1, 0.0), (2, 0.0), (1, 1.0)]
    for c in m["co_runners"]:
        assert c["configurations"] == list(range(8)) and all(x > 0 for x in c["latency_ms"])
        assert len(c["awake_ms"]) == 8 and all(x > 0 for x in c["awake_ms"])  # the credit spent before each inference
    # two compute-bound co-runners are seen as about two busy threads (their demand), not the share they got
    two = m["co_runners"][1]["observed_load"]
    assert np.median([x[0] for x in two]) > 1.5
    it = doc["interference"]
    assert all(it[k] >= 0 for k in ("mem_slowdown", "barrier_slowdown", "wake_credit_ms", "thread_wait_ms"))
    assert any(s["used_for"] == profiler.FITTED_INTERFERENCE for s in doc["sources"])
    # the kernel preempts in ticks (1-10 ms on any HZ): the probe saw them, the profile keeps the median
    assert 0.5 <= it["quantum_ms"] <= 20 and m["preemption"]["preemptions"] >= 10
    assert it["quantum_ms"] == m["preemption"]["quantum_ms"]
    from hwmodels.fit import MIN_PREEMPT_SHARE

    assert MIN_PREEMPT_SHARE <= it["preempt_share"] <= 1.0  # the share of its fair share a run waits, fitted
    # Linux keeps its ticks on a grid of the monotonic clock: the probe finds its HZ (a CONFIG_HZ) and phase
    from runtime.preemption import KERNEL_HZ, boot_id

    assert it["tick_hz"] == 0 or m["preemption"]["boot_id"] == boot_id()
    assert it["tick_hz"] == m["preemption"]["tick_hz"] and (it["tick_hz"] == 0 or it["tick_hz"] in KERNEL_HZ)
    assert it["tick_hz"] == 0 or 0 <= it["tick_offset_ms"] < 1e3 / it["tick_hz"]
    assert any(
        s["used_for"] == "interference.quantum_ms, interference.tick_hz, interference.tick_offset_ms" for s in doc["sources"]
    )
    for c in m["co_runners"]:  # the fit's points: mean latency, at least the median's neighbourhood
        assert all(mean > 0.5 * med for mean, med in zip(c["latency_mean_ms"], c["latency_ms"]))
    (check,) = m["cores"]
    assert check["cpus"] == [0, 1] and len(check["latency_ms"]) == 2 and len(check["spread"]) == 4
    assert "identical cores of cpu" in text and "interference fitted beside the load generator" in text
    assert "scheduler ticks: " in text
    assert _worker_pids(os.getpid()) == []  # every co-runner stopped


@pytest.mark.parametrize("controller", ["greedy", "model-predictive"])
def test_deploy_runs_live_and_logs_every_request(
    controller: str, profiled: tuple[Path, Path, Path], batches_dir: Path, capsys
) -> None:
    from dynscale_cli import main

    root, board, trace = profiled
    log = board.parent / "run.jsonl"
    from runtime.preemption import boot_id

    # a profile that found the kernel's ticks on a 250 Hz grid, in this boot (model-predictive) or another
    doc = yaml.safe_load(board.read_text())
    doc["interference"].update(tick_hz=250, tick_offset_ms=0.03)
    doc["measured"]["preemption"] = {"boot_id": boot_id() if controller == "model-predictive" else "another-boot"}
    doc["interference"]["wake_credit_ms"] = 1.0
    if controller == "greedy":  # a profile from before awake_ms: its credit was fitted at the inference's start
        doc["measured"]["co_runners"] = [{"unit": "cpu0", "threads": 1, "mem_intensity": 0.0}]
    board = board.parent / f"board-ticks-{controller}.yaml"
    board.write_text(yaml.safe_dump(doc))
    rc = main(["deploy", "--controller", controller, "--platform", str(board), "--budgets", str(trace), "--duration", "1.5",
               "--data", str(batches_dir), "--log", str(log), "--root", str(root), "--json"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert ("probed in another boot" in out.err) == (controller == "greedy")
    assert ("its wake-up credit was fitted at the inference's start" in out.err) == (controller == "greedy")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    m = report["controllers"][controller]
    assert m["decision_us"] > 0
    assert report["requests"] == len(lines) >= 3
    assert {"latency_ms", "energy_mj", "overhead_ms", "load", "cpus", "deadline_met", "correct"} <= set(lines[0])
    assert m["deadline_miss_rate"] == pytest.approx(1 - sum(r["deadline_met"] for r in lines) / len(lines))
    assert m["energy_is_estimate"] and 0 < m["overhead_ms_median"] < 50
    assert all(r["cpus"] == [0] for r in lines)
    # wall-clock stamps (to line a log up with an external stress tool's phases) rise with the requests
    stamps = [r["unix_s"] for r in lines]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 600
    # every request logs the model's prediction for its configuration; the report's error is read off them
    assert all(r["predicted_latency_ms"] > 0 and r["predicted_energy_mj"] > 0 and r["slowdown"] > 0 for r in lines)
    assert lines[0]["slowdown"] == 1.0  # nothing measured yet: the nominal model
    # the CPU time the loop ran since its wake when each inference started (observe, decide, apply)
    assert all(0 < r["awake_ms"] < 50.0 for r in lines)
    if controller == "model-predictive":  # how far into its tick each inference started
        assert all(0 <= r["tick_phase_ms"] < 4.0 for r in lines) and len({r["tick_phase_ms"] for r in lines}) > 1
        # and how far into one the loop woke, which the controller's request carried: before the inference
        assert all(0 <= r["wake_tick_phase_ms"] < 4.0 for r in lines)
    else:  # the grid was seen in another boot: its phase may not hold, so none is logged
        assert all("tick_phase_ms" not in r and "wake_tick_phase_ms" not in r for r in lines)
    mape = sum(abs(r["latency_ms"] - r["predicted_latency_ms"]) / r["latency_ms"] for r in lines) / len(lines)
    assert m["latency_mape"] == pytest.approx(mape, rel=1e-3) and m["energy_mape"] is None  # energy is the model's own
    assert m["by_load_threads"] == {
        "0": {
            "requests": len(lines),
            "deadline_miss_rate": m["deadline_miss_rate"],
            "mean_accuracy": m["mean_accuracy"],
            "latency_mape": pytest.approx(m["latency_mape"]),
        }
    }
    # the same decision fields as in simulation; no ceiling live
    assert report["objective"] == "accuracy" and report["infeasible_rate"] is None
    assert sum(m["group_share"].values()) == pytest.approx(1) and list(m["unit_share"].values()) == [1.0]
    assert m["group_share"] == {str(k): sum(r["groups"] == k for r in lines) / len(lines) for k in range(1, 5)}


def test_time_awake_is_time_run_and_reaches_the_next_request(
    profiled: tuple[Path, Path, Path], batches_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's ``awake_ms`` is the CPU time the loop ran since its wake, not the time it
    waited (a wait behind a co-runner ends with a fresh slice): an apply that blocks 30 ms shows
    in the overhead, not in the time awake. Each request hands its time awake to the next
    request's controller (0 for the first), as the env does."""
    from runtime.session import LiveSession

    root, board, trace = profiled
    session = LiveSession("greedy", str(board), trace, data=batches_dir, fs=Sysfs(str(root)))
    apply = session.board.apply
    monkeypatch.setattr(session.board, "apply", lambda *a, **k: (time.sleep(0.03), apply(*a, **k))[1])
    act, seen = session.controller.act, []
    monkeypatch.setattr(session.controller, "act", lambda request, mask: (seen.append(request.awake_ms), act(request, mask))[1])
    with session:
        session.start()
        records = [session.step() for _ in range(4)]
    assert all(r["overhead_ms"] >= 30.0 and 0 < r["awake_ms"] < 15.0 for r in records)
    assert seen[0] == 0.0 and seen[1:] == pytest.approx([r["awake_ms"] for r in records[:-1]], abs=1e-4)


def test_deploy_refuses_what_it_cannot_run(profiled: tuple[Path, Path, Path], capsys) -> None:
    from dynscale_cli import main

    root, board, trace = profiled
    base = [
        "deploy",
        "--platform",
        str(board),
        "--budgets",
        str(trace),
        "--log",
        str(board.parent / "x.jsonl"),
        "--root",
        str(root),
    ]
    assert main([*base, "--controller", "oracle"]) == 2
    assert "controller 'oracle' needs the simulated env's true model" in capsys.readouterr().err
    assert main([*base, "--controller", "nothing-here"]) == 2
    assert (
        "neither a controller (model-predictive, greedy, random, fixed-max-accuracy, fixed-min-energy) nor a policy"
        in capsys.readouterr().err
    )
    assert main([*base, "--controller", "greedy", "--duration", "0"]) == 2
    assert main([*base, "--controller", "greedy", "--load-repeat-s", "160"]) == 2
    assert "--load-repeat-s repeats a --load schedule; give --load SCHEDULE.csv" in capsys.readouterr().err
    assert main(["compare", "--live", "--platform", str(board)]) == 2
    assert "--live needs --budgets" in capsys.readouterr().err
    assert main(["profile", "--out", str(board.parent), "--data", str(board), "--root", str(root)]) == 2
    assert f"--out {board.parent}: is a directory" in capsys.readouterr().err


def test_deploy_honours_duration_within_one_period(profiled: tuple[Path, Path, Path], tmp_path: Path, capsys) -> None:
    """A trace whose requests are a minute apart still stops at --duration: the wait is capped."""
    from dynscale_cli import main

    root, board, trace = profiled
    slow = tmp_path / "slow.csv"
    rows = trace.read_text().splitlines()
    slow.write_text("\n".join([rows[0], *(r.replace(",500.0,", ",60000.0,") for r in rows[1:4])]) + "\n")
    log = tmp_path / "slow.jsonl"
    t0 = time.monotonic()
    assert main(["deploy", "--controller", "greedy", "--platform", str(board), "--budgets", str(slow), "--duration", "0.5",
                 "--log", str(log), "--root", str(root), "--quiet"]) == 0  # fmt: skip
    assert time.monotonic() - t0 < 10
    assert len(log.read_text().splitlines()) == 1


def test_sigint_leaves_no_worker_and_no_changed_governor(profiled: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, board, trace = profiled
    sched = tmp_path / "load.csv"
    sched.write_text("t_s,unit,threads,mem_intensity\n0,cpu0,2,0.5\n")
    log = tmp_path / "run.jsonl"
    gov = root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    cmd = [sys.executable, "-m", "dynscale_cli", "deploy", "--controller", "random", "--platform", str(board),
           "--budgets", str(trace), "--load", str(sched), "--duration", "60", "--allow-dvfs", "--log", str(log),
           "--root", str(root), "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (
        log.exists() and len(log.read_text().splitlines()) >= 5 and gov.read_text().strip() == "userspace"
    ):
        time.sleep(0.05)
    assert gov.read_text().strip() == "userspace", proc.stderr.read().decode() if proc.poll() is not None else ""
    assert len(_worker_pids(proc.pid)) == 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    err = proc.stderr.read().decode().strip().splitlines()
    assert err[-1].startswith("dynscale: interrupted (SIGINT); deploy stopped after ") and str(log) in err[-1], err
    time.sleep(0.2)
    assert _worker_pids(proc.pid) == []
    assert gov.read_text().strip() == "ondemand"
    for line in log.read_text().splitlines():  # every line written is whole
        json.loads(line)


def test_nvml_says_why_it_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime import sensors as live

    def no_library(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(live.ctypes, "CDLL", no_library)
    nvml = live.Nvml()
    assert not nvml.available and nvml.why_not == "libnvidia-ml.so.1 not found (no NVIDIA driver)"
    with pytest.raises(LiveError, match="nvml: libnvidia-ml.so.1 not found"):
        nvml.power_w()


def test_cpu_clusters_split_big_little_by_capacity(tmp_path: Path) -> None:
    from runtime.topology import cpu_clusters

    for cpu in range(8):
        d = tmp_path / f"sys/devices/system/cpu/cpu{cpu}"
        (d / "topology").mkdir(parents=True)
        (d / "topology/physical_package_id").write_text("0\n")
        (d / "topology/cluster_id").write_text("65535\n")  # unknown: the capacity decides
        (d / "cpu_capacity").write_text("1024\n" if cpu >= 4 else "446\n")
    (tmp_path / "sys/devices/system/cpu/online").write_text("0-7\n")
    assert cpu_clusters(Sysfs(tmp_path)) == [(0, 1, 2, 3), (4, 5, 6, 7)]


def test_compare_live_takes_turns_on_the_same_requests(profiled: tuple[Path, Path, Path], batches_dir: Path, capsys) -> None:
    from dynscale_cli import main

    root, board, tiny = profiled
    logs = board.parent / "live"
    rows = list(csv.DictReader(tiny.open()))
    trace = tiny.with_name("trace-100ms.csv")  # the requests 100 ms apart: every one is paced, the first of a turn too
    with trace.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "period_ms": "100"} for r in rows)
    rc = main(["compare", "--live", "--platform", str(board), "--baselines", "greedy", "model-predictive", "--budgets", str(trace),
               "--block", "3", "--duration", "1.5", "--data", str(batches_dir), "--log-dir", str(logs), "--root", str(root),
               "--json"])  # fmt: skip
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    runs = {n: [json.loads(x) for x in (logs / f"{n}.jsonl").read_text().splitlines()] for n in ("greedy", "model-predictive")}
    g, m = runs["greedy"], runs["model-predictive"]
    # the same requests, in the same order, for each controller (whole rounds of blocks)
    assert len(g) == len(m) >= 6 and len(g) % 3 == 0
    assert [(r["i"], r["time_budget_ms"]) for r in g] == [(r["i"], r["time_budget_ms"]) for r in m]
    # in turns: greedy's block j, then model-predictive's block j, then greedy's block j + 1
    for j in range(len(g) // 3 - 1):
        assert max(r["t_s"] for r in g[3 * j : 3 * j + 3]) < min(r["t_s"] for r in m[3 * j : 3 * j + 3])
        assert max(r["t_s"] for r in m[3 * j : 3 * j + 3]) < min(r["t_s"] for r in g[3 * j + 3 : 3 * j + 6])
    # on the trace's clock throughout: a turn's first request comes a period after the previous turn's last one
    periods = [float(row["period_ms"]) for row in csv.DictReader(trace.open())]
    served = sorted(g + m, key=lambda r: r["t_s"])
    gaps = [(b["t_s"] - a["t_s"]) * 1e3 / periods[a["i"] % len(periods)] for a, b in zip(served, served[1:])]
    assert min(gaps) > 0.9
    for name in ("greedy", "model-predictive"):
        c = report["controllers"][name]
        assert c["requests"] == len(g) and c["latency_mape"] >= 0 and c["overhead_ms_median"] > 0


@pytest.mark.parametrize("backend", ["onnx", "ncnn"])
def test_profile_deploy_and_bundle_on_an_exported_backend(tmp_path: Path, batches_dir: Path, capsys, backend: str) -> None:
    """The profiler times the backend deploy will run: a profile made with --backend onnx (ncnn)
    says so, deploy runs the exported graphs on ONNX Runtime (ncnn) against it and refuses the
    other backend, and a bundle deploys from a venv without torch."""
    if backend == "ncnn":
        pytest.importorskip("pnnx", reason="the ncnn export needs pnnx (pip install pnnx ncnn)")
        pytest.importorskip("ncnn")
    import torch

    from dnn.model import Architecture, DynamicAlexNet
    from dnn.train import Checkpoint, save_weights
    from dynscale_cli import main

    torch.manual_seed(0)
    tiny = DynamicAlexNet(Architecture(conv_channels=(4, 6, 8, 8, 4), fc_hidden=16)).eval()
    save_weights(tmp_path / "tiny.pt", Checkpoint(tiny, 4, np.full(3, 0.5), np.full(3, 0.25), {}, "test"))
    export = tmp_path / backend
    assert (
        main(["dnn", "export", "--format", backend, "--weights", str(tmp_path / "tiny.pt"), "--out", str(export), "--quiet"]) == 0
    )
    root = fake_one_cpu_board(tmp_path / "root")
    board = tmp_path / "board.yaml"
    exported = ["--backend", backend, "--export", str(export)]
    assert main(["profile", "--out", str(board), "--data", str(batches_dir), "--repeats", "3", "--warmup", "1",
                 "--allow-dvfs", "--allow-busy", "--root", str(root), "--quiet", *exported]) == 0  # fmt: skip
    assert yaml.safe_load(board.read_text())["measured"]["backend"] == backend
    capsys.readouterr()
    assert main(["profile", "--out", str(tmp_path / "b2.yaml"), "--data", str(batches_dir), "--root", str(root), "--quiet",
                 "--weights", str(tmp_path / "tiny.pt"), *exported]) == 2  # fmt: skip
    assert f"--weights: only with --backend torch (--backend {backend} runs the export's weights)" in capsys.readouterr().err
    trace = tmp_path / "trace.csv"
    assert main(["env", "record", "--platform", str(board), "--scenario", "tiny", "--length", "30", "--out", str(trace)]) == 0
    base = ["deploy", "--controller", "greedy", "--platform", str(board), "--budgets", str(trace), "--root", str(root)]
    base += ["--data", str(batches_dir), "--quiet"]
    assert main([*base, "--log", str(tmp_path / "exported.jsonl"), *exported]) == 0
    lines = [json.loads(x) for x in (tmp_path / "exported.jsonl").read_text().splitlines()]
    assert len(lines) == 30 and all(r["latency_ms"] > 0 for r in lines)
    capsys.readouterr()
    assert main([*base, "--log", str(tmp_path / "torch.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"measured with --backend {backend}; deploy with --backend {backend}" in err
    assert main([*base, "--log", str(tmp_path / "x.jsonl"), "--backend", backend]) == 2
    assert f"--backend {backend}: give the export folder with --export DIR" in capsys.readouterr().err

    # the bundle: a trained policy, the export and the profile, deployed from a venv that has
    # numpy, PyYAML and the backend's package and nothing else of ours (no torch, SB3, gymnasium, SciPy)
    from stable_baselines3 import PPO

    from agents.export import export_policy
    from envs import DynDNNEnv

    env = DynDNNEnv(str(board), scenario="tiny", episode_length=32)
    ppo = PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
    ppo.learn(32)
    export_policy(ppo, env, tmp_path / "run" / "policy")
    bundle = tmp_path / "bundle"
    assert main(["bundle", str(tmp_path / "run"), "--platform", str(board), "--export", str(export), "--out", str(bundle)]) == 0
    assert {p.name for p in bundle.iterdir()} == {
        "policy.npz", "policy.json", "dnn", "board.yaml", "src", "requirements.txt", "requirements-profile.txt",
        "dynscale-board", "bundle.json"
    }  # fmt: skip
    assert not list((bundle / "src").rglob("*.pt"))
    assert (bundle / "requirements.txt").read_text().split()[-1].startswith({"onnx": "onnxruntime", "ncnn": "ncnn"}[backend])
    capsys.readouterr()
    assert main(["bundle", str(tmp_path / "run"), "--platform", str(board), "--export", str(export), "--out", str(bundle)]) == 2
    assert "exists; a bundle is written into a new folder" in capsys.readouterr().err
    venv = tmp_path / "board-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "-r", str(bundle / "requirements.txt")], capture_output=True, text=True
    )
    if pip.returncode != 0:
        pytest.skip(f"the board venv could not install its requirements (no package index?): {pip.stderr.strip()[-300:]}")
    python = str(venv / "bin/python")
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0  # torch really is absent there
    log = tmp_path / "bundle.jsonl"
    cmd = [python, str(bundle / "dynscale-board"), "deploy", "--controller", "policy.npz", "--platform", "board.yaml",
           "--backend", backend, "--export", "dnn", "--budgets", str(trace), "--root", str(root), "--log", str(log),
           "--duration", "2", "--quiet", "--data", str(batches_dir)]  # fmt: skip
    done = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) >= 3 and all(r["latency_ms"] > 0 and r["predicted_latency_ms"] > 0 for r in lines)  # 0.5 s apart
    assert all(isinstance(r["correct"], bool) for r in lines)  # real test images, loaded without torch
    if backend == "onnx":  # the board profiles itself from a kit (no policy yet), with SciPy added and still no torch
        _profile_from_a_kit(export, tmp_path, venv, root, batches_dir, capsys)


def _profile_from_a_kit(export: Path, tmp_path: Path, venv: Path, root: Path, batches_dir: Path, capsys) -> None:
    from dynscale_cli import main

    kit = tmp_path / "kit"
    assert main(["bundle", "--export", str(export), "--out", str(kit)]) == 0
    assert "a profiling kit" in capsys.readouterr().out
    assert {p.name for p in kit.iterdir()} == {
        "dnn",
        "src",
        "requirements.txt",
        "requirements-profile.txt",
        "dynscale-board",
        "bundle.json",
    }
    assert json.loads((kit / "bundle.json").read_text())["kind"] == "profiling kit"
    assert main(["bundle", "--export", str(export), "--platform", "x.yaml", "--out", str(tmp_path / "kit2")]) == 2
    assert "--platform: give it with a run" in capsys.readouterr().err
    python = str(venv / "bin/python")
    cmd = [python, str(kit / "dynscale-board"), "profile", "--backend", "onnx", "--export", "dnn", "--data", str(batches_dir),
           "--repeats", "3", "--warmup", "1", "--allow-dvfs", "--allow-busy", "--root", str(root), "--quiet", "--out", "board.yaml"]  # fmt: skip
    done = subprocess.run(cmd, cwd=kit, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 2 and "SciPy, which is not installed: pip install scipy" in done.stderr
    assert done.stderr.count("\n") == 1 and not (kit / "board.yaml").exists()
    pip = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "-r", str(kit / "requirements-profile.txt")], capture_output=True, text=True
    )
    if pip.returncode != 0:
        pytest.skip(f"the board venv could not install SciPy (no package index?): {pip.stderr.strip()[-300:]}")
    without = [x for x in cmd if x not in ("--backend", "onnx", "--export", "dnn")]  # the default backend: torch
    done = subprocess.run(without, cwd=kit, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--backend torch: torch is not installed here; run an export with --backend onnx or ncnn" in done.stderr
    done = subprocess.run(cmd, cwd=kit, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    doc = yaml.safe_load((kit / "board.yaml").read_text())
    assert doc["measured"]["backend"] == "onnx" and len(doc["measured"]["latency_ms"]) == 8


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_affinity_moves_the_inference_runtimes_thread_pools_too() -> None:
    """A thread keeps the CPU mask it was made with: torch's OpenMP pool, made while the process
    ran on one CPU, must follow the process to the next configuration's CPUs."""
    import torch

    from runtime.topology import set_affinity

    def masks() -> set[frozenset[int]]:
        return {frozenset(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}

    before, threads = sorted(os.sched_getaffinity(0)), torch.get_num_threads()
    try:
        set_affinity(before[-1:])
        torch.set_num_threads(2)
        torch.ones(256, 256) @ torch.ones(256, 256)  # the pool is made pinned to the last CPU
        set_affinity(before[:2])
        assert masks() == {frozenset(before[:2])}
    finally:
        torch.set_num_threads(threads)
        set_affinity(before)
