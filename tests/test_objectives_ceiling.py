"""Objectives (named rewards) and the ceiling with common random numbers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.controllers import CONTROLLERS, make_controller
from agents.evaluate import compare
from dnn.profile import load_dnn_profile
from envs import DynDNNEnv
from envs.reward import ObjectiveError, load_objective, objective_names
from hwmodels.profile import load_platform

ACCURACIES = load_dnn_profile().column("top1").tolist()


def test_accuracy_objective_one_group_step_outweighs_any_energy_difference() -> None:
    r = load_objective("accuracy", ACCURACIES)
    smallest_step = min(np.diff(sorted(set(ACCURACIES))))
    # two requests that meet both budgets: the most frugal lower k against the costliest higher k
    for lo, hi in zip(ACCURACIES, ACCURACIES[1:]):
        assert r(hi, 1.0, 1.0, 1.0, 1.0) > r(lo, 1.0, 1e-9, 1.0, 1.0)
    assert r.energy_weight < smallest_step * r.accuracy_weight
    # and between equally accurate ones, less energy wins
    assert r(ACCURACIES[0], 1.0, 0.5, 1.0, 1.0) > r(ACCURACIES[0], 1.0, 0.9, 1.0, 1.0)


def test_energy_objective_prefers_less_energy_above_its_floor_and_refuses_below() -> None:
    r = load_objective("energy", ACCURACIES)
    assert r(ACCURACIES[1], 1.0, 0.3, 1.0, 1.0) > r(ACCURACIES[3], 1.0, 0.6, 1.0, 1.0)
    below = r(ACCURACIES[0], 1.0, 0.1, 1.0, 1.0)  # meets the budgets below the floor: costs like a miss
    assert below < 0 < r(ACCURACIES[1], 1.0, 0.9, 1.0, 1.0)
    assert load_objective("energy", ACCURACIES, min_accuracy=0.0)(ACCURACIES[0], 1.0, 0.1, 1.0, 1.0) > 0


@pytest.mark.parametrize("name", objective_names())
def test_expected_reward_equals_the_mean_of_the_reward_over_draws(name: str) -> None:
    r = load_objective(name, ACCURACIES)
    rng = np.random.default_rng(1)
    acc = rng.choice(ACCURACIES, 200)
    lat, energy = rng.uniform(0.3, 3, 200), rng.uniform(0.3, 3, 200)
    dl = rng.lognormal(0, 0.1, 16)
    de = dl * rng.lognormal(0, 0.1, 16)
    want = r(acc[:, None], lat[:, None] * dl, energy[:, None] * de, 1.3, 0.9).mean(axis=1)
    assert np.allclose(r.expected(acc, lat, energy, dl, de, 1.3, 0.9), want, rtol=0, atol=1e-12)
    # per configuration and draw (runs that wait different quanta of co-runners)
    lat2, energy2 = lat[:, None] + rng.choice([0.0, 0.8], (200, 16)), energy[:, None] * rng.uniform(1, 1.5, (200, 16))
    want2 = r(acc[:, None], lat2 * dl, energy2 * de, 1.3, 0.9).mean(axis=1)
    assert np.allclose(r.expected(acc, lat2, energy2, dl, de, 1.3, 0.9), want2, rtol=0, atol=1e-12)


def test_objective_files_are_validated_naming_the_field(tmp_path) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text("mine: {energy_weight: -1}\n")
    with pytest.raises(ObjectiveError, match=r"mine.yaml: field 'mine.energy_weight' must be a finite number >= 0"):
        load_objective(str(bad), ACCURACIES)
    bad.write_text("mine: {energy_wieght: 1}\n")
    with pytest.raises(ObjectiveError, match=r"field 'mine.energy_wieght' unknown"):
        load_objective(str(bad), ACCURACIES)
    with pytest.raises(ObjectiveError, match="neither an objective"):
        load_objective("speed", ACCURACIES)
    with pytest.raises(ObjectiveError, match="above the DNN's best top-1"):
        load_objective("energy", ACCURACIES, min_accuracy=0.99)


def test_env_records_the_objective_and_takes_it_as_a_keyword() -> None:
    env = DynDNNEnv("xu3", objective="energy", episode_length=5)
    assert env.reward_config.objective == "energy" and env.reward_config.min_accuracy == pytest.approx(0.855)
    assert DynDNNEnv("xu3", episode_length=5).reward_config.objective == "accuracy"


def _quantised(platform: str, quantum_ms: float = 4.0, memoryless: bool = False):
    """The platform (or its memoryless variant) with co-runners that preempt in quanta."""
    spec = _memoryless(platform) if memoryless else load_platform(platform)
    return dataclasses.replace(spec, interference=dataclasses.replace(spec.interference, quantum_ms=quantum_ms))


@pytest.mark.parametrize("quantum_ms", [0.0, 4.0])
def test_jitter_is_drawn_before_the_decision_and_is_the_same_whatever_runs(quantum_ms: float) -> None:
    env = DynDNNEnv(_quantised("xu3", quantum_ms), episode_length=20)
    latencies = {}
    for a in (0, len(env.space) - 1):
        env.reset(seed=3)
        predicted = []
        for _ in range(20):
            predicted.append(env.expected_rewards(realised=True)[a])
            _, r, *_ = env.step(a)
            assert r == pytest.approx(predicted[-1], abs=1e-12)  # the ceiling sees exactly what the step gives
        latencies[a] = np.array(env._jitter_latency)
    assert np.array_equal(latencies[0], latencies[len(env.space) - 1])


def _memoryless(platform: str):
    """The platform without what makes the past matter: no thermal trips, no DVFS switch cost,
    no temperature-dependent leakage (so the ceiling's per-request choice is the episode optimum)."""
    spec = load_platform(platform)
    units = tuple(
        dataclasses.replace(u, switch_latency_us=0.0, power=dataclasses.replace(u.power, leak_temp_coeff=0.0)) for u in spec.units
    )
    return dataclasses.replace(spec, units=units, thermal=dataclasses.replace(spec.thermal, trips=()))


@pytest.mark.parametrize("platform", ["xu3", "nano"])
@pytest.mark.parametrize("objective", objective_names())
def test_nothing_beats_the_ceiling_without_thermal_or_switching_dynamics(platform: str, objective: str) -> None:
    env = DynDNNEnv(_memoryless(platform), objective=objective, episode_length=300)
    factories = {n: (lambda e, n=n: make_controller(n, e.model, e)) for n in CONTROLLERS}
    report, logs = compare(lambda: env, factories, [11, 12], progress=False)
    ceiling = np.concatenate([lg.rewards for lg in logs["oracle"]])
    for name, lg in logs.items():
        rewards = np.concatenate([x.rewards for x in lg])
        assert np.all(rewards <= ceiling + 1e-12), f"{name} beat the ceiling on a request"
        assert report.controllers[name].oracle_gap is None or report.controllers[name].oracle_gap >= -1e-12
    assert 0.0 <= report.infeasible_rate < 1.0


def _assert_nothing_beats_the_ceiling(env: DynDNNEnv) -> None:
    factories = {n: (lambda e, n=n: make_controller(n, e.model, e)) for n in CONTROLLERS}
    _, logs = compare(lambda: env, factories, [11, 12], progress=False)
    ceiling = np.concatenate([lg.rewards for lg in logs["oracle"]])
    for name, lg in logs.items():
        assert np.all(np.concatenate([x.rewards for x in lg]) <= ceiling + 1e-12), f"{name} beat the ceiling on a request"


@pytest.mark.parametrize("platform", ["xu3", "nano"])
def test_nothing_beats_the_ceiling_on_a_board_that_departs_from_its_model(platform: str) -> None:
    _assert_nothing_beats_the_ceiling(DynDNNEnv(_memoryless(platform), scenario="slow-board", episode_length=300))


def test_model_predictive_reads_the_slowdown_estimate() -> None:
    env = DynDNNEnv("xu3", episode_length=10)
    env.reset(seed=4, options={"time_budget_ms": 3 * env.t_ref_ms, "energy_budget_mj": 1e6, "load": [0, 0]})
    mpc = make_controller("model-predictive", env.model, env)
    nominal = env.model.idle_table()[0]
    fast = mpc.act(env.request)
    slow = mpc.act(dataclasses.replace(env.request, slowdown=(1.8, 1.8)))
    # told the board runs 1.8x slower than modelled, it picks a configuration that fits that
    assert nominal[slow] * 1.8 <= env.request.time_budget_ms < nominal[fast] * 1.8


def test_reports_show_how_each_controller_decides() -> None:
    env = DynDNNEnv("xu3", episode_length=200)
    factories = {n: (lambda e, n=n: make_controller(n, e.model, e)) for n in ("oracle", "greedy", "fixed-min-energy")}
    report, logs = compare(lambda: env, factories, [5], progress=False)
    d = report.to_dict()
    assert d["objective"] == "accuracy" and 0 <= d["infeasible_rate"] <= 1
    oracle_log = logs["oracle"][0]
    for name, m in d["controllers"].items():
        assert set(m["group_share"]) == {"1", "2", "3", "4"} and sum(m["group_share"].values()) == pytest.approx(1)
        assert set(m["unit_share"]) == {"a15", "a7"} and sum(m["unit_share"].values()) == pytest.approx(1)
    met = [d_ and e for d_, e in zip(oracle_log.deadline_met, oracle_log.energy_met)]
    assert d["infeasible_rate"] == pytest.approx(1 - np.mean(met))
    want = np.mean([a for a, ok in zip(oracle_log.accuracy, met) if ok])
    assert d["controllers"]["oracle"]["accuracy_on_met"] == pytest.approx(want)
    assert d["controllers"]["fixed-min-energy"]["group_share"]["1"] == 1.0
    text = report.format()
    assert "k=1%" in text and "acc. on met%" in text and "could not meet both budgets" in text


@pytest.mark.parametrize("quantum_ms", [0.0, 4.0])
@pytest.mark.parametrize("objective", objective_names())
def test_model_predictive_shortcut_picks_the_argmax_of_the_full_expectation(objective: str, quantum_ms: float) -> None:
    env = DynDNNEnv(_quantised("xu3", quantum_ms), objective=objective, episode_length=400)
    ctrl = make_controller("model-predictive", env.model, env)
    env.reset(seed=21)
    done = False
    while not done:
        request, mask = env.request, env.action_masks()
        a = ctrl.act(request, mask)
        full = ctrl.expected_rewards(request)
        full[~mask] = -np.inf
        assert full[a] == pytest.approx(full.max(), abs=1e-12)
        done = env.step(a)[3]


def test_nothing_beats_the_ceiling_when_co_runners_preempt_in_quanta() -> None:
    _assert_nothing_beats_the_ceiling(DynDNNEnv(_quantised("xu3", memoryless=True), episode_length=300))


def test_model_predictive_expects_the_quanta_a_run_may_wait() -> None:
    """Where co-runners preempt in quanta, the expected reward of a configuration is the mean over
    draws of the reward of a run that waits that draw's whole quanta (times its jitter)."""
    env = DynDNNEnv(_quantised("xu3"), episode_length=10)
    a15 = env.model.spec.unit_index("a15")
    env.reset(seed=2, options={"load": [4.0, 0.0], "time_budget_ms": 2.0 * env.t_ref_ms})
    mpc = make_controller("model-predictive", env.model, env)
    m, request = env.model, env.request
    from envs.step import observed_state

    o = m.expected_all(observed_state(request))
    lat, wait, power = o.latency_ms.copy(), o.wait_ms.copy(), o.power_w.copy()
    assert (wait[m.space.unit_idx == a15] > 0).all()
    runs = m.realised_latency(lat[:, None], wait[:, None], mpc._phases)  # (configurations, draws)
    r = env.reward_config
    energy = runs * power[:, None]  # power over the whole run, its wait included (as the env scores it)
    want = r(mpc.accuracy[:, None], runs * mpc._lat_draws, energy * mpc._energy_draws,
             request.time_budget_ms, request.energy_budget_mj).mean(axis=1)  # fmt: skip
    assert np.allclose(mpc.expected_rewards(request), want, rtol=0, atol=1e-12)
    fluid = make_controller("model-predictive", DynDNNEnv("xu3", episode_length=10).model)
    assert not np.allclose(fluid.expected_rewards(request), want)  # the quanta change what is expected
