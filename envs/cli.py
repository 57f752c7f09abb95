"""``dynscale env ...``: record scenario episodes (or a live deploy log) as trace CSVs, and measure scenario difficulty."""

from __future__ import annotations

import argparse

from dnn.errors import finite_float, positive_int, seed_int
from dnn.fileio import json_text
from envs.reward import DEFAULT_OBJECTIVE, RewardConfig, load_objective, objective_names

#: more episodes than any comparison needs; a typo like 0-1000000000 would fill memory first
MAX_SEEDS = 10_000


def add_objective_arguments(p: argparse.ArgumentParser, default: str = f"default: {DEFAULT_OBJECTIVE}") -> None:
    """``--objective`` and ``--min-accuracy``, the same on every command that scores requests."""
    p.add_argument("--objective", help=f"{', '.join(objective_names())}, or an objective YAML ({default})")
    p.add_argument(
        "--min-accuracy",
        type=finite_float(0.0, 1.0),
        help="top-1 floor of the objective, 0..1 (the energy objective's own: 0.855, two groups)",
    )


def reward_of_args(args: argparse.Namespace, accuracies: list[float], stored: dict | None = None) -> RewardConfig:
    """The reward ``--objective`` / ``--min-accuracy`` ask for; without either, ``stored`` (an
    agent's own objective) or the default objective.

    :param accuracies: top-1 per group count of the DNN
    """
    if args.objective is None and args.min_accuracy is None and stored is not None:
        return RewardConfig.from_value(stored)
    overrides = {} if args.min_accuracy is None else {"min_accuracy": args.min_accuracy}
    return load_objective(args.objective, accuracies, **overrides)


def parse_seeds(text: str) -> list[int]:
    """``7``, ``1000-1019`` or ``1,2,5``."""
    try:
        if "-" in text.strip("-"):
            lo, hi = text.split("-", 1)
            if int(hi) - int(lo) >= MAX_SEEDS:
                raise argparse.ArgumentTypeError(f"seeds: {text!r} names more than {MAX_SEEDS:,} seeds")
            seeds = list(range(int(lo), int(hi) + 1))
        else:
            seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds: expected N, A-B or A,B,C, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"seeds: {text!r} names no seed")
    if min(seeds) < 0 or max(seeds) >= 2**32:
        raise argparse.ArgumentTypeError(f"seeds: {text!r}: each seed must be in 0..2**32-1")
    if len(seeds) > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"seeds: {text!r} names {len(seeds):,} seeds; at most {MAX_SEEDS:,}")
    return seeds


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``env record`` and ``env stats`` under ``sub``."""
    e = sub.add_parser("env", help="scenario episodes: record, replay a live log, statistics", description=__doc__)
    esub = e.add_subparsers(dest="env_command", required=True, metavar="COMMAND")
    r = esub.add_parser(
        "record",
        help="write a scenario episode as a replayable trace CSV",
        description="Write one generated episode in the trace CSV format, so it can be replayed exactly (scenario=PATH.csv).",
    )
    r.add_argument("--platform", default="xu3", help="xu3, nano, or a profile YAML path")
    r.add_argument("--scenario", default="default", help="preset name (envs/scenarios.yaml) or preset YAML file")
    r.add_argument("--seed", type=seed_int, default=0)
    r.add_argument("--length", type=positive_int, default=1000, help="requests (default: 1000)")
    r.add_argument("--out", required=True, help="CSV file to write")
    r.set_defaults(func=_record)
    lg = esub.add_parser(
        "from-log",
        help="write a live deploy log's requests as a trace CSV, to simulate the same requests under the same load",
        description="Write the requests of a `dynscale deploy` / `compare --live` log as a trace CSV: their budgets, the "
        "background load the board measured, the generated load's memory intensity and the pace, so `dynscale compare "
        "--traces` runs a controller on the same requests under the load it met live.",
    )
    lg.add_argument("log", help="the deploy log (JSON lines)")
    lg.add_argument("--platform", required=True, help="the profile the log was run with (its units)")
    lg.add_argument("--out", required=True, help="CSV file to write")
    lg.set_defaults(func=_from_log)
    s = esub.add_parser(
        "stats",
        help="does the scenario need a controller? oracle switching, max-accuracy misses",
        description="Oracle switching and max-accuracy miss rates of a scenario on the noise-free model.",
    )
    s.add_argument("--platform", default="xu3")
    s.add_argument("--scenario", default="default")
    s.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-9"), help="e.g. 0-9 (default) or 1,2,3")
    s.add_argument("--length", type=positive_int, default=1000)
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.set_defaults(func=_stats)


def _record(args: argparse.Namespace) -> int:
    from dnn.fileio import check_outputs
    from envs.dyndnn_env import DynDNNEnv

    check_outputs({"--out": args.out}, {"--platform": args.platform, "--scenario": args.scenario})
    env = DynDNNEnv(platform=args.platform, scenario=args.scenario, episode_length=args.length)
    env.reset(seed=args.seed)
    env.trace.to_csv(args.out)
    print(f"wrote {args.out}: {len(env.trace)} requests of {env.scenario_name} on {env.model.spec.name}, seed {args.seed}")
    return 0


def _from_log(args: argparse.Namespace) -> int:
    from dnn.fileio import check_outputs
    from envs.replay import trace_from_log
    from hwmodels.profile import load_platform

    check_outputs({"--out": args.out}, {"log": args.log, "--platform": args.platform})
    spec = load_platform(args.platform)
    trace = trace_from_log(args.log, tuple(u.name for u in spec.units))
    trace.to_csv(args.out)
    print(f"wrote {args.out}: {len(trace)} requests of {args.log} on {spec.name}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from envs.stats import format_stats, scenario_stats

    s = scenario_stats(args.platform, args.scenario, args.seeds, args.length, progress=not (args.json or args.quiet))
    print(json_text(s) if args.json else format_stats(s))
    return 0
