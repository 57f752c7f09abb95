"""Training throughput on this machine: which use of its cores trains the default agent fastest.

Each phase of the default XU3 run is timed alone with the shipped hyperparameters:

* ``ppo``: PPO steps per second (rollouts + updates) for several ``n_envs``, in-process
  (``DummyVecEnv``) or one process per env (``SubprocVecEnv``), with 1 or 2 torch threads;
* ``teacher``: the warm start's teacher (model-predictive) deciding requests, in 1 or 2
  processes (the ``threads`` column);
* ``cloning``: distillation samples per second (epochs x samples / seconds), 1 or 2 threads.

No target: the table is how the default's parallelism is chosen (issue 14).
Run: python -m benchmarks.bench_training [--steps N]
"""

from __future__ import annotations

import argparse
import time

from benchmarks._common import print_table, write_results

PPO_CONFIGS = [  # (n_envs, vec env, torch threads)
    (4, "dummy", 1),
    (4, "dummy", 2),
    (8, "dummy", 1),
    (8, "dummy", 2),
    (16, "dummy", 1),
    (16, "dummy", 2),
    (4, "subproc", 1),
]


def _config(n_envs: int | None = None):
    from agents.train import RunConfig, resolve

    return resolve(RunConfig(platform="xu3", n_envs=n_envs))


def ppo_steps_per_s(n_envs: int, vec: str, threads: int, steps: int) -> float:
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from agents.train import build_model

    torch.set_num_threads(threads)
    model = build_model(_config(n_envs), vec_env_cls=SubprocVecEnv if vec == "subproc" else DummyVecEnv)
    model.learn(total_timesteps=model.n_steps * n_envs)  # warm-up: one rollout and one update
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    rate = model.num_timesteps - model.n_steps * n_envs
    model.env.close()
    return rate / (time.perf_counter() - t0)


def teacher_steps_per_s(steps: int, workers: int) -> float:
    from agents.pretrain import parallel_teacher_rollouts
    from agents.train import make_env_kwargs

    cfg = _config()
    t0 = time.perf_counter()  # process start-up included: the warm start pays it too
    parallel_teacher_rollouts(
        make_env_kwargs(cfg), "model-predictive", steps, 0, 0.8, cfg.pretrain["temperature"], workers, False
    )
    return steps / (time.perf_counter() - t0)


def cloning_samples_per_s(threads: int, samples: int) -> float:
    import torch

    from agents.controllers import make_controller
    from agents.pretrain import PretrainConfig, clone, teacher_rollouts
    from agents.train import build_model, make_env_kwargs
    from envs import DynDNNEnv

    cfg = _config()
    env = DynDNNEnv(**make_env_kwargs(cfg))
    teacher = make_controller("model-predictive", env.model, reward=env.reward_config)
    data = teacher_rollouts(env, teacher, samples, 0, 0.8, cfg.pretrain["temperature"], progress=False)
    torch.set_num_threads(threads)
    pc = PretrainConfig(**{**cfg.pretrain, "epochs": 2})
    model = build_model(cfg)
    t0 = time.perf_counter()
    clone(model, data, pc, 0, False, progress=False)
    return 2 * samples / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=32_768, help="PPO steps timed per configuration")
    args = p.parse_args()
    rows = []
    for n_envs, vec, threads in PPO_CONFIGS:
        rate = ppo_steps_per_s(n_envs, vec, threads, args.steps)
        rows.append({"phase": "ppo", "n_envs": n_envs, "vec": vec, "threads": threads, "per_s": rate})
        print(f"ppo n_envs={n_envs} {vec} threads={threads}: {rate:,.0f} steps/s", flush=True)
    for workers in (1, 2):  # processes, in the threads column
        rows.append(
            {"phase": "teacher", "n_envs": 1, "vec": "-", "threads": workers, "per_s": teacher_steps_per_s(40_000, workers)}
        )
    for threads in (1, 2):
        rows.append(
            {"phase": "cloning", "n_envs": "-", "vec": "-", "threads": threads, "per_s": cloning_samples_per_s(threads, 20_000)}
        )
    print_table(
        rows,
        [
            ("phase", "phase", ""),
            ("n_envs", "n_envs", ""),
            ("vec", "vec env", ""),
            ("threads", "threads", ""),
            ("per_s", "steps/s", ",.0f"),
        ],
    )
    print(f"wrote {write_results('training', rows, {'ppo_steps': args.steps, 'platform': 'xu3'})}")


if __name__ == "__main__":
    main()
