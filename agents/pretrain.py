"""Behaviour cloning of a controller into an actor-critic policy before RL (a warm start).

Why: over 512 configurations (XU3), PPO from a random policy learns within a few thousand
steps that one group on a fast mapping rarely misses, and never again explores the few
configurations of 2-4 groups that would meet a given budget: it stays at k = 1. Cloning the
model-predictive controller first puts the policy where groups are scaled, and RL then
improves on it with the reward alone (issue 12). The teacher decides from the same
:class:`envs.step.Request` the policy observes; its episodes use their own seeds, disjoint
from training, validation and test seeds.

The critic is fitted to the teacher's discounted returns at the same time, so the first PPO
updates see sensible advantages instead of tearing the cloned actor down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnn.progress import progress as progress_bar

#: teacher episodes are seeded from here (+ 1000 x run seed + episode): disjoint from every other
PRETRAIN_SEED_OFFSET = 20_000_000


@dataclass(frozen=True)
class PretrainConfig:
    """The ``pretrain:`` entry of a hyperparameter file.

    :param teacher: a controller of :data:`agents.controllers.CONTROLLERS` that runs without the
        simulator's truth (``model-predictive``)
    :param timesteps: requests the teacher decides (its episodes' length is the env's)
    :param epochs: passes over them
    :param batch_size: samples per gradient step
    :param learning_rate: Adam step size
    :param temperature: > 0: clone the teacher's expected reward of every configuration, as the
        target distribution ``softmax(expected_reward / temperature)`` (policy distillation); 0:
        clone its choice alone (cross-entropy on one action)
    """

    teacher: str = "model-predictive"
    timesteps: int = 100_000
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 1e-3
    temperature: float = 0.0


def teacher_rollouts(env, teacher, timesteps: int, seed: int, gamma: float, temperature: float = 0.0, progress: bool = True):
    """(observations, teacher actions, action masks, discounted returns, soft targets) of
    ``timesteps`` requests; soft targets (``float16``, one row per request) only with
    ``temperature > 0``, else ``None``. Episode ``e`` is seeded ``PRETRAIN_SEED_OFFSET + 1000 *
    seed + e``, the same in :func:`parallel_teacher_rollouts`, so both return the same data."""
    bar = progress_bar(timesteps, "teacher", progress, "step", leave=False)
    episodes, steps = [], 0
    while steps < timesteps:
        ep = _teacher_episode(env, teacher, _episode_seed(seed, len(episodes)), timesteps - steps, temperature)
        episodes.append(ep)
        steps += len(ep[1])
        bar.update(len(ep[1]))
    bar.close()
    return _assemble(episodes, gamma, temperature)


def parallel_teacher_rollouts(
    env_kwargs: dict,
    teacher_name: str,
    timesteps: int,
    seed: int,
    gamma: float,
    temperature: float = 0.0,
    workers: int = 1,
    progress: bool = True,
):
    """:func:`teacher_rollouts` with its episodes spread over ``workers`` processes (the teacher
    decides on numpy alone, so processes, not threads, use the cores); the same data for any
    number of workers.

    :param env_kwargs: keyword arguments of :class:`envs.DynDNNEnv` (picklable)
    :param teacher_name: a controller of :data:`agents.controllers.CONTROLLERS` (``model-predictive``)
    :param workers: processes (1: in this process)
    """
    if workers <= 1:
        env, teacher = _make_teacher(env_kwargs, teacher_name)
        return teacher_rollouts(env, teacher, timesteps, seed, gamma, temperature, progress)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from envs import DynDNNEnv

    # episodes run their full length (the env only truncates), so episode e is the sequential
    # loop's: its seed, and the requests left for it
    length = DynDNNEnv(**env_kwargs).episode_length
    jobs = [
        (_episode_seed(seed, e), min(length, timesteps - start), temperature)
        for e, start in enumerate(range(0, timesteps, length))
    ]
    bar = progress_bar(timesteps, "teacher", progress, "step", leave=False)
    episodes = []
    with ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(env_kwargs, teacher_name)
    ) as pool:
        for (_, cap, _), ep in zip(jobs, pool.map(_worker_episode, jobs)):
            if len(ep[1]) != cap:
                raise RuntimeError(f"a teacher episode ended after {len(ep[1])} of its {cap} requests; the env only truncates")
            episodes.append(ep)
            bar.update(cap)
    bar.close()
    return _assemble(episodes, gamma, temperature)


def _episode_seed(seed: int, episode: int) -> int:
    return PRETRAIN_SEED_OFFSET + 1000 * seed + episode


def _make_teacher(env_kwargs: dict, teacher_name: str):
    from agents.controllers import make_controller
    from envs import DynDNNEnv

    env = DynDNNEnv(**env_kwargs)
    return env, make_controller(teacher_name, env.model, reward=env.reward_config)


_WORKER: dict = {}


def _init_worker(env_kwargs: dict, teacher_name: str) -> None:
    _WORKER["env"], _WORKER["teacher"] = _make_teacher(env_kwargs, teacher_name)


def _worker_episode(job: tuple[int, int, float]):
    return _teacher_episode(_WORKER["env"], _WORKER["teacher"], *job)


def _teacher_episode(env, teacher, episode_seed: int, max_steps: int, temperature: float):
    """One teacher episode of at most ``max_steps`` requests: (observations, actions, masks,
    rewards, soft targets or ``None``) as arrays."""
    o, _ = env.reset(seed=episode_seed)
    teacher.reset(episode_seed)
    obs, actions, masks, rewards, soft = [], [], [], [], []
    done = False
    while not done and len(actions) < max_steps:
        mask = env.action_masks()
        if temperature <= 0:
            a = teacher.act(env.request, mask)
        else:  # the teacher's pick is the argmax of the expected rewards it scores (its act is exact)
            q = np.where(mask, teacher.expected_rewards(env.request), -np.inf)
            a = int(np.argmax(q))
            soft.append(_softmax(q, temperature).astype(np.float16))
        obs.append(o)
        actions.append(a)
        masks.append(mask)
        o, r, term, trunc, _ = env.step(a)
        rewards.append(r)
        done = term or trunc
    return (
        np.asarray(obs, dtype=np.float32),
        np.asarray(actions),
        np.asarray(masks),
        np.asarray(rewards, dtype=np.float64),
        np.asarray(soft) if temperature > 0 else None,
    )


def _assemble(episodes: list, gamma: float, temperature: float):
    """Concatenate episodes; discounted returns restart at each episode's last request."""
    returns = []
    for _, _, _, rewards, _ in episodes:
        r = np.empty(len(rewards))
        g = 0.0
        for i in range(len(rewards) - 1, -1, -1):
            g = rewards[i] + gamma * g
            r[i] = g
        returns.append(r)
    obs, actions, masks = (np.concatenate([ep[j] for ep in episodes]) for j in range(3))
    soft = np.concatenate([ep[4] for ep in episodes]) if temperature > 0 else None
    return obs, actions, masks, np.concatenate(returns).astype(np.float32), soft


