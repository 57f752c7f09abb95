"""How hard is a scenario? Evidence that it needs a controller.

For each seed, runs the noise-free env twice on the same episode: once with the oracle (best
expected reward per request) and once with the always-max-accuracy configuration (the full
network on the mapping fastest on the idle board). Reports how often the oracle's choice
changes between consecutive phases and within them, and how often max accuracy misses.
"""

from __future__ import annotations

import itertools
from collections import Counter

from dnn.progress import progress as progress_bar
from envs.dyndnn_env import DynDNNEnv


def scenario_stats(
    platform: str, scenario: str, seeds: list[int], episode_length: int = 1000, progress: bool = True, **env_kwargs
) -> dict:
    """Oracle switching and max-accuracy miss statistics over ``seeds`` (noise-free model)."""
    env = DynDNNEnv(platform=platform, scenario=scenario, episode_length=episode_length, noise=False, **env_kwargs)
    fixed = env.model.fastest_action(env.model.dnn.max_groups)
    boundaries = changed = within = requests = 0
    oracle_miss = fixed_miss = fixed_deadline = fixed_energy = 0
    distinct: set[int] = set()
    bar = progress_bar(len(seeds), "seeds", progress, "seed", leave=False)
    for seed in seeds:
        bar.update()
        env.reset(seed=seed)
        phases = env.trace.phase.tolist()
        chosen = []
        done = False
        while not done:
            a = env.noise_free_best_action()
            _, _, _, done, info = env.step(a)
            chosen.append(a)
            oracle_miss += not info["is_success"]
        distinct.update(chosen)
        within += sum(1 for i in range(1, len(chosen)) if chosen[i] != chosen[i - 1] and phases[i] == phases[i - 1])
        modal = {}
        for p in sorted(set(phases)):
            modal[p] = Counter(a for a, q in zip(chosen, phases) if q == p).most_common(1)[0][0]
        keys = sorted(modal)
        boundaries += len(keys) - 1
        changed += sum(modal[a] != modal[b] for a, b in itertools.pairwise(keys))
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, _, done, info = env.step(fixed)
            fixed_miss += not info["is_success"]
            fixed_deadline += not info["deadline_met"]
            fixed_energy += not info["energy_met"]
        requests += len(chosen)
    return {
        "platform": env.model.spec.name,
        "scenario": env.scenario_name,
        "seeds": list(seeds),
        "requests": requests,
        "phase_boundaries": boundaries,
        "oracle_changes_between_phases": changed / max(boundaries, 1),
        "oracle_switches_within_phases_per_100": 100 * within / requests,
        "oracle_distinct_configs": len(distinct),
        "oracle_miss_rate": oracle_miss / requests,
        "max_accuracy_config": str(env.decode(fixed)),
        "max_accuracy_miss_rate": fixed_miss / requests,
        "max_accuracy_deadline_miss_rate": fixed_deadline / requests,
        "max_accuracy_energy_violation_rate": fixed_energy / requests,
    }


def format_stats(s: dict) -> str:
    return "\n".join(
        [
            f"{s['platform']} / {s['scenario']}: {len(s['seeds'])} seeds x {s['requests'] // max(len(s['seeds']), 1)} requests ({s['requests']} in all), noise-free model",
            f"  oracle's modal configuration changes at {s['oracle_changes_between_phases'] * 100:.1f}% of {s['phase_boundaries']} phase boundaries",
            f"  oracle switches within phases: {s['oracle_switches_within_phases_per_100']:.1f} per 100 requests; {s['oracle_distinct_configs']} distinct configurations used",
            f"  oracle misses a budget on {s['oracle_miss_rate'] * 100:.1f}% of requests (nothing fits)",
            (
                f"  always max accuracy ({s['max_accuracy_config']}) misses on {s['max_accuracy_miss_rate'] * 100:.1f}%: "
                f"deadline {s['max_accuracy_deadline_miss_rate'] * 100:.1f}%, energy {s['max_accuracy_energy_violation_rate'] * 100:.1f}%"
            ),
        ]
    )
