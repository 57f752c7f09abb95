"""Command lines of the live runtime: ``board info``, ``profile``, ``deploy`` and the live half of
``compare`` (``compare --live``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents.controllers import CONTROLLERS
from dnn.backends import BACKENDS, check_backend_flags
from dnn.errors import UsageError, finite_float, nonnegative_int, positive_int
from dnn.fileio import check_outputs, json_text
from envs.cli import add_objective_arguments
from runtime.interleave import DEFAULT_BLOCK
from runtime.profiler import DEFAULT_PERIOD_MS


def add_commands(sub: argparse._SubParsersAction, compare: argparse.ArgumentParser) -> None:
    """Register ``board info``, ``profile``, ``deploy`` and ``bundle`` under ``sub`` and add ``--live`` to the
    ``compare`` parser of :mod:`agents.cli`."""
    add_board_commands(sub)
    bu = sub.add_parser(
        "bundle",
        help="pack a policy, the exported DNN (ONNX or ncnn) and the board profile for a board without torch",
        description="Write a folder a board installs with numpy, PyYAML and the DNN runtime (onnxruntime or ncnn) only and runs the policy from "
        "(./dynscale-board deploy ...): the exported policy, the DNN's export, the board's profile (measured with "
        "--backend onnx or ncnn on that export), the live runtime's source and requirements.txt. Without RUN and --platform: "
        "a profiling kit (the export, the source, requirements-profile.txt) to run ./dynscale-board profile on the board.",
    )
    bu.add_argument("run", nargs="?", help="run folder (or policy .npz) of the policy to deploy (leave out for a profiling kit)")
    bu.add_argument("--platform", help="the board's profile, from dynscale profile --backend onnx|ncnn --export DIR (with RUN)")
    bu.add_argument("--export", required=True, help="the export folder the board was (or is to be) profiled with")
    bu.add_argument("--out", required=True, help="bundle folder to create (must not exist)")
    bu.set_defaults(func=run_bundle)

    live = compare.add_argument_group(
        "live comparison (--live): the controllers take turns on this board, in blocks of the same requests"
    )
    live.add_argument("--live", action="store_true", help="run live on this board instead of in simulation")
    live.add_argument(
        "--block",
        type=positive_int,
        default=DEFAULT_BLOCK,
        help=f"requests per turn of each controller (default: {DEFAULT_BLOCK})",
    )
    live.add_argument("--log-dir", help="folder for one JSON-lines log per controller (default: runs/live)")
    _add_live_arguments(live, budgets_required=False)
    simulated = compare.get_default("func")
    compare.set_defaults(func=lambda args: run_compare_live(args) if args.live else simulated(args))


def _sysfs_root(value: str) -> str:
    """``--root``: an existing folder (a typo must not read as a board with no units)."""
    if not Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value}: {'is not a folder' if Path(value).exists() else 'no such folder'}")
    return value


def _add_live_arguments(p, budgets_required: bool) -> None:
    """The flags ``deploy`` and ``compare --live`` share."""
    p.add_argument("--budgets", required=budgets_required, help="budget trace CSV (dynscale env record)")
    p.add_argument("--load", help="load schedule CSV (t_s, unit, threads, mem_intensity)")
    p.add_argument(
        "--load-repeat-s",
        type=finite_float(positive=True),
        help="repeat the load schedule every this many seconds (default: its last rows hold to the end)",
    )
    p.add_argument(
        "--duration",
        type=finite_float(positive=True),
        help="seconds per run (the trace repeats); default: one pass of the trace",
    )
    p.add_argument("--allow-dvfs", action="store_true", help="let the runtime set frequencies (needs root)")
    _add_backend_arguments(p, "the one the profile was measured with")
    p.add_argument("--data", help="CIFAR-10 whose test images are classified (default: a random image)")
    p.add_argument("--root", type=_sysfs_root, default="/", help="sysfs root (default: /; a fake tree for tests)")


def add_board_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``board info``, ``deploy`` and ``profile``: what a board runs, here and from a bundle
    (:mod:`runtime.board_cli`; profiling there also needs SciPy)."""
    b = sub.add_parser(
        "board",
        help="this machine as a live board",
        description="What the machine offers: units, DVFS control, power sensors, thermal zones.",
    )
    bsub = b.add_subparsers(dest="board_command", required=True, metavar="COMMAND")
    i = bsub.add_parser("info", help="units, cores, DVFS control (yes/no, why), sensors, thermal zones")
    i.add_argument("--root", type=_sysfs_root, default="/", help="sysfs root (default: /; a fake tree for tests)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_board_info)

    live_names = [n for n, c in CONTROLLERS.items() if not c.simulation_only]
    d = sub.add_parser(
        "deploy",
        help="run a policy or a baseline live on this board",
        description="Drive real inference of the dynamic DNN on this board with a controller, request by request, "
        "against a budget trace (and a load schedule); log one JSON line per request and print the metrics.",
    )
    d.add_argument("--controller", required=True, help=f"policy .npz, a run folder, or one of: {', '.join(live_names)}")
    d.add_argument("--platform", required=True, help="the board's platform profile (dynscale profile --out board.yaml)")
    d.add_argument("--log", required=True, help="JSON-lines log, one line per request")
    d.add_argument("--json", action="store_true", help="print the metrics as JSON")
    d.add_argument("--quiet", action="store_true", help="no progress output")
    add_objective_arguments(d, "default: a policy's own, else accuracy")
    _add_live_arguments(d, budgets_required=True)
    d.set_defaults(func=run_deploy)

    pr = sub.add_parser(
        "profile",
        help="measure every configuration on this board into a platform profile",
        description="Run the dynamic DNN on real CIFAR-10 images for every configuration this board offers "
        "(groups x unit x cores x frequency) and write a platform profile YAML that train_agent.py --platform trains on.",
    )
    pr.add_argument("--out", required=True, help="platform profile YAML to write (e.g. board.yaml)")
    pr.add_argument("--data", required=True, help="CIFAR-10 (python batches, class folders, or their tar.gz)")
    pr.add_argument("--weights", help="weight file (default: the shipped weights)")
    pr.add_argument(
        "--repeats", type=positive_int, default=40, help="timed inferences per configuration (default: 40, at least 3)"
    )
    pr.add_argument("--warmup", type=nonnegative_int, default=4, help="untimed inferences before them (default: 4, at least 0)")
    pr.add_argument(
        "--period-ms",
        type=finite_float(positive=True),
        default=DEFAULT_PERIOD_MS,
        help=f"time from one profiled request to the next, as deploy paces a trace (default: {DEFAULT_PERIOD_MS:g})",
    )
    _add_backend_arguments(pr, "deploy must then use the same")
    pr.add_argument("--allow-dvfs", action="store_true", help="set frequencies (needs root); without it the current clock only")
    pr.add_argument("--name", default="board", help="platform name in the profile (default: board)")
    pr.add_argument("--cuda", action="store_true", help="profile the CUDA GPU as a unit too")
    pr.add_argument("--allow-busy", action="store_true", help="profile even if background load is found")
    pr.add_argument("--root", type=_sysfs_root, default="/", help="sysfs root (default: /; a fake tree for tests)")
    pr.add_argument("--json", action="store_true", help="print the profile as JSON")
    pr.add_argument("--quiet", action="store_true", help="no progress output")
    pr.set_defaults(func=run_profile)


def _add_backend_arguments(p: argparse.ArgumentParser, which: str) -> None:
    """``--backend`` and ``--export``: the runtime that runs the DNN (profile, deploy, compare --live)."""
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help=f"runtime that runs the DNN: torch (default), onnx (ONNX Runtime) or ncnn (CPU units; both need --export); {which}",
    )
    p.add_argument("--export", metavar="DIR", help="export folder of `dynscale dnn export` (with --backend onnx or ncnn)")