def _softmax(q: np.ndarray, temperature: float) -> np.ndarray:
    z = q / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def clone(model, data, cfg: PretrainConfig, seed: int, masked: bool, progress: bool = True) -> dict:
    """Fit ``model.policy`` (an SB3 actor-critic) to the teacher: cross-entropy of the teacher's
    action (or of its soft targets, when ``data`` has them) plus the critic's squared error to
    the returns. Returns the final losses and the share of teacher actions the policy's argmax
    reproduces."""
    import torch

    obs, actions, masks, returns, soft = data
    policy = model.policy
    policy.set_training_mode(True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(seed)
    n = len(actions)
    t_obs, t_act, t_ret = torch.as_tensor(obs), torch.as_tensor(actions), torch.as_tensor(returns)
    bar = progress_bar(cfg.epochs, "cloning", progress, "epoch", leave=False)
    for _ in range(cfg.epochs):
        for batch in np.array_split(rng.permutation(n), max(1, n // cfg.batch_size)):
            b = torch.as_tensor(batch)
            kwargs = {"action_masks": masks[batch]} if masked else {}
            if soft is None:
                values, log_prob, _ = policy.evaluate_actions(t_obs[b], t_act[b], **kwargs)
                actor_loss = -log_prob.mean()
            else:
                values, actor_loss = _soft_cross_entropy(
                    policy, t_obs[b], torch.as_tensor(soft[batch], dtype=torch.float32), kwargs
                )
            critic_loss = torch.nn.functional.mse_loss(values.flatten(), t_ret[b])
            optimizer.zero_grad()
            (actor_loss + 0.5 * critic_loss).backward()
            optimizer.step()
        bar.update()
    bar.close()
    policy.set_training_mode(False)
    with torch.no_grad():
        dist = policy.get_distribution(t_obs[:20_000])
        logits = dist.distribution.logits.numpy()
    if masked:
        logits = np.where(masks[:20_000], logits, -np.inf)
    agree = float(np.mean(logits.argmax(axis=1) == actions[:20_000]))
    return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(), "teacher_agreement": agree, "samples": n}


def _soft_cross_entropy(policy, obs, target, mask_kwargs: dict):
    """(values, mean cross-entropy of the policy's action distribution to ``target``)."""
    import torch

    log_p = policy.get_distribution(obs, **mask_kwargs).distribution.logits  # normalised log-probabilities
    ce = -torch.where(target > 0, target * log_p, torch.zeros_like(log_p)).sum(dim=1)
    return policy.predict_values(obs), ce.mean()
