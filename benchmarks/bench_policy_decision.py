"""Decision time of the exported numpy policy (what the board runs), per platform.

Target (issue 5): median under 50 us. The network has the default hyperparameters' shape
(decision time does not depend on training); pass a run folder to time a trained one.
Run: python -m benchmarks.bench_policy_decision [RUN_DIR ...]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import print_table, write_results

TARGET_US = 50.0


def _untrained_policy(platform: str, folder: Path) -> Path:
    from stable_baselines3 import PPO

    from agents.export import export_policy
    from agents.train import RunConfig, _policy_kwargs, resolve
    from envs import DynDNNEnv

    cfg = resolve(RunConfig(platform=platform))
    env = DynDNNEnv(platform, episode_length=8)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=8,
        batch_size=8,
        device="cpu",
        policy_kwargs=_policy_kwargs(cfg.hyperparams.get("policy_kwargs"), "ppo.yml"),
    )
    npz, _ = export_policy(model, env, folder / f"{platform}_policy")
    return npz


def time_policy(path: Path, n: int = 20000) -> tuple[str, float, float]:
    from agents.numpy_policy import NumpyPolicy

    pol = NumpyPolicy(path)
    obs = np.random.default_rng(0).uniform(0, 1, (n, len(pol.observation_names))).astype(np.float32)
    mask = np.ones(len(pol.meta["actions"]), dtype=bool)
    samples = []
    for o in obs:
        t0 = time.perf_counter()
        pol.decide(o, mask)
        samples.append((time.perf_counter() - t0) * 1e6)
    return pol.platform, statistics.median(samples), float(np.percentile(samples, 99))


def main(argv: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(a) / "policy.npz" if Path(a).is_dir() else Path(a) for a in argv] or [
            _untrained_policy(p, Path(tmp)) for p in ("xu3", "nano")
        ]
        for path in paths:
            platform, med, p99 = time_policy(path)
            rows.append(
                {
                    "policy": f"{path.parent.name}/{path.name}" if argv else f"default-shape {platform}",
                    "platform": platform,
                    "median_us": med,
                    "p99_us": p99,
                    "ok": med < TARGET_US,
                }
            )
    print_table(
        rows,
        [
            ("policy", "policy", ""),
            ("median_us", "median us", ".1f"),
            ("p99_us", "p99 us", ".1f"),
            ("ok", f"<{TARGET_US:g}us", ""),
        ],
    )
    print(f"wrote {write_results('policy_decision', rows, {'target_us': TARGET_US})}")


if __name__ == "__main__":
    main(sys.argv[1:])