def run_board_info(args: argparse.Namespace) -> int:
    from runtime.info import board_info
    from runtime.sysfs import Sysfs

    info = board_info(Sysfs(args.root))
    if args.json:
        print(json_text(info))
        return 0
    for u in info["units"]:
        freqs = (
            f"{len(u['freqs_mhz'])} DVFS points {u['freqs_mhz'][0]:g}-{u['freqs_mhz'][-1]:g} MHz"
            if u["freqs_mhz"]
            else "no DVFS table"
        )
        cpus = f" cpus {','.join(map(str, u['cpus']))}" if u.get("cpus") else ""
        control = "DVFS control: yes" if u["dvfs_control"] else f"DVFS control: no ({u['why_not']})"
        print(f"{u['name']} ({u['kind']}{cpus}): {freqs}; {control}")
    rails = ", ".join(f"{k} ({v})" for k, v in info["power_rails"].items())
    print(f"power: {rails or info['power']}")
    counters = ", ".join(f"{k} ({v})" for k, v in info["energy_counters"].items())
    print(f"energy counters (RAPL): {counters or 'none'}")
    nvml = info["nvml"]
    print(f"GPU power (NVML): {', '.join(nvml) if isinstance(nvml, list) else nvml}")
    print(f"CPU clusters (topology): {'; '.join(','.join(map(str, c)) for c in info['cpu_clusters'])}")
    print(f"thermal zones: {', '.join(info['thermal_zones']) or 'none'}")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    from dnn.profile import load_dnn_profile
    from hwmodels.config import ConfigSpace
    from hwmodels.profile import parse_platform
    from runtime.profiler import IDENTICAL_CORES_TOLERANCE, profile_board
    from runtime.sysfs import Sysfs

    check_backend_flags(args.backend, args.export)
    check_outputs({"--out": args.out}, {"--data": args.data, "--weights": args.weights, "--export": args.export})
    t0 = time.perf_counter()
    doc = profile_board(
        args.out,
        args.data,
        weights=args.weights,
        repeats=args.repeats,
        warmup=args.warmup,
        period_ms=args.period_ms,
        allow_dvfs=args.allow_dvfs,
        name=args.name,
        fs=Sysfs(args.root),
        cuda=args.cuda,
        allow_busy=args.allow_busy,
        progress=not (args.json or args.quiet),
        backend=args.backend,
        export=args.export,
    )
    if args.json:
        print(json_text(doc))
        return 0
    space = ConfigSpace(parse_platform(doc, args.out), load_dnn_profile().max_groups)
    m = doc["measured"]
    print(f"{'#':>3} {'configuration':<28} {'median ms':>9} {'95% CI of median':>17} {'p90 ms':>8} {'power W':>8}")
    for i in range(len(space)):
        p = m["power_w"][i]
        lo, hi = m["latency_ci_ms"][i]
        print(
            f"{i:>3} {space.decode(i)!s:<28} {m['latency_ms'][i]:>9.3f} {f'{lo:.3f}-{hi:.3f}':>17} "
            f"{m['latency_p90_ms'][i]:>8.3f} {'est.' if p is None else f'{p:.3f}':>8}"
        )
    for check in m["cores"]:
        worst = max(check["spread"])
        verdict = (
            "agree" if worst <= IDENTICAL_CORES_TOLERANCE else "DISAGREE (a noisy machine: more --repeats, or stop other work)"
        )
        spreads = " ".join(f"k={k} {x:.1%}" for k, x in enumerate(check["spread"], start=1))
        print(
            f"\nidentical cores of {check['unit']} (cpus {', '.join(map(str, check['cpus']))}): {verdict}; spread of medians {spreads}"
        )
    it = doc["interference"]
    if m["co_runners"]:
        print(
            f"interference fitted beside the load generator: mem_slowdown {it['mem_slowdown']:g}, "
            f"barrier_slowdown {it['barrier_slowdown']:g}, wake_credit_ms {it['wake_credit_ms']:g}, "
            f"thread_wait_ms {it.get('thread_wait_ms', 0):g}, preempt_share {it.get('preempt_share', 1):g}, "
            f"quantum_ms {it['quantum_ms']:g} (co-runners preempt in quanta; {m['preemption']['preemptions']} seen by the probe)"
        )
        aligned = f"{m['preemption'].get('aligned', 0):.0%} of the probe's gaps ended at one phase"
        if it.get("tick_hz"):
            print(
                f"scheduler ticks: a {it['tick_hz']} Hz grid ({aligned}); deploy reads each request's phase at the wake "
                "(controllers' wait predictions use it) and logs it"
            )
        else:
            print(f"scheduler ticks: no grid found (at most {aligned}); deploy logs no tick_phase_ms")
    else:
        print("interference: plain fair share (no CPU unit with two or more CPUs to run co-runners beside the DNN)")
    power = "estimated (no sensor)" if m["power_is_estimate"] else "measured"
    print(f"\n{len(space)} configurations in {time.perf_counter() - t0:.0f} s; power {power}; wrote {args.out}")
    return 0


