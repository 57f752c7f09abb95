import dataclasses
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from dynscale_cli import main
from envs import DynDNNEnv
from envs.scenario import ScenarioError, TraceScenario
from hwmodels.config import Config
from hwmodels.model import State
from hwmodels.profile import load_platform


@pytest.mark.parametrize("env_id", sorted(envs.ENV_IDS.values()))
def test_registered_ids_pass_both_checkers_without_warnings(env_id: str) -> None:
    env = gym.make(env_id, episode_length=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_generic_id_takes_a_profile_path() -> None:
    path = Path(envs.__file__).resolve().parents[1] / "hwmodels" / "platforms" / "nano.yaml"
    env = gym.make(envs.GENERIC_ID, platform=str(path), episode_length=10)
    assert env.unwrapped.model.spec.name == "nano"


def rollout(env: DynDNNEnv, seed: int, actions: list[int]) -> list:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc, {k: v for k, v in info.items()}))
    return out


def test_exact_seeding() -> None:
    env = DynDNNEnv("xu3", episode_length=200)
    acts = np.random.default_rng(0).integers(0, env.action_space.n, 200).tolist()
    a, b = rollout(env, 7, acts), rollout(DynDNNEnv("xu3", episode_length=200), 7, acts)
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]
    c = rollout(env, 8, acts)
    assert any(x[1] != y[1] for x, y in zip(a[1:], c[1:]))


ROBUST = str(Path(__file__).resolve().parents[1] / "docs" / "live" / "camera-model-error.yaml")


@pytest.mark.parametrize("scenario", ["default", "train", ROBUST])  # ROBUST: with the board's model error
def test_recorded_trace_replays_the_generated_episode(tmp_path: Path, scenario: str) -> None:
    out = tmp_path / "t.csv"
    assert (
        main(["env", "record", "--platform", "xu3", "--scenario", scenario, "--seed", "5", "--length", "300", "--out", str(out)])
        == 0
    )
    gen = DynDNNEnv("xu3", scenario=scenario, episode_length=300, noise=False)
    gen.reset(seed=5)  # with ROBUST, an episode whose board departs from the model
    rep = DynDNNEnv("xu3", scenario=str(out), episode_length=None, noise=False)
    rep.reset(seed=123)
    fields = ("time_budget_ms", "energy_budget_mj", "load", "mem", "period_ms", "phase", "latency_error", "power_error")
    assert (gen.trace.latency_error is not None) == (scenario == ROBUST)
    for f in fields:
        np.testing.assert_array_equal(getattr(rep.trace, f), getattr(gen.trace, f), err_msg=f)
    acts = np.random.default_rng(1).integers(0, gen.action_space.n, 300).tolist()
    for x, y in zip(rollout(gen, 5, acts)[1:], rollout(rep, 9, acts)[1:]):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1] == y[1]


def test_reward_prefers_a7_that_meets_over_a15_that_misses_under_heavy_a15_load() -> None:
    env = DynDNNEnv("xu3", noise=False, episode_length=10)
    loaded = {"load": [6.0, 0.0], "mem": [1.0, 0.0]}  # six busy threads on the four A15 cores, A7 idle
    # one DNN thread on a big core that three of the six background threads share
    a15 = env.encode(Config(4, "a15", 1, 2000.0))
    a7 = env.encode(Config(4, "a7", 4, 1400.0))
    env.reset(seed=0, options=loaded)
    state = State(np.array(loaded["load"]), np.array(loaded["mem"]), env.request.temp_c, None)
    t15, t7 = env.model.expected(a15, state).latency_ms, env.model.expected(a7, state).latency_ms
    assert t7 < t15  # on the loaded big cluster this mapping is now the slower one
    idle = env.model.expected(a15, State.idle(2, state.temp_c)).latency_ms
    assert idle < t7  # ...though on an idle board it was the faster
    budget = {"time_budget_ms": (t7 + t15) / 2, "energy_budget_mj": 1e6}
    env.reset(seed=0, options={**loaded, **budget})
    assert list(env.request.load) == loaded["load"] and env.request.time_budget_ms == budget["time_budget_ms"]
    _, r7, *_, i7 = env.step(a7)
    env.reset(seed=0, options={**loaded, **budget})
    _, r15, *_, i15 = env.step(a15)
    assert i7["latency_ms"] == pytest.approx(t7) and i15["latency_ms"] == pytest.approx(t15)
    assert i7["deadline_met"] and not i15["deadline_met"]
    assert r7 > r15


