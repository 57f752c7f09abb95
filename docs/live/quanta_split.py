"""Per (generated load, group count, cores) cell of deploy logs, the two modes of latency that
co-runners' scheduler quanta make: the share of requests within 1.5 ms of the cell's median and
the median of those, then the median of the rest (those that waited a quantum, or more) and the
gap between the two. With ``--by-slowdown`` the cells are also split by the memory co-runners'
intensity and by the online slow-down estimate the request was predicted with (bands of 0.1; the
two modes told apart by the median before that split): a quantum that stretched with the board
would show a gap that grows with the estimate.

    python docs/live/quanta_split.py runs/live-onnx/greedy.jsonl runs/live-onnx/model-predictive.jsonl
    python docs/live/quanta_split.py --by-slowdown runs/live-acc/greedy.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

#: a request this far above its cell's median waited for a co-runner (a quantum is ~4 ms here)
MARGIN_MS = 1.5
#: the percentile of a cell's latencies taken to be a run without a wait where the median may be a
#: waited one (:func:`unwaited_ms`)
UNWAITED_PERCENTILE = 5


def unwaited_ms(ms: list[float]) -> float:
    """A cell's run without a wait for a co-runner where most of its runs may have waited one
    (torch's one-core k = 1 beside two busy threads: 5.9 ms, against 1.9 ms unwaited): the
    median of its latencies within :data:`MARGIN_MS` of their :data:`UNWAITED_PERCENTILE`-th
    percentile. Where fewer than that share went unwaited it is a waited run (compare cells:
    ``preemption_by_phase.py`` takes the least over a configuration's load phases); in a cell of
    under 20 runs the percentile is the fastest run. This script's own split stays at the median,
    which the figures quoted from it used.

    :param ms: the cell's latencies
    :raises ValueError: for an empty cell
    """
    if not ms:
        raise ValueError("unwaited_ms: an empty cell has no run")
    ordered = sorted(ms)
    low = ordered[min(len(ordered) - 1, len(ordered) * UNWAITED_PERCENTILE // 100)]
    return statistics.median(x for x in ordered if x < low + MARGIN_MS)


def _cell(r: dict, by_slowdown: bool) -> tuple:
    key = (json.dumps(r["load_generated"], sort_keys=True), r["groups"], r["cores"])
    if not by_slowdown:
        return key
    return (*key, json.dumps(r["mem_generated"], sort_keys=True), f"{int(r['slowdown'] * 10) / 10:.1f}")


def main(paths: list[str], by_slowdown: bool = False) -> None:
    extra = f" {'memory':>12} {'slow-down':>9}" if by_slowdown else ""
    print(
        f"{'log':<40} {'load':>9} {'k':>2} {'cores':>5}{extra} {'requests':>8} {'near median':>11} {'ms':>6} {'rest ms':>8} {'gap':>6}"
    )
    for path in paths:
        cells: dict[tuple, list[float]] = defaultdict(list)
        with open(path) as f:
            for r in map(json.loads, filter(str.strip, f)):
                cells[_cell(r, by_slowdown)].append(r["latency_ms"])
        parents: dict[tuple, list[float]] = defaultdict(list)  # the modes are told apart in the cell before the slow-down split
        for key, ms in cells.items():
            parents[key[:4]] += ms
        for key, ms in sorted(cells.items()):
            if len(ms) < 10:
                continue
            median = statistics.median(parents[key[:4]])
            near = [x for x in ms if x < median + MARGIN_MS]
            rest = [x for x in ms if x >= median + MARGIN_MS]
            near_ms = statistics.median(near)
            rest_ms, gap = (f"{(r := statistics.median(rest)):.2f}", f"{r - near_ms:.2f}") if rest else ("-", "-")
            load, k, cores, *split = key
            extra = f" {split[0]:>12} {split[1]:>9}" if split else ""
            print(
                f"{path:<40} {load:>9} {k:>2} {cores:>5}{extra} {len(ms):>8} {len(near) / len(ms):>11.1%} {near_ms:>6.2f} {rest_ms:>8} {gap:>6}"
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--by-slowdown", action="store_true", help="split cells by memory co-runners and the slow-down estimate")
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()
    main(args.logs, args.by_slowdown)
