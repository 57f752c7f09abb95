"""Decision time of the model-predictive controller (expected reward of every configuration
under the model's noise at the observed state), per platform.

Target (issue 12): median under 200 us on the XU3. The requests are real ones: the env's
pending request at every step of held-out episodes of the default scenario (load, temperature,
current frequencies vary), stepped with the controller's own choices.
Run: python -m benchmarks.bench_model_predictive [PLATFORM ...]   (default: xu3 nano)
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from benchmarks._common import print_table, write_results

TARGET_US = 200.0


def time_model_predictive(platform: str, seeds: range = range(7000, 7005), length: int = 1000) -> dict:
    """Median and p99 of ``act`` over every request of ``seeds``."""
    from agents.controllers import make_controller
    from envs import DynDNNEnv

    env = DynDNNEnv(platform, scenario="default", episode_length=length)
    ctrl = make_controller("model-predictive", env.model, env)
    samples = []
    for seed in seeds:
        env.reset(seed=seed)
        done = False
        while not done:
            request, mask = env.request, env.action_masks()
            t0 = time.perf_counter()
            a = ctrl.act(request, mask)
            samples.append((time.perf_counter() - t0) * 1e6)
            done = env.step(a)[3]
    return {
        "platform": platform,
        "configurations": len(env.space),
        "requests": len(samples),
        "median_us": statistics.median(samples),
        "p99_us": float(np.percentile(samples, 99)),
        "ok": statistics.median(samples) < TARGET_US,
    }


def main(argv: list[str]) -> None:
    rows = [time_model_predictive(p) for p in (argv or ["xu3", "nano"])]
    print_table(
        rows,
        [
            ("platform", "platform", ""),
            ("configurations", "configurations", "d"),
            ("requests", "requests", "d"),
            ("median_us", "median us", ".1f"),
            ("p99_us", "p99 us", ".1f"),
            ("ok", f"<{TARGET_US:g}us", ""),
        ],
    )
    print(f"wrote {write_results('model_predictive_decision', rows, {'target_us': TARGET_US})}")


if __name__ == "__main__":
    main(sys.argv[1:])
