"""Per (generated load, group count, cores) cell of deploy logs, the two modes of latency that
co-runners' scheduler quanta make: the share of requests within 1.5 ms of the cell's median and
the median of those, then the median of the rest (those that waited a quantum, or more).

    python docs/live/quanta_split.py runs/live-onnx/greedy.jsonl runs/live-onnx/model-predictive.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

#: a request this far above its cell's median waited for a co-runner (a quantum is ~4 ms here)
MARGIN_MS = 1.5


def main(paths: list[str]) -> None:
    print(f"{'log':<40} {'load':>9} {'k':>2} {'cores':>5} {'requests':>8} {'near median':>11} {'ms':>6} {'rest ms':>8}")
    for path in paths:
        cells: dict[tuple, list[float]] = defaultdict(list)
        with open(path) as f:
            for r in map(json.loads, filter(str.strip, f)):
                cells[(json.dumps(r["load_generated"], sort_keys=True), r["groups"], r["cores"])].append(r["latency_ms"])
        for (load, k, cores), ms in sorted(cells.items()):
            if len(ms) < 10:
                continue
            median = statistics.median(ms)
            near = [x for x in ms if x < median + MARGIN_MS]
            rest = [x for x in ms if x >= median + MARGIN_MS]
            rest_ms = f"{statistics.median(rest):.2f}" if rest else "-"
            print(
                f"{path:<40} {load:>9} {k:>2} {cores:>5} {len(ms):>8} {len(near) / len(ms):>11.1%} {statistics.median(near):>6.2f} {rest_ms:>8}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
