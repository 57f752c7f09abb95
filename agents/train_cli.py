"""Command lines of the agents package: ``train`` (also ``train_agent.py``), ``compare``, ``export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from envs.cli import parse_seeds


class UsageError(ValueError):
    """Flags that contradict each other or name nothing (reported in one line, exit code 2)."""


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", default="xu3", help="xu3, nano, or a platform profile YAML (default: xu3)")
    p.add_argument("--algo", default="ppo", choices=("ppo", "maskable_ppo", "a2c", "dqn"))
    p.add_argument("--scenario", help="scenario preset or YAML (default: the hyperparameter file's env_kwargs.scenario)")
    p.add_argument("--timesteps", type=int, help="training steps (default: n_timesteps of the hyperparameter file)")
    p.add_argument("--n-envs", type=int, help="parallel envs (default: n_envs of the hyperparameter file)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hyperparams", help="rl-zoo style YAML (default: agents/hyperparams/ALGO.yml)")
    p.add_argument("--out", help="run folder (default: runs/ALGO-PLATFORM-sSEED)")
    p.add_argument("--tensorboard", help="TensorBoard log folder")
    p.add_argument(
        "--eval-seeds",
        type=parse_seeds,
        default=parse_seeds("1000-1019"),
        help="held-out test seeds of the final comparison (default: 1000-1019)",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from agents.evaluate import format_report
    from agents.train import VALIDATION_SEEDS, RunConfig, train

    if any(s in VALIDATION_SEEDS for s in args.eval_seeds):
        raise UsageError(f"--eval-seeds overlap the validation seeds {VALIDATION_SEEDS[0]}-{VALIDATION_SEEDS[-1]}")
    name = Path(args.platform).stem
    out = args.out or f"runs/{args.algo}-{name}-s{args.seed}"
    cfg = RunConfig(
        platform=args.platform,
        algo=args.algo,
        scenario=args.scenario,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
        seed=args.seed,
        eval_seeds=args.eval_seeds,
    )
    report = train(cfg, out, hyperparams_path=args.hyperparams, tensorboard=args.tensorboard, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        print(f"\ntrained {report['training']['timesteps']:,} steps in {report['training']['seconds']:.0f} s; run folder: {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``train``, ``compare`` and ``export`` under ``sub``."""
    t = sub.add_parser(
        "train",
        help="train an RL agent on a platform model, then compare it",
        description="Train an SB3 agent offline on a platform model and compare it with the baselines on held-out seeds.",
    )
    add_train_arguments(t)

    c = sub.add_parser(
        "compare",
        help="compare trained policies with greedy, oracle and fixed baselines",
        description="Evaluate policies (run folders or policy.npz files) and the baselines on the same held-out episodes.",
    )
    c.add_argument("--platform", default="xu3")
    c.add_argument("--agents", nargs="*", default=[], metavar="RUN_DIR_OR_POLICY")
    c.add_argument(
        "--baselines",
        nargs="*",
        help="subset of: oracle greedy random fixed-max-accuracy fixed-min-energy (default: all); live: greedy random fixed-max (default: greedy)",
    )
    src = c.add_mutually_exclusive_group()
    src.add_argument("--traces", help="folder of trace CSVs to replay (one episode each)")
    src.add_argument("--scenario", default=None, help="scenario preset (default: default)")
    c.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1000-1019"))
    c.add_argument("--episode-length", type=int, default=1000)
    c.add_argument("--no-noise", action="store_true", help="evaluate on the noise-free model")
    c.add_argument("--json", action="store_true")
    c.add_argument("--plot", help="write the trade-off plot (PNG)")
    live = c.add_argument_group("live comparison (--live): the controllers run one after the other on this board")
    live.add_argument("--live", action="store_true", help="run live on this board instead of in simulation")
    live.add_argument("--log-dir", help="folder for one JSON-lines log per controller (default: runs/live)")
    _add_live_arguments(live, budgets_required=False)
    c.set_defaults(func=run_compare)

    d = sub.add_parser(
        "deploy",
        help="run a policy or a baseline live on this board",
        description="Drive real inference of the dynamic DNN on this board with a controller, request by request, "
        "against a budget trace (and a load schedule); log one JSON line per request and print the metrics.",
    )
    d.add_argument("--controller", required=True, help="policy .npz, a run folder, greedy, random or fixed-max")
    d.add_argument("--platform", required=True, help="the board's platform profile (dynscale profile --out board.yaml)")
    d.add_argument("--log", required=True, help="JSON-lines log, one line per request")
    d.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_live_arguments(d, budgets_required=True)
    d.set_defaults(func=run_deploy)

    e = sub.add_parser(
        "export",
        help="export a run's policy as numpy arrays + JSON for the board",
        description="Write the policy network of RUN_DIR/model.zip as .npz + .json (numpy-only inference).",
    )
    e.add_argument("run_dir")
    e.add_argument("--out", help="policy file (default: RUN_DIR/policy.npz)")
    e.set_defaults(func=run_export)


def _add_live_arguments(p, budgets_required: bool) -> None:
    """The flags ``deploy`` and ``compare --live`` share."""
    p.add_argument("--budgets", required=budgets_required, help="budget trace CSV (dynscale env record)")
    p.add_argument("--load", help="load schedule CSV (t_s, unit, threads, mem_intensity)")
    p.add_argument("--duration", type=float, help="seconds per run (the trace repeats); default: one pass of the trace")
    p.add_argument("--allow-dvfs", action="store_true", help="let the runtime set frequencies (needs root)")
    p.add_argument("--data", help="CIFAR-10 whose test images are classified (default: a random image)")
    p.add_argument("--root", default="/", help="sysfs root (default: /; a fake tree for tests)")