def test_masks_follow_thermal_caps() -> None:
    env = DynDNNEnv("xu3", episode_length=10)
    env.reset(seed=0)
    assert env.action_masks().all()
    env.reset(seed=0, options={"temp_c": 90.0})
    mask = env.action_masks()
    assert not mask.all() and mask[env.encode(Config(1, "a15", 1, 900.0))] and not mask[env.encode(Config(1, "a15", 1, 1000.0))]
    assert env.action_masks()[env.noise_free_best_action()] and env.action_masks()[env.ceiling_action()]
    with pytest.raises(ValueError, match="reset options \\['temperature'\\] unknown"):
        env.reset(seed=0, options={"temperature": 90.0})


def test_info_and_episode_end() -> None:
    env = DynDNNEnv("nano", episode_length=3)
    env.reset(seed=0)
    for t in range(3):
        _, _, term, trunc, info = env.step(0)
        assert not term and trunc == (t == 2)
    assert {
        "latency_ms",
        "energy_mj",
        "power_w",
        "accuracy",
        "config",
        "deadline_met",
        "energy_met",
        "is_success",
        "temperature",
        "freq_mhz",
    } <= set(info)
    assert info["energy_mj"] == pytest.approx(info["latency_ms"] * info["power_w"])
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


GOOD = "time_budget_ms,energy_budget_mj,load_a15,load_a7\n20,50,1,0\n30,40,0,2.5\n"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("time_budget_ms,energy_budget_mj,load_a15\n20,50,1\n", r":1: missing column 'load_a7'"),
        ("time_budget_ms,energy_budget_mj,load_a15,load_a7\n20,-5,1,0\n", r":2: column 'energy_budget_mj': must be positive"),
        (
            "time_budget_ms,energy_budget_mj,load_a15,load_a7\n20,50,1,0\n20,50,nan,0\n",
            r":3: column 'load_a15': 'nan' is not a finite number",
        ),
        (
            "time_budget_ms,energy_budget_mj,load_a15,load_gpu\n20,50,1,0\n",
            r":1: unknown column 'load_gpu' \(this platform's units: a15, a7\)",
        ),
        ("time_budget_ms,energy_budget_mj,load_a15,load_a7,mem_a7\n20,50,1,0,1.5\n", r":2: column 'mem_a7': must be in \[0, 1\]"),
        ("time_budget_ms,energy_budget_mj,load_a15,load_a7\n20,50,1\n", r":2: 3 fields, the header has 4"),
    ],
)
def test_bad_traces_name_file_line_and_column(tmp_path: Path, text: str, expect: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ScenarioError, match=expect) as e:
        TraceScenario.from_csv(p, ("a15", "a7"), (4, 4))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_good_trace_defaults(tmp_path: Path) -> None:
    p = tmp_path / "ok.csv"
    p.write_text(GOOD)
    t = TraceScenario.from_csv(p, ("a15", "a7"), (4, 4)).trace
    assert len(t) == 2 and t.period_ms.tolist() == [100.0, 100.0] and t.mem.sum() == 0


def test_scenarios_change_the_best_configuration() -> None:
    from envs.stats import scenario_stats

    s = scenario_stats("xu3", "default", [0, 1], episode_length=600, progress=False)
    assert s["oracle_changes_between_phases"] > 0.5 and s["oracle_distinct_configs"] > 5
    assert s["max_accuracy_miss_rate"] > 0.2