def _run_live(args: argparse.Namespace, runs: list[tuple[str, str, Path]], log_note: str) -> int:
    """Deploy one controller, or run several in turns on the same trace and schedule (compare --live); one table."""
    from runtime.interleave import compare_interleaved
    from runtime.session import deploy, live_report
    from runtime.sysfs import Sysfs

    if args.load_repeat_s is not None and not args.load:
        raise UsageError("--load-repeat-s repeats a --load schedule; give --load SCHEDULE.csv")
    check_backend_flags(args.backend, args.export)
    flag = "--controller" if args.func is run_deploy else "--agents"
    inputs = [("--platform", args.platform), ("--budgets", args.budgets), ("--load", args.load), ("--data", args.data)]
    inputs += [("--objective", args.objective), ("--export", args.export)]
    inputs += [(flag, c) for c, _, _ in runs if Path(c).exists()]
    check_outputs([("--log" if args.func is run_deploy else "--log-dir", log) for _, _, log in runs], inputs)
    common = dict(
        duration_s=args.duration,
        progress=not (args.json or args.quiet),
        load=args.load,
        load_repeat_s=args.load_repeat_s,
        allow_dvfs=args.allow_dvfs,
        data=args.data,
        fs=Sysfs(args.root),
        objective=args.objective,
        min_accuracy=args.min_accuracy,
        backend=args.backend,
        export=args.export,
    )
    if args.func is run_deploy:
        [(controller, _, log)] = runs
        done = [deploy(controller, args.platform, args.budgets, log, **common)]
    else:
        done = compare_interleaved(runs, args.platform, args.budgets, block=args.block, **common)
    report = live_report(done, Path(args.platform).stem, args.budgets, args.load, done[0].objective)
    print(json_text(report.to_dict()) if args.json else f"{report.format()}\n{log_note}")
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    from runtime.bundle import make_bundle

    info = make_bundle(args.run, args.platform, args.export, args.out)
    if "deploy" in info:
        print(f"wrote {args.out}: install with pip install -r {args.out}/requirements.txt; run {info['deploy']} (in {args.out})")
    else:
        print(f"wrote {args.out} (a profiling kit): on the board, in {args.out}, run {info['profile']}")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    return _run_live(args, [(args.controller, "", Path(args.log))], f"log: {args.log}")


def run_compare_live(args: argparse.Namespace) -> int:
    from agents.compare import agent_name

    if not args.budgets:
        raise UsageError("--live needs --budgets TRACE.csv")
    if args.traces or args.scenario:
        raise UsageError("--live replays one --budgets trace; --traces and --scenario are for simulation")
    log_dir = Path(args.log_dir or "runs/live")
    runs = []
    for name in list(args.agents) + (args.baselines if args.baselines is not None else ["greedy"]):
        label = agent_name(name) if Path(name).exists() else name
        runs.append((name, label, log_dir / f"{label.replace('agent:', '')}.jsonl"))
    return _run_live(args, runs, f"logs: {args.log_dir or 'runs/live'}")
