"""Batch-1 latency of the dynamic DNN back to back vs paced like deploy's requests (issue 13).

Why deploy measured 1.5-1.9x what a back-to-back profile predicted: the deploy loop idles
between requests (a camera-rate trace: 33 ms), and an idle CPU comes back slower (idle states,
cold caches, a VM's scheduler). Per group count k, pinned CPUs and thread count, the median of
``n`` inferences of the next CIFAR-10 test images run back to back, then ``period_ms`` apart;
twice, to show the machine's own drift. Run on an otherwise idle machine:

    python -m benchmarks.bench_pacing [DATA]   (default DATA: ../shared/data/cifar10-jpg.tar.gz)
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from benchmarks._common import print_table, write_results

DEFAULT_DATA = "../shared/data/cifar10-jpg.tar.gz"


def median_ms(runner, k: int, n: int, period_s: float) -> float:
    """Median latency of ``n`` inferences (after 5 untimed), ``period_s`` apart (0: back to back)."""
    for _ in range(5):
        runner.infer(k)
    out = []
    due = time.perf_counter()
    for _ in range(n):
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        due = max(due + period_s, time.perf_counter())
        out.append(runner.infer(k)[0])
    return statistics.median(out)


def main(data: str = DEFAULT_DATA, n: int = 60, period_ms: float = 33.3) -> list[dict]:
    from dnn.data import load_cifar10
    from dnn.runner import InferenceRunner
    from dnn.train import load_weights

    cifar = load_cifar10(data)
    runner = InferenceRunner(load_weights(), cifar.test_x[:2000], cifar.test_y[:2000])
    cpus = sorted(os.sched_getaffinity(0))
    placements = [({c}, 1) for c in cpus[:2]] + ([(set(cpus[:2]), 2)] if len(cpus) > 1 else [])
    rows = []
    try:
        for rep in (1, 2):
            for k in (1, 4):
                for pinned, threads in placements:
                    os.sched_setaffinity(0, pinned)
                    runner.set_threads(threads)
                    b2b = median_ms(runner, k, n, 0.0)
                    paced = median_ms(runner, k, n, period_ms / 1e3)
                    rows.append(
                        {
                            "pass": rep,
                            "k": k,
                            "cpus": ",".join(map(str, sorted(pinned))),
                            "threads": threads,
                            "back_to_back_ms": b2b,
                            "paced_ms": paced,
                            "ratio": paced / b2b,
                        }
                    )
    finally:
        os.sched_setaffinity(0, cpus)
    cols = [("pass", "pass", "d"), ("k", "k", "d"), ("cpus", "cpus", "s"), ("threads", "threads", "d")]
    cols += [("back_to_back_ms", "b2b ms", ".2f"), ("paced_ms", f"{period_ms:g} ms apart", ".2f"), ("ratio", "ratio", ".2f")]
    print_table(rows, cols)
    print(f"wrote {write_results('pacing', rows, {'period_ms': period_ms, 'n': n})}")
    return rows


if __name__ == "__main__":
    main(*sys.argv[1:2])