@pytest.mark.parametrize("busy", [False, True])
def test_the_observation_carries_the_online_slowdown_of_a_board_slower_than_its_model(tmp_path: Path, busy: bool) -> None:
    """Idle, and beside co-runners that preempt in quanta without noise (the mean run: nothing to
    take apart into quanta), the unit that runs learns the board's true factor."""
    f = tmp_path / "slow.yaml"
    threads = "[1, 1]" if busy else "[0, 0]"
    f.write_text(
        "slow:\n  phase_length: [50, 50]\n  modes:\n    a: {time: [20, 20], energy: [50, 50], period_ms: 100}\n"
        f"  load:\n    stay: 1.0\n    levels:\n      idle: {{threads_per_core: {threads}, mem: [0, 0]}}\n"
        "    start: [1.0]\n    transitions: [[1.0]]\n  model_error: {probability: 1, latency: [1.6, 1.6], power: [1, 1], drift: 0}\n"
    )
    base = load_platform("xu3")
    spec = dataclasses.replace(base, interference=dataclasses.replace(base.interference, quantum_ms=4.0)) if busy else "xu3"
    env = DynDNNEnv(spec, scenario=str(f), episode_length=60, noise=not busy)
    names = list(env.observation_names)
    assert names[-2:] == ["slowdown_a15", "slowdown_a7"]
    obs, _ = env.reset(seed=0)
    assert env.request.slowdown == (1.0, 1.0)
    action = env.space.encode(env.decode(0))  # one configuration on the first unit throughout
    for _ in range(30):
        obs, *_ = env.step(action)
    assert env.request.slowdown[0] == pytest.approx(1.6, rel=0.05)  # the unit that runs learns the truth
    assert env.request.slowdown[1] == 1.0  # the other was never measured
    lo, hi = env.obs_spec.slowdown_range
    assert obs[names.index("slowdown_a15")] == pytest.approx(np.log(1.6 / lo) / np.log(hi / lo), abs=0.02)


def test_a_request_carries_where_in_a_tick_it_woke_and_the_run_waits_only_if_a_tick_falls_in_its_stretch() -> None:
    """On a profile with a tick grid the env draws how far into a tick each request's wake falls,
    the request carries it (as the live loop reads it at the wake) and so does the observation
    (``tick_free``: how long the inference may run before a tick after the credit); a one-core run
    beside one co-runner whose
    every tick beyond the credit preempts it (``preempt_share`` 1) waits a quantum exactly where
    a tick falls in the stretch beyond its credit, and never elsewhere."""
    base = load_platform("xu3")
    it = dataclasses.replace(base.interference, quantum_ms=4.0, tick_hz=250, preempt_share=1.0, wake_credit_ms=0.0)
    probe = DynDNNEnv(dataclasses.replace(base, interference=it), episode_length=1, noise=False)
    a15 = base.unit_index("a15")
    action = probe.encode(Config(1, "a15", 1, float(base.units[a15].freqs_mhz[-1])))
    busy = {"load": [4.0, 0.0], "mem": [0.0, 0.0]}
    probe.reset(seed=0, options=busy)
    compute = probe.model.expected(action, probe._state).wait_ms  # no credit, no phase, one co-runner: its compute
    it = dataclasses.replace(it, wake_credit_ms=float(compute) - 2.5)
    env = DynDNNEnv(dataclasses.replace(base, interference=it), episode_length=1)
    assert env.observation_names[-1] == "tick_free"
    waited = []
    for seed in range(60):
        obs, _ = env.reset(seed=seed, options=busy)
        phase = env.request.tick_phase_ms
        assert 0.0 <= phase < 4.0
        o = env.model.expected(action, env._state)
        # the observation says it: a run as long as the time before the first tick after the credit is exposed
        assert (o.wait_ms > 0) == (env._obs.tick_free_ms(env.request) <= compute)
        _, _, _, _, info = env.step(action)
        run = info["latency_ms"] / env._jitter_latency[0]  # the realised run, its jitter divided out
        waited.append(run > o.latency_ms - o.wait_ms + 2.0)
        # whole ticks at a share of 1: a quantum each, or none
        assert run == pytest.approx(o.latency_ms - o.wait_ms + 4.0 * waited[-1], rel=1e-12)
        assert waited[-1] == (o.wait_ms > 0)
    assert 0 < sum(waited) < len(waited)