def _run_live(args: argparse.Namespace, runs: list[tuple[str, str, Path]], log_note: str) -> int:
    """Deploy each (controller, label, log) in turn on the same trace and schedule; one table."""
    from agents.deploy import deploy, format_live_extras, live_report
    from agents.evaluate import format_report
    from hwmodels.live import Sysfs

    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    done = []
    for controller, label, log in runs:
        run = deploy(
            controller,
            args.platform,
            args.budgets,
            log,
            load=args.load,
            duration_s=args.duration,
            allow_dvfs=args.allow_dvfs,
            data=args.data,
            fs=Sysfs(args.root),
            progress=not args.json,
        )
        run.controller = label or run.controller
        done.append(run)
    report = live_report(done, Path(args.platform).stem, args.budgets, args.load)
    print(json.dumps(report, indent=2) if args.json else f"{format_report(report)}\n{format_live_extras(report)}\n{log_note}")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    return _run_live(args, [(args.controller, "", Path(args.log))], f"log: {args.log}")


def run_compare_live(args: argparse.Namespace) -> int:
    if not args.budgets:
        raise UsageError("--live needs --budgets TRACE.csv")
    if args.traces or args.scenario:
        raise UsageError("--live replays one --budgets trace; --traces and --scenario are for simulation")
    from agents.compare import agent_name

    log_dir = Path(args.log_dir or "runs/live")
    runs = []
    for name in list(args.agents) + (args.baselines if args.baselines is not None else ["greedy"]):
        label = agent_name(name) if Path(name).exists() else name
        runs.append((name, label, log_dir / f"{label.replace('agent:', '')}.jsonl"))
    return _run_live(args, runs, f"logs: {log_dir}")


def run_compare(args: argparse.Namespace) -> int:
    from agents.compare import controllers_for, plot_tradeoff

    if args.live:
        return run_compare_live(args)
    from agents.evaluate import compare, format_report
    from envs.dyndnn_env import DynDNNEnv

    ctrls = controllers_for(args.agents, args.baselines)
    noise = not args.no_noise
    if args.traces:
        files = sorted(Path(args.traces).glob("*.csv"))
        if not files:
            raise UsageError(f"--traces {args.traces}: no .csv files there")
        reports = []
        for f in files:
            r, _ = compare(
                lambda f=f: DynDNNEnv(platform=args.platform, scenario=str(f), episode_length=None, noise=noise),
                ctrls,
                [0],
                progress=not args.json,
            )
            reports.append((f, r))
        report = _merge(reports)
    else:
        report, _ = compare(
            lambda: DynDNNEnv(
                platform=args.platform, scenario=args.scenario or "default", episode_length=args.episode_length, noise=noise
            ),
            ctrls,
            args.seeds,
            progress=not args.json,
        )
    if args.plot:
        plot_tradeoff(report, args.plot)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _merge(reports: list) -> dict:
    """One report over several replayed traces: metrics weighted by requests."""
    from agents.evaluate import fill_oracle_gap

    total = sum(r["requests"] for _, r in reports)
    first = reports[0][1]
    merged = {
        "platform": first["platform"],
        "scenario": f"{len(reports)} traces",
        "seeds": [],
        "requests": total,
        "noise": first["noise"],
        "traces": [str(f) for f, _ in reports],
        "controllers": {},
    }
    for name in first["controllers"]:
        m = {}
        for key in first["controllers"][name]:
            vals = [(r["controllers"][name][key], r["requests"]) for _, r in reports]
            m[key] = None if any(v is None for v, _ in vals) else sum(v * n for v, n in vals) / total
        merged["controllers"][name] = m
    fill_oracle_gap(merged["controllers"])  # recomputed from the merged rewards, not averaged
    return merged


def run_export(args: argparse.Namespace) -> int:
    import yaml

    from agents.export import export_policy
    from agents.numpy_policy import PolicyFileError
    from agents.train import RunConfig, make_env_kwargs
    from envs.dyndnn_env import DynDNNEnv

    run = Path(args.run_dir)
    cfg_path, model_path = run / "config.yaml", run / "model.zip"
    for f in (cfg_path, model_path):
        if not f.is_file():
            raise PolicyFileError(f"{f}: missing (is {run} a run folder of dynscale train?)")
    cfg = RunConfig(**yaml.safe_load(cfg_path.read_text()))
    model = _load_model(cfg.algo, model_path)
    npz, meta = export_policy(
        model, DynDNNEnv(**make_env_kwargs(cfg)), args.out or run / "policy", name=f"{cfg.algo}-{Path(cfg.platform).stem}"
    )
    print(f"wrote {npz} and {meta}")
    return 0


def _load_model(algo: str, path: Path):
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(path, device="cpu")
    from stable_baselines3 import A2C, DQN, PPO

    return {"ppo": PPO, "a2c": A2C, "dqn": DQN}[algo].load(path, device="cpu")


def train_agent_main(argv: list[str] | None = None) -> int:
    """``python train_agent.py ...``: the same as ``dynscale train ...``."""
    from agents.cli import run_with_errors

    p = argparse.ArgumentParser(
        prog="train_agent.py",
        description="Train an RL agent on a platform model, then compare it with greedy, oracle and fixed baselines.",
    )
    add_train_arguments(p)
    return run_with_errors(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(train_agent_main())
