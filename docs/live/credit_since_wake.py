"""How often a one-core run beside one busy thread per CPU waits a scheduler quantum, with CPU work
(a busy loop) between the loop's wake and the inference, or after it: does the wake-up credit
count from the wake or from the inference? Requests are paced and run as the profiler runs them
(sample the load, apply the configuration, infer), the same configuration over and over; a run
waited when it took 1.5 ms more than the first quartile. Needs an idle board; about 7 s per row.

    python docs/live/credit_since_wake.py --export runs/onnx --data ../shared/data/cifar10-jpg.tar.gz
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from quanta_split import MARGIN_MS  # a run this far above its row's first quartile waited

from runtime.loadgen import LoadGenerator, LoadSchedule, LoadStep


def spin(ms: float) -> None:
    """Busy the calling thread for ``ms`` milliseconds (the work a controller does, without sleeping)."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def waited_share(board, runner, groups: int, before_ms: float, after_ms: float, requests: int, period_s: float) -> float:
    """The share of ``requests`` paced runs of ``groups`` groups on one core that waited a quantum."""
    unit = board.units[0]
    latencies, due = [], time.perf_counter()
    for _ in range(requests + 4):  # the first four: the new row's warm-up
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        due = max(due + period_s, time.perf_counter())
        board.sample_load()
        board.apply(0, 1, float(max(unit.freqs_mhz)), board.freqs_mhz()[0])
        runner.set_threads(1)
        spin(before_ms)
        ms, _ = runner.infer(groups)
        spin(after_ms)
        latencies.append(ms)
    x = np.asarray(latencies[4:])
    return float(np.mean(x > np.percentile(x, 25) + MARGIN_MS))


def main() -> None:
    from dnn.backends import make_runner
    from dnn.data import load_cifar10
    from dnn.errors import UserError
    from runtime.profiler import _open_board
    from runtime.sysfs import Sysfs, restore_on_exit

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--export", required=True, help="the export folder (dynscale dnn export)")
    ap.add_argument("--data", required=True, help="CIFAR-10 (the archive or its folder)")
    ap.add_argument("--groups", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--before", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="ms of work before the inference")
    ap.add_argument("--after", type=float, nargs="+", default=[1.0, 3.0], help="ms of work after it (none before)")
    ap.add_argument("--requests", type=int, default=200, help="runs per row")
    ap.add_argument("--period-ms", type=float, default=33.3)
    args = ap.parse_args()
    try:
        cifar = load_cifar10(args.data)
        runner = make_runner(args.backend, "cpu", cifar.test_x, cifar.test_y, None, args.export)
        board = _open_board(Sysfs("/"), False, False)
    except UserError as e:
        ap.exit(2, f"{ap.prog}: {e}\n")
    bad = [k for k in args.groups if not 1 <= k <= runner.groups]
    if bad:
        ap.error(f"--groups: {bad[0]} is not a group count of the export (1..{runner.groups})")
    finish = restore_on_exit(board)
    unit = board.units[0]
    rows = [(b, 0.0) for b in args.before] + [(0.0, a) for a in args.after]
    print(
        f"{'k':>2} {'work before ms':>15} {'work after ms':>14} {'waited':>7}  ({args.requests} runs each, {len(unit.cpus)} busy threads)"
    )
    try:
        with LoadGenerator(LoadSchedule((LoadStep(0.0, unit.name, len(unit.cpus), 0.0),)), {unit.name: unit.cpus}):
            time.sleep(0.5)  # the load monitor's window sees the workers
            for k in args.groups:
                for before, after in rows:
                    share = waited_share(board, runner, k, before, after, args.requests, args.period_ms / 1e3)
                    print(f"{k:>2} {before:>15.1f} {after:>14.1f} {share:>7.0%}", flush=True)
    finally:
        finish()


if __name__ == "__main__":
    main()
