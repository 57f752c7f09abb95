"""Environment steps per second (single env, random actions), raw and through gymnasium.make.

Target (issue 4): at least 30,000 steps/s per platform on the development machine, so that the
agent's own overhead, not the env, dominates training time.
Run: python -m benchmarks.bench_env_steps
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import envs
from benchmarks._common import print_table, write_results

TARGET = 30_000
STEPS = 50_000


def steps_per_second(env: gym.Env, n: int, seed: int = 0) -> float:
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, n).tolist()
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return n / (time.perf_counter() - t0)


def main() -> None:
    rows = []
    for platform, env_id in envs.ENV_IDS.items():
        for label, env in (("DynDNNEnv", envs.DynDNNEnv(platform)), ("gymnasium.make", gym.make(env_id))):
            best = max(steps_per_second(env, STEPS, seed) for seed in range(3))  # best of 3: noise here only slows
            rows.append({"platform": platform, "path": label, "steps_per_s": best, "ok": best >= TARGET})
    print_table(
        rows,
        [("platform", "platform", ""), ("path", "path", ""), ("steps_per_s", "steps/s", ",.0f"), ("ok", f">={TARGET:,}", "")],
    )
    print(f"wrote {write_results('env_steps', rows, {'target_steps_per_s': TARGET, 'steps': STEPS})}")


if __name__ == "__main__":
    main()
