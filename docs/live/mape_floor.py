"""The latency MAPE of the best constant per (generated load phase, group count, cores) cell of a
deploy log, the constants chosen after the fact from the log itself: what the machine's
request-to-request noise alone costs a model that knows the cell and nothing more (a model that
follows the state within a cell, like the online correction, can do a little better).

    python docs/live/mape_floor.py runs/live-c/*.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np


def mape_floor(lines: list[dict], more=None) -> float:
    """Sum over cells of the best constant's absolute percentage errors, over all requests.

    :param lines: the JSON lines of a deploy log
    :param more: a function of a line whose value splits the cells further (``None``: none)
    """
    cells: dict[tuple, list[float]] = defaultdict(list)
    for r in lines:
        key = (json.dumps(r["load_generated"], sort_keys=True), r["groups"], r["cores"])
        cells[key if more is None else (*key, more(r))].append(r["latency_ms"])
    total = 0.0
    for measured in cells.values():
        m = np.asarray(measured)
        # the minimiser of sum |c - m| / m is a weighted median: one of the measured values
        total += min(float(np.sum(np.abs(c - m) / m)) for c in np.unique(m))
    return total / len(lines)


def main(paths: list[str]) -> None:
    print(f"{'log':<40} {'requests':>8} {'MAPE':>7} {'floor':>7}")
    for path in paths:
        with open(path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        m = np.array([r["latency_ms"] for r in lines])
        p = np.array([r["predicted_latency_ms"] for r in lines])
        print(f"{path:<40} {len(lines):>8} {np.mean(np.abs(p - m) / m):>7.1%} {mape_floor(lines):>7.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
