"""The scenario generator's movements (drift, jumps, bursts, periodic co-runners) and its
per-episode domain randomisation; the held-out families."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from envs.scenario import RANDOMISED, ScenarioError, ScenarioGenerator, load_scenario
from hwmodels.config import Config
from hwmodels.profile import load_platform

UNITS, CORES = ("big", "little"), (4, 4)


def _generator(name: str, **changes) -> ScenarioGenerator:
    cfg = dataclasses.replace(load_scenario(name), **changes)
    return ScenarioGenerator(cfg, UNITS, CORES, t_ref_ms=10.0, e_ref_mj=20.0)


def test_drifting_phases_move_log_linearly_and_held_ones_do_not() -> None:
    trace = _generator("default", drift=1.0).episode(np.random.default_rng(0), 600)
    for p in set(trace.phase.tolist()):
        tb = np.log(trace.time_budget_ms[trace.phase == p])
        if len(tb) > 2:
            assert np.allclose(np.diff(tb, 2), 0, atol=1e-9) and tb[0] != tb[-1]
    held = _generator("default").episode(np.random.default_rng(0), 600)
    for p in set(held.phase.tolist()):
        assert len(set(held.time_budget_ms[held.phase == p].tolist())) == 1


def test_jumps_redraw_budgets_within_a_phase_and_stay_in_the_modes_range() -> None:
    g = _generator("default", jump_rate=0.2)
    trace = g.episode(np.random.default_rng(1), 500)
    changes_within = sum(
        a != b and p == q for a, b, p, q in zip(trace.time_budget_ms, trace.time_budget_ms[1:], trace.phase, trace.phase[1:])
    )
    assert changes_within > 50
    lo = min(m.time[0] for m in g.cfg.modes) * 10.0
    hi = max(m.time[1] for m in g.cfg.modes) * 10.0
    assert lo <= trace.time_budget_ms.min() and trace.time_budget_ms.max() <= hi


def test_bursts_and_periodic_co_runners_add_load_on_top_of_the_levels() -> None:
    base = _generator("idle-board").episode(np.random.default_rng(2), 400)
    assert not base.load.any()
    periodic = load_scenario("periodic").periodic
    trace = _generator("idle-board", periodic=periodic).episode(np.random.default_rng(2), 400)
    on = trace.load[:, 0] > 0
    assert 0.2 < on.mean() < 0.8 and np.count_nonzero(np.diff(on.astype(int))) >= 400 / 40  # a square wave of period <= 40
    bursts = dataclasses.replace(load_scenario("bursty").bursts, rate=0.05)
    trace = _generator("idle-board", bursts=bursts).episode(np.random.default_rng(3), 400)
    assert 0 < (trace.load > 0).mean() < 0.8 and trace.mem[trace.load > 0].min() >= 0.6
    assert trace.load.max() <= 4 * 4  # capped at the model's threads per core


def test_randomised_parameters_are_drawn_per_episode_within_their_ranges() -> None:
    cfg = load_scenario("train")
    assert set(cfg.randomise) == set(RANDOMISED)
    rng = np.random.default_rng(4)
    drawn = [cfg.drawn(rng) for _ in range(50)]
    stays = [d.stay for d in drawn]
    assert len(set(stays)) == 50 and min(stays) >= cfg.randomise["stay"][0] and max(stays) <= cfg.randomise["stay"][1]
    assert all(d.randomise is None for d in drawn)
    first_mode = [d.modes[0].time[0] / cfg.modes[0].time[0] for d in drawn]
    assert min(first_mode) >= cfg.randomise["time_scale"][0] - 1e-12 and max(first_mode) <= cfg.randomise["time_scale"][1] + 1e-12
    # episodes of one seed are reproducible, of two seeds different
    g = ScenarioGenerator(cfg, UNITS, CORES, 10.0, 20.0)
    a, b = (g.episode(np.random.default_rng(s), 300) for s in (9, 9))
    assert np.array_equal(a.load, b.load) and np.array_equal(a.time_budget_ms, b.time_budget_ms)
    assert not np.array_equal(a.load, g.episode(np.random.default_rng(10), 300).load)


@pytest.mark.parametrize(
    ("section", "expect"),
    [
        ("  randomise: {speed: [0, 1]}\n", "field 'x.randomise.speed' unknown"),
        ("  randomise: {stay: [0.5, 2]}\n", "field 'x.randomise.stay' is a probability range"),
        ("  budgets: {drift: 2}\n", "field 'x.budgets.drift' must be a probability"),
        ("  budgets: {wobble: 1}\n", "field 'x.budgets' takes drift and jump_rate"),
        (
            "  model_error: {latency: [1, 2], power: [1, 1]}\n",
            "field 'x.model_error' needs exactly probability, latency, power, drift",
        ),
        ("  model_error: {probability: 1, latency: [2, 1], power: [1, 1], drift: 0}\n", "field 'x.model_error.latency' must be"),
        (
            "  model_error: {probability: 1, latency: [1, 2], power: [1, 1], drift: 3}\n",
            "field 'x.model_error.drift' must be a probability",
        ),
        (
            "  model_error: {probability: 2, latency: [1, 2], power: [1, 1], drift: 0}\n",
            "field 'x.model_error.probability' must be a probability",
        ),
        (
            "  model_error: {probability: 1, latency: [0, 2], power: [1, 1], drift: 0}\n",
            "field 'x.model_error.latency' must be a range of positive factors",
        ),
        ("  awake_ms: [0.5, 0.2]\n", "field 'x.awake_ms' must be"),
        ("  awake_ms: [0.5, 2000]\n", "field 'x.awake_ms' must be a range within"),
    ],
)
def test_bad_movement_or_randomisation_names_the_field(tmp_path, section: str, expect: str) -> None:
    text = (
        "x:\n  phase_length: [5, 10]\n  modes:\n    a: {time: [1, 2], energy: [1, 2], period_ms: 10}\n"
        "  load:\n    stay: 0.9\n    levels:\n      idle: {threads_per_core: [0, 0], mem: [0, 0]}\n"
        "    start: [1.0]\n    transitions: [[1.0]]\n" + section
    )
    f = tmp_path / "x.yaml"
    f.write_text(text)
    with pytest.raises(ScenarioError, match=expect):
        load_scenario(str(f))


def test_bad_bursts_section_names_the_field(tmp_path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(
        "x:\n  phase_length: [5, 10]\n  modes:\n    a: {time: [1, 2], energy: [1, 2], period_ms: 10}\n"
        "  load:\n    stay: 0.9\n    levels:\n      idle: {threads_per_core: [0, 0], mem: [0, 0]}\n"
        "    start: [1.0]\n    transitions: [[1.0]]\n    bursts: {rate: 0.1}\n"
    )
    with pytest.raises(ScenarioError, match="field 'x.load.bursts' needs exactly rate, length, threads_per_core, mem"):
        load_scenario(str(f))


def test_model_error_is_drawn_per_episode_and_unit_within_its_range_and_drifts_in_some() -> None:
    gen = _generator(str(Path(__file__).resolve().parents[1] / "docs" / "live" / "camera-model-error.yaml"))
    me = gen.cfg.model_error
    rng = np.random.default_rng(0)
    drifting = exact = 0
    for _ in range(80):
        t = gen.episode(rng, 200)
        if t.latency_error is None:  # an episode on a board that matches its model
            exact += 1
            continue
        for err, (lo, hi) in ((t.latency_error, me.latency), (t.power_error, me.power)):
            assert err.shape == (200, len(UNITS)) and np.all((err >= lo - 1e-12) & (err <= hi + 1e-12))
        drifting += int(np.any(t.latency_error[0] != t.latency_error[-1]))
    assert 0 < drifting < (80 - exact) * len(UNITS)  # some units' factors move over the episode, not all
    assert 80 * me.probability / 2 < 80 - exact < 80 * (1 + me.probability) / 2  # the model is wrong in a share of episodes
    for name in ("default", "train"):  # evaluation presets, and the default agents' training: the model is exact
        assert _generator(name).episode(rng, 50).latency_error is None


def test_time_awake_is_drawn_per_episode_and_reaches_the_request_and_a_trace(tmp_path: Path) -> None:
    """A scenario's ``awake_ms`` is one draw per episode within its range; the env's request and
    true state carry it; a recorded trace keeps it as a column and replays it."""
    from envs import DynDNNEnv

    gen = _generator(str(Path(__file__).resolve().parents[1] / "docs" / "live" / "camera-model-error.yaml"))
    lo, hi = gen.cfg.awake_ms
    rng = np.random.default_rng(0)
    draws = [gen.episode(rng, 20).awake_ms for _ in range(30)]
    assert all(len(set(d.tolist())) == 1 and lo <= d[0] <= hi for d in draws) and len({d[0] for d in draws}) == 30
    assert _generator("camera").episode(rng, 5).awake_ms is None  # presets without it: 0
    env = DynDNNEnv("xu3", scenario=str(Path(__file__).resolve().parents[1] / "docs" / "live" / "camera-model-error.yaml"))
    env.reset(seed=3)
    assert env.request.awake_ms == 0.0  # the first request: nothing ran before it, as live
    env.step(0)
    assert lo <= env.request.awake_ms <= hi and env.request.awake_ms == env.trace.awake_ms[0]  # the previous one's
    # the true state spends the credit: the same episode without time awake predicts shorter runs beside co-runners
    yaml_path = Path(__file__).resolve().parents[1] / "docs" / "live" / "camera-model-error.yaml"
    plain = tmp_path / "plain.yaml"
    plain.write_text("".join(x for x in yaml_path.read_text().splitlines(keepends=True) if not x.strip().startswith("awake_ms")))
    xu3 = load_platform("xu3")
    credited = dataclasses.replace(xu3, interference=dataclasses.replace(xu3.interference, wake_credit_ms=20.0))
    slowest = float(xu3.units[0].freqs_mhz[0])
    latencies = []
    for path in (yaml_path, plain):
        e = DynDNNEnv(credited, scenario=str(path), noise=False)
        e.reset(seed=3, options={"load": [4.0, 0.0]})  # a co-runner on every a15 core
        latencies.append(e.step(e.encode(Config(4, "a15", 1, slowest)))[4]["latency_ms"])  # longer than the credit
    assert latencies[0] > latencies[1]
    out = tmp_path / "t.csv"
    env.trace.to_csv(out)
    replay = DynDNNEnv("xu3", scenario=str(out))
    replay.reset(seed=0)
    assert replay.trace.awake_ms.tolist() == pytest.approx(env.trace.awake_ms.tolist())
    replay.step(0)
    assert replay.request.awake_ms == pytest.approx(env.request.awake_ms)  # both past their first request
    bad = tmp_path / "bad.csv"
    header, first, *rest = out.read_text().splitlines()
    bad.write_text("\n".join([header, first.rsplit(",", 1)[0] + ",-1", *rest]) + "\n")  # a negative awake_ms
    with pytest.raises(ScenarioError, match=r"bad.csv:2: column 'awake_ms': must be in \[0, 1000\]"):
        DynDNNEnv("xu3", scenario=str(bad))


def test_a_deploy_log_replays_as_a_trace_of_the_same_requests_and_load(tmp_path: Path, capsys) -> None:
    """``dynscale env from-log``: budgets, the measured load, the generated load's memory
    intensity (where workers ran) and the pace of a live log become a trace the env replays."""
    from dynscale_cli import main
    from envs import DynDNNEnv

    log = tmp_path / "ctrl.jsonl"
    rows = [
        {"t_s": 0.0, "time_budget_ms": 9.0, "energy_budget_mj": 30.0, "load": [0.1, 0.0], "load_generated": {"a15": 0}},
        {"t_s": 0.0333, "time_budget_ms": 9.0, "energy_budget_mj": 30.0, "load": [2.1, 0.0],
         "load_generated": {"a15": 2}, "mem_generated": {"a15": 1.0}},
        {"t_s": 0.5, "time_budget_ms": 4.0, "energy_budget_mj": 20.0, "load": [1.0, 0.0], "load_generated": {"a15": 1}},
    ]  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "replay.csv"
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(out)]) == 0
    env = DynDNNEnv("xu3", scenario=str(out), episode_length=3)
    env.reset(seed=0)
    t = env.trace
    assert t.time_budget_ms.tolist() == [9.0, 9.0, 4.0] and t.load[:, 0].tolist() == [0.1, 2.1, 1.0]
    assert t.mem[:, 0].tolist() == [0.0, 1.0, 0.0]  # an older log without mem_generated: 0
    assert t.period_ms[:2] == pytest.approx([33.3, 466.7])
    assert t.awake_ms is None  # a log before awake_ms: replayed at 0
    log.write_text("".join(json.dumps({**r, "awake_ms": 0.4 + i / 10}) + "\n" for i, r in enumerate(rows)))
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "awake.csv")]) == 0
    env = DynDNNEnv("xu3", scenario=str(tmp_path / "awake.csv"), episode_length=3)
    env.reset(seed=0)
    assert env.trace.awake_ms.tolist() == pytest.approx([0.4, 0.5, 0.6]) and env.request.awake_ms == 0.0
    log.write_text("".join(json.dumps({**r, "awake_ms": 0.4} if i else r) + "\n" for i, r in enumerate(rows)))
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "mixed.csv")]) == 0
    env = DynDNNEnv("xu3", scenario=str(tmp_path / "mixed.csv"), episode_length=3)
    env.reset(seed=0)
    assert env.trace.awake_ms.tolist() == pytest.approx([0.0, 0.4, 0.4])  # a line without it: 0
    for bad in (-1, True, "0.3"):
        log.write_text(json.dumps({**rows[0], "awake_ms": bad}) + "\n")
        assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "bad.csv")]) == 2
        assert "line 1: 'awake_ms' must be a number in [0, 1000]" in capsys.readouterr().err
    log.write_text(json.dumps(rows[0]) + "\n{not json\n")
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "b.csv")]) == 2
    assert "ctrl.jsonl: line 2 is not a deploy-log record" in capsys.readouterr().err
    log.write_text(json.dumps({**rows[0], "load": [0.1]}) + "\n")
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "c.csv")]) == 2
    assert "'load' has 1 units, the platform has 2 (a15, a7)" in capsys.readouterr().err


def test_a_replayed_log_meets_the_ticks_where_the_live_loop_woke(tmp_path: Path, capsys) -> None:
    """A deploy log whose every line has ``wake_tick_phase_ms`` replays with those phases (the
    trace's column of that name), so the simulated runs meet the ticks as the live ones did (one
    logged as the tick itself, by rounding, is 0); one line without it leaves the env to draw them
    all; a phase out of range is refused naming the line, and one beyond the profile's tick, when
    the env is made, naming the trace's row and column."""
    from dynscale_cli import main
    from envs import DynDNNEnv

    base = load_platform("xu3")
    ticked = dataclasses.replace(base, interference=dataclasses.replace(base.interference, quantum_ms=4.0, tick_hz=250))
    log = tmp_path / "ctrl.jsonl"
    rows = [
        {"t_s": i / 30, "time_budget_ms": 9.0, "energy_budget_mj": 30.0, "load": [2.0, 0.0], "wake_tick_phase_ms": p}
        for i, p in enumerate((0.25, 3.5, 4.0))
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "replay.csv"
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(out)]) == 0
    env = DynDNNEnv(ticked, scenario=str(out), episode_length=3)
    env.reset(seed=0)
    seen = [env.request.tick_phase_ms]
    for _ in range(2):
        env.step(0)
        seen.append(env.request.tick_phase_ms)
    assert seen == [0.25, 3.5, 0.0]
    log.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if i or k != "wake_tick_phase_ms"}) + "\n" for i, r in enumerate(rows))
    )
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "drawn.csv")]) == 0
    env = DynDNNEnv(ticked, scenario=str(tmp_path / "drawn.csv"), episode_length=3)
    env.reset(seed=0)
    assert env.trace.tick_phase_ms is None and 0 <= env.request.tick_phase_ms < 4.0
    for bad in (-0.5, 1000.0, "1"):
        log.write_text(json.dumps({**rows[0], "wake_tick_phase_ms": bad}) + "\n")
        assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "bad.csv")]) == 2
        assert "line 1: 'wake_tick_phase_ms' must be a number in [0, 1000)" in capsys.readouterr().err
    log.write_text(json.dumps({**rows[0], "wake_tick_phase_ms": 7.5}) + "\n")  # a 100 Hz kernel's phase
    assert main(["env", "from-log", str(log), "--platform", "xu3", "--out", str(tmp_path / "slow.csv")]) == 0
    with pytest.raises(ScenarioError, match=r"slow.csv:2: column 'wake_tick_phase_ms': 7.5 ms is beyond the profile's 4 ms tick"):
        DynDNNEnv(ticked, scenario=str(tmp_path / "slow.csv"), episode_length=1)
