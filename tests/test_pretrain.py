"""The warm start: cloning a controller into an actor-critic policy before RL."""

from __future__ import annotations

import numpy as np
import pytest

from agents.controllers import make_controller
from agents.pretrain import PretrainConfig, clone, teacher_rollouts
from agents.train import HyperparamsError, RunConfig, build_model, resolve
from envs import DynDNNEnv


def test_cloning_makes_the_policy_choose_what_the_teacher_chooses() -> None:
    cfg = resolve(RunConfig(platform="xu3", n_envs=1))
    model = build_model(cfg)
    env = DynDNNEnv("xu3", scenario="default", episode_length=200, reward=cfg.env_kwargs["reward"])
    teacher = make_controller("fixed-min-energy", env.model, reward=env.reward_config)
    data = teacher_rollouts(env, teacher, 400, seed=0, gamma=0.8, progress=False)
    obs, actions, masks, returns, soft = data
    assert soft is None
    assert obs.shape == (400, len(env.observation_names)) and len(set(actions.tolist())) == 1
    info = clone(model, data, PretrainConfig(epochs=30, batch_size=100, learning_rate=3e-3), seed=0, masked=False, progress=False)
    assert info["teacher_agreement"] == 1.0 and info["samples"] == 400
    obs0, _ = env.reset(seed=123)
    action, _ = model.predict(obs0, deterministic=True)
    assert int(action) == int(actions[0])


def test_returns_are_the_discounted_rewards_of_each_episode() -> None:
    env = DynDNNEnv("xu3", scenario="default", episode_length=5)
    teacher = make_controller("greedy", env.model)
    _, _, _, returns, _ = teacher_rollouts(env, teacher, 10, seed=0, gamma=0.5, progress=False)
    env.reset(seed=20_000_000)
    rewards = []
    for _ in range(5):
        rewards.append(env.step(teacher.act(env.request, env.action_masks()))[1])
    want = [sum(r * 0.5**j for j, r in enumerate(rewards[i:])) for i in range(5)]
    assert np.allclose(returns[:5], want)


def test_soft_targets_rank_configurations_by_the_teachers_expected_reward() -> None:
    env = DynDNNEnv("xu3", scenario="default", episode_length=50)
    teacher = make_controller("model-predictive", env.model, reward=env.reward_config)
    _, actions, masks, _, soft = teacher_rollouts(env, teacher, 60, seed=0, gamma=0.8, temperature=0.03, progress=False)
    assert soft.shape == (60, env.action_space.n) and soft.dtype == np.float16
    assert np.allclose(soft.astype(np.float64).sum(axis=1), 1.0, atol=1e-2)
    assert not soft[~masks].any()  # nothing on unavailable configurations
    # the teacher's pick carries the largest share (it maximises the same expected reward)
    assert np.all(soft[np.arange(60), actions] == soft.max(axis=1))


def test_cloning_soft_targets_makes_the_policy_choose_the_teachers_best() -> None:
    cfg = resolve(RunConfig(platform="xu3", n_envs=1))
    model = build_model(cfg)
    env = DynDNNEnv("xu3", scenario="default", episode_length=200, reward=cfg.env_kwargs["reward"])
    teacher = make_controller("model-predictive", env.model, reward=env.reward_config)
    data = teacher_rollouts(env, teacher, 200, seed=0, gamma=0.8, temperature=0.001, progress=False)
    info = clone(model, data, PretrainConfig(epochs=60, batch_size=50, learning_rate=3e-3), seed=0, masked=False, progress=False)
    assert info["teacher_agreement"] >= 0.8


def test_pretrain_entries_are_checked_naming_the_key(tmp_path) -> None:
    f = tmp_path / "hp.yml"
    f.write_text("dynscale/DynDNN-XU3-v0:\n  n_timesteps: 10\n  policy: MlpPolicy\n  pretrain: {teacher: oracle}\n")
    with pytest.raises(HyperparamsError, match=r"pretrain.teacher: 'oracle' is none of model-predictive"):
        resolve(RunConfig(platform="xu3"), str(f))
    f.write_text("dynscale/DynDNN-XU3-v0:\n  n_timesteps: 10\n  policy: MlpPolicy\n  pretrain: {epochs: 0}\n")
    with pytest.raises(HyperparamsError, match=r"pretrain.epochs: must be a whole number >= 1"):
        resolve(RunConfig(platform="xu3"), str(f))
    f.write_text("dynscale/DynDNN-XU3-v0:\n  n_timesteps: 10\n  policy: MlpPolicy\n  pretrain: {teacher: greedy}\n")
    with pytest.raises(HyperparamsError, match="dqn has no actor to clone into"):
        resolve(RunConfig(platform="xu3", algo="dqn"), str(f))
    assert resolve(RunConfig(platform="xu3", pretrain={}), str(f)).pretrain is None  # --no-pretrain
    f.write_text(
        "dynscale/DynDNN-XU3-v0:\n  n_timesteps: 10\n  policy: MlpPolicy\n  pretrain: {teacher: greedy, temperature: 0.1}\n"
    )
    with pytest.raises(HyperparamsError, match="pretrain.temperature: > 0 needs a teacher that scores every configuration"):
        resolve(RunConfig(platform="xu3"), str(f))


def test_teacher_processes_give_the_same_data_as_one_process() -> None:
    """The warm start's teacher runs one process per core; its data must not depend on how many
    (each episode has its own seed), including a last episode cut short."""
    from agents.pretrain import parallel_teacher_rollouts

    kwargs = {"platform": "xu3", "scenario": "default", "episode_length": 40}
    one = parallel_teacher_rollouts(
        kwargs, "model-predictive", 130, seed=3, gamma=0.8, temperature=0.03, workers=1, progress=False
    )
    two = parallel_teacher_rollouts(
        kwargs, "model-predictive", 130, seed=3, gamma=0.8, temperature=0.03, workers=2, progress=False
    )
    assert len(one[1]) == len(two[1]) == 130
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
