"""Whether a run that a co-runner could preempt was preempted, by how far into a scheduler tick it
started (``tick_phase_ms`` in a deploy log, logged where the profile found the tick grid).

Per generated load phase (threads and memory intensity), a request *waited* when it took 1.5 ms
or more over its unwaited run, which is also its run's length: over the cells of its (memory
intensity, k, cores) at each co-runner thread count, the fastest cell's unwaited run
(:func:`quanta_split.unwaited_ms`: the median of the runs within 1.5 ms of the cell's 5th
percentile), counting cells of :data:`MIN_CELL_RUNS` runs or more where there are any (a cell
where nearly every run waited, greedy's one-core k = 4 on torch beside two busy threads, has a
waited run for its own; a cell of two runs, one fast outlier). A run that ends before the next tick
cannot be preempted; one that crosses it may be. The table gives the share that waited among
the runs that crossed, by the time they had run when the first tick came (a long run may meet a
second one a period later: it counts in the first's column), and among those that did not.
With ``--from-wake`` that time counts from the loop's wake, ``awake_ms`` (its CPU time before the
inference: observing, deciding, applying) included, as the scheduler's wake-up credit does.
With ``--cells``, then per cell its median time awake before the inference, its unwaited run,
the share of its runs that waited and their median latency. Then the latency MAPE floor (:mod:`mape_floor`: the best constant per cell) beside the floor with
the start's tick phase (0.5 ms bins) in the cell: the best any model that knows the phase could do.

    python docs/live/preemption_by_phase.py --platform runs/board-onnx-t.yaml runs/live-onnx-t/*.jsonl
    python docs/live/preemption_by_phase.py --from-wake --platform runs/board-onnx-10.yaml runs/live-acc10/*.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import yaml
from mape_floor import mape_floor
from quanta_split import MARGIN_MS, unwaited_ms

#: edges (ms the run had when the first tick came) of the table's columns; the last column runs to the tick period
RAN_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
#: a cell of fewer runs sets a configuration's unwaited run only where no cell of it has as many
MIN_CELL_RUNS = 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", required=True, help="the profile the logs ran with (its interference.tick_hz)")
    ap.add_argument("--from-wake", action="store_true", help="count the time run from the wake, awake_ms included")
    ap.add_argument(
        "--cells", action="store_true", help="then each cell's time awake, unwaited run, share waited and waited runs' median"
    )
    ap.add_argument("logs", nargs="+", help="deploy logs (JSON lines) made with that profile")
    args = ap.parse_args()
    try:
        with open(args.platform) as f:
            hz = (yaml.safe_load(f) or {}).get("interference", {}).get("tick_hz", 0)
    except (OSError, yaml.YAMLError) as exc:
        ap.exit(2, f"{args.platform}: {exc}\n")
    if not hz:
        ap.exit(2, f"{args.platform}: interference.tick_hz is 0: the profiler saw no tick grid\n")
    period = 1e3 / hz
    lines = []
    for path in args.logs:
        try:
            with open(path) as f:
                lines += [r for r in map(json.loads, filter(str.strip, f)) if "tick_phase_ms" in r]
        except (OSError, ValueError) as exc:
            ap.exit(2, f"{path}: {exc}\n")
    if not lines:
        ap.exit(2, f"{', '.join(args.logs)}: no request logged tick_phase_ms (a profile with a tick grid, in this boot)\n")
    top = period + (max((r.get("awake_ms", 0.0) for r in lines), default=0.0) if args.from_wake else 0.0)
    edges = (*RAN_EDGES, max(top, RAN_EDGES[-1]) + 1e-9)
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in lines:
        cells[
            (
                json.dumps(r["load_generated"], sort_keys=True),
                json.dumps(r["mem_generated"], sort_keys=True),
                r["groups"],
                r["cores"],
            )
        ].append(r)
    runs: dict[tuple, tuple[bool, float]] = {}  # (memory intensity, k, cores) -> (too few runs, unwaited run)
    for (_, mem, k, cores), rs in cells.items():
        mine = (len(rs) < MIN_CELL_RUNS, unwaited_ms([r["latency_ms"] for r in rs]))
        runs[mem, k, cores] = min(runs.get((mem, k, cores), mine), mine)  # a large cell first, then the fastest
    rows: dict[str, list[tuple[float, bool, bool]]] = defaultdict(list)  # load -> (ran at tick, crossed, waited)
    for (load, mem, k, cores), rs in cells.items():
        run = runs[mem, k, cores][1]
        for r in rs:
            ran = period - r["tick_phase_ms"]
            before = r.get("awake_ms", 0.0) if args.from_wake else 0.0
            rows[f"{load} mem {mem}"].append((before + ran, run > ran, r["latency_ms"] >= run + MARGIN_MS))
    head = "  ".join(f"{a:g}-{b:.3g} ms" for a, b in zip(edges, edges[1:]))
    since = " since the wake" if args.from_wake else ""
    print(
        f"waited (share, requests) of runs that crossed a tick, by what they had run{since} when the first came: {head}; runs that did not cross"
    )
    for load, v in sorted(rows.items()):
        a = np.array(v, dtype=float)
        parts = []
        for lo, hi in zip(edges, edges[1:]):
            m = (a[:, 1] == 1) & (a[:, 0] >= lo) & (a[:, 0] < hi)
            parts.append(f"{a[m, 2].mean():5.0%} ({int(m.sum()):3d})" if m.any() else "    - (  0)")
        m = a[:, 1] == 0
        print(f"  {load:<28} " + "  ".join(parts) + (f" | {a[m, 2].mean():5.0%} ({int(m.sum())})" if m.any() else " | -"))
    if args.cells:
        print(
            f"{'cell (load, memory, k, cores)':<48} {'runs':>5} {'awake ms':>8} {'unwaited ms':>11} {'waited':>7} {'waited ms':>9}"
        )
        for (load, mem, k, cores), rs in sorted(cells.items()):
            run = runs[mem, k, cores][1]
            waited = [r["latency_ms"] for r in rs if r["latency_ms"] >= run + MARGIN_MS]
            median = f"{np.median(waited):9.2f}" if waited else f"{'-':>9}"
            awake = np.median([r.get("awake_ms", 0.0) for r in rs])
            print(
                f"  {load} {mem} k={k} c={cores}".ljust(48)
                + f" {len(rs):>5} {awake:>8.2f} {run:>11.2f} {len(waited) / len(rs):>7.0%} {median}"
            )
    with_phase = mape_floor(lines, lambda r: int(r["tick_phase_ms"] // 0.5))
    print(
        f"latency MAPE floor over {len(lines)} requests: {mape_floor(lines):.1%} per cell, {with_phase:.1%} knowing the tick phase"
    )


if __name__ == "__main__":
    main()
