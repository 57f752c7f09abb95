"""Shared helpers of the benchmarks: timing, tables, atomic JSON results."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from dnn.fileio import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


def time_call(fn: Callable[[], object], repeats: int = 2000, rounds: int = 7) -> float:
    """Median over ``rounds`` of the mean seconds per call of ``repeats`` back-to-back calls."""
    fn()
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        per_round.append((time.perf_counter() - t0) / repeats)
    return statistics.median(per_round)


def machine() -> dict:
    import os

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "processor": platform.processor(),
    }


def write_results(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    path = RESULTS / f"{name}.json"
    with atomic_write(path) as f:
        json.dump({"benchmark": name, "machine": machine(), "rows": rows, **(extra or {})}, f, indent=2)
    return path


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print ``rows`` with ``columns`` = [(key, header, format)]."""
    widths = [max(len(h), 12, *(len(format(r[k], f)) for r in rows)) for k, h, f in columns]
    print("  ".join(f"{h:>{w}}" for (_, h, _), w in zip(columns, widths)))
    for r in rows:
        print("  ".join(f"{format(r[k], fmt):>{w}}" for (k, _, fmt), w in zip(columns, widths)))
