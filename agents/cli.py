"""Command lines of the agents package: ``train`` (also ``train_agent.py``), ``compare`` (in
simulation; :mod:`runtime.cli` adds ``--live``) and ``export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.algos import ALGOS
from agents.controllers import CONTROLLERS
from dnn.errors import OneLineParser, UsageError, parse_or_exit_code, positive_int, run_command, seed_int
from dnn.fileio import check_outputs, json_text, read_yaml
from envs.cli import add_objective_arguments, parse_seeds, reward_of_args


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``dynscale train`` and ``train_agent.py``."""
    p.add_argument("--platform", default="xu3", help="xu3, nano, or a platform profile YAML (default: xu3)")
    p.add_argument("--algo", default="ppo", choices=tuple(ALGOS))
    p.add_argument("--scenario", help="scenario preset or YAML (default: the hyperparameter file's env_kwargs.scenario)")
    add_objective_arguments(p, "default: env_kwargs.objective of the hyperparameter file, accuracy")
    p.add_argument("--timesteps", type=positive_int, help="training steps (default: n_timesteps of the hyperparameter file)")
    p.add_argument("--n-envs", type=positive_int, help="parallel envs (default: n_envs of the hyperparameter file)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=positive_int, help="torch threads (default: one per core)")
    p.add_argument("--hyperparams", help="rl-zoo style YAML (default: agents/hyperparams/ALGO.yml)")
    p.add_argument("--out", help="run folder (default: runs/ALGO-PLATFORM-sSEED)")
    p.add_argument("--force", action="store_true", help="replace the run folder if it exists")
    p.add_argument("--tensorboard", help="TensorBoard log folder")
    p.add_argument(
        "--eval-seeds",
        type=parse_seeds,
        default=parse_seeds("1000-1019"),
        help="held-out test seeds of the final comparison (default: 1000-1019)",
    )
    p.add_argument(
        "--no-pretrain",
        action="store_true",
        help="skip the warm start (cloning the hyperparameter file's pretrain teacher): RL from a random policy",
    )
    p.add_argument(
        "--eval-scenario",
        help="scenario of the final comparison (default: 'default' when training on 'train', else the training scenario)",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from agents.train import VALIDATION_SEEDS, RunConfig, train

    if any(s in VALIDATION_SEEDS for s in args.eval_seeds):
        raise UsageError(f"--eval-seeds overlap the validation seeds {VALIDATION_SEEDS[0]}-{VALIDATION_SEEDS[-1]}")
    name = Path(args.platform).stem
    out = args.out or f"runs/{args.algo}-{name}-s{args.seed}"
    cfg = RunConfig(
        platform=args.platform,
        algo=args.algo,
        scenario=args.scenario,
        objective=args.objective,
        min_accuracy=args.min_accuracy,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
        seed=args.seed,
        threads=args.threads,
        eval_seeds=args.eval_seeds,
        eval_scenario=args.eval_scenario,
        pretrain={} if args.no_pretrain else None,
    )
    inputs = {
        Path(x).resolve()
        for x in (args.platform, args.hyperparams, args.scenario, args.eval_scenario, args.objective)
        if x and Path(x).exists()
    }
    if any(p == Path(out).resolve() or Path(out).resolve() in p.parents for p in inputs):
        raise UsageError(f"--out {out}: is or holds an input of this run; choose a new run folder")
    progress = not (args.json or args.quiet)
    report = train(cfg, out, hyperparams_path=args.hyperparams, tensorboard=args.tensorboard, progress=progress, force=args.force)
    if args.json:
        print(json_text(report.to_dict()))
    else:
        print(report.format())
        print(f"\ntrained {report.training['timesteps']:,} steps in {report.training['seconds']:.0f} s; run folder: {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict[str, argparse.ArgumentParser]:
    """Register ``train``, ``compare`` and ``export`` under ``sub``; returns the parsers by name
    (the runtime adds ``compare --live`` to the compare parser)."""
    t = sub.add_parser(
        "train",
        help="train an RL agent on a platform model, then compare it",
        description="Train an SB3 agent offline on a platform model and compare it with the baselines on held-out seeds.",
    )
    add_train_arguments(t)

    c = sub.add_parser(
        "compare",
        help="compare trained policies with the baselines (in simulation, or --live on this board)",
        description="Evaluate policies (run folders or policy.npz files) and the baselines on the same held-out episodes.",
    )
    c.add_argument("--platform", default="xu3")
    c.add_argument("--agents", nargs="*", default=[], metavar="RUN_DIR_OR_POLICY")
    c.add_argument(
        "--baselines",
        nargs="*",
        metavar="NAME",
        help=f"subset of: {' '.join(CONTROLLERS)} (default: all; --live: greedy)",
    )
    src = c.add_mutually_exclusive_group()
    src.add_argument("--traces", help="folder of trace CSVs to replay (one episode each)")
    src.add_argument("--scenario", default=None, help="scenario preset (default: default)")
    c.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1000-1019"))
    c.add_argument("--episode-length", type=positive_int, default=1000)
    add_objective_arguments(c, "default: the first agent's own, else accuracy")
    c.add_argument("--no-noise", action="store_true", help="evaluate on the noise-free model")
    c.add_argument("--json", action="store_true")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    c.add_argument("--plot", help="write the trade-off plot (PNG)")
    c.set_defaults(func=run_compare)

    e = sub.add_parser(
        "export",
        help="export a run's policy as numpy arrays + JSON for the board",
        description="Write the policy network of RUN_DIR/model.zip as .npz + .json (numpy-only inference).",
    )
    e.add_argument("run_dir")
    e.add_argument("--out", help="policy file (default: RUN_DIR/policy.npz)")
    e.set_defaults(func=run_export)
    add_sweep_commands(sub)
    return {"train": t, "compare": c, "export": e}


def add_sweep_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``sweep`` and ``report``."""
    s = sub.add_parser(
        "sweep",
        help="train many agents (a grid over boards, scenarios, objectives, algorithms, seeds; and/or a search) on Optuna",
        description="Run a sweep file's trials on an Optuna study that any number of workers, on any machines, share.",
    )
    s.add_argument("sweep_file", metavar="SWEEP.yaml")
    s.add_argument("--out", help="sweep folder: trial run folders, sweep.yaml, the embedded storage (default: runs/sweeps/NAME)")
    s.add_argument("--storage", help="Optuna storage URL shared by workers (default: sqlite:///OUT/optuna.db)")
    s.add_argument("--workers", type=positive_int, help="worker processes on this machine (default: one per core)")
    s.set_defaults(func=run_sweep)

    r = sub.add_parser(
        "report",
        help="a sweep's results over seeds: interquartile mean and 95%% bootstrap CI per controller",
        description="Summarise a sweep's completed trials per platform, objective, algorithm and controller.",
    )
    r.add_argument("sweep_dir", metavar="SWEEP_DIR")
    r.add_argument("--storage", help="the sweep's storage URL (default: sqlite:///SWEEP_DIR/optuna.db)")
    r.add_argument("--json", action="store_true")
    r.add_argument("--plot", help="write the bar chart with CI error bars (PNG)")
    r.set_defaults(func=run_report)


def run_sweep(args: argparse.Namespace) -> int:
    """``dynscale sweep``: write the resolved sweep into its folder, run the workers, summarise."""
    import os

    from agents.sweep import default_storage, load_sweep, load_written_spec, run_workers, write_spec

    spec = load_sweep(args.sweep_file)
    out = Path(args.out or f"runs/sweeps/{spec.name}")
    check_outputs(
        {"--out (sweep.yaml)": out / "sweep.yaml"}, {"SWEEP.yaml": args.sweep_file, "train.hyperparams": spec.hyperparams}
    )
    if (out / "sweep.yaml").is_file() and load_written_spec(out) != spec:
        raise UsageError(f"--out {out}: holds a different sweep; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_spec(spec, out)
    storage = args.storage or default_storage(out)
    workers = args.workers or os.cpu_count() or 1
    print(f"sweep {spec.name}: {workers} worker(s), storage {storage}, folder {out}", flush=True)
    summary = run_workers(spec, out, storage, workers, log=lambda line: print(line, flush=True))
    print(
        f"this machine: {len(summary.completed)} completed, {len(summary.pruned)} pruned, {len(summary.failed)} failed; "
        f"results: dynscale report {out}" + (f" --storage {args.storage}" if args.storage else "")
    )
    return 1 if summary.failed else 0


def run_report(args: argparse.Namespace) -> int:
    """``dynscale report``: IQM and 95% bootstrap CIs over seeds of a sweep's trials."""
    from agents.sweep import completed_evaluations, default_storage, load_written_spec
    from agents.sweep_report import format_table, plot, summarise, to_json

    spec = load_written_spec(args.sweep_dir)
    check_outputs({"--plot": args.plot}, {"SWEEP_DIR": Path(args.sweep_dir) / "sweep.yaml"})
    evaluations = completed_evaluations(spec, args.storage or default_storage(args.sweep_dir))
    if not evaluations:
        raise UsageError(f"{args.sweep_dir}: no completed trial yet")
    rows = summarise(evaluations)
    if args.plot:
        plot(rows, args.plot)
    print(to_json(rows) if args.json else format_table(rows))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``dynscale compare`` in simulation: every controller on the same episodes (or traces)."""
    from agents.compare import controllers_for, plot_tradeoff
    from agents.evaluate import compare
    from agents.numpy_policy import stored_reward
    from agents.report import Report
    from dnn.profile import load_dnn_profile
    from envs.dyndnn_env import DynDNNEnv

    inputs = {"--platform": args.platform, "--scenario": args.scenario, "--traces": args.traces, "--objective": args.objective}
    check_outputs({"--plot": args.plot}, [*inputs.items(), *(("--agents", a) for a in args.agents)])
    ctrls = controllers_for(args.agents, args.baselines)
    stored = stored_reward(args.agents[0]) if args.agents else None
    reward = reward_of_args(args, load_dnn_profile().column("top1").tolist(), stored)
    noise = not args.no_noise
    progress = not (args.json or args.quiet)
    if args.traces:
        files = sorted(Path(args.traces).glob("*.csv"))
        if not files:
            raise UsageError(f"--traces {args.traces}: no .csv files there")
        reports = []
        for f in files:
            env = DynDNNEnv(platform=args.platform, scenario=str(f), episode_length=None, noise=noise, reward=reward)
            reports.append((f, compare(lambda env=env: env, ctrls, [0], progress=progress)[0]))
        report = Report.merge(reports)
    else:
        scenario = args.scenario or "default"
        env = DynDNNEnv(platform=args.platform, scenario=scenario, episode_length=args.episode_length, noise=noise, reward=reward)
        report, _ = compare(lambda: env, ctrls, args.seeds, progress=progress)
    if args.plot:
        plot_tradeoff(report, args.plot)
    print(json_text(report.to_dict()) if args.json else report.format())
    return 0


def run_export(args: argparse.Namespace) -> int:
    from agents.export import export_policy
    from agents.numpy_policy import PolicyFileError, check_run_complete, policy_paths
    from agents.train import RunConfig, make_env_kwargs
    from envs.dyndnn_env import DynDNNEnv

    run = Path(args.run_dir)
    check_run_complete(run)
    cfg_path, model_path = run / "config.yaml", run / "model.zip"
    for f in (cfg_path, model_path):
        if not f.is_file():
            raise PolicyFileError(f"{f}: missing (is {run} a run folder of dynscale train?)")
    out = Path(args.out) if args.out else run / "policy"
    npz, meta = policy_paths(out)
    check_outputs({"--out": npz, "--out (metadata)": meta}, {"RUN_DIR config": cfg_path, "RUN_DIR model": model_path})
    try:
        cfg = RunConfig(**read_yaml(cfg_path, PolicyFileError, "run configuration"))
    except TypeError as exc:
        raise PolicyFileError(f"{cfg_path}: not a run configuration ({' '.join(str(exc).split())})") from None
    if cfg.algo not in ALGOS:
        raise PolicyFileError(f"{cfg_path}: field 'algo': {cfg.algo!r} is none of {', '.join(ALGOS)}")
    model = ALGOS[cfg.algo].load(model_path)
    env = DynDNNEnv(**make_env_kwargs(cfg))
    try:
        npz, meta = export_policy(model, env, out, name=f"{cfg.algo}-{Path(cfg.platform).stem}")
    except PolicyFileError as exc:  # a policy this env cannot describe (an observation grown since it was trained)
        raise PolicyFileError(f"{model_path}: {exc}") from None
    print(f"wrote {npz} and {meta}")
    return 0


def train_agent_main(argv: list[str] | None = None) -> int:
    """``python train_agent.py ...``: the same as ``dynscale train ...``."""
    p = OneLineParser(
        prog="train_agent.py",
        description="Train an RL agent on a platform model, then compare it with greedy, oracle and fixed baselines.",
    )
    add_train_arguments(p)
    args = parse_or_exit_code(p, argv)
    return args if isinstance(args, int) else run_command(args, prog="train_agent.py")


if __name__ == "__main__":
    sys.exit(train_agent_main())
