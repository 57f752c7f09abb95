"""Speed of the platform model: all configurations at once (vectorised) and one (scalar).

Targets (issue 3): all XU3 configurations for one state under 50 us; one scalar call under 10 us.
Run: python benchmarks/bench_platform_model.py
"""

from __future__ import annotations

import numpy as np

from benchmarks._common import print_table, time_call, write_results
from dnn.profile import load_dnn_profile
from hwmodels.model import PlatformModel, State
from hwmodels.profile import load_platform

TARGET_ALL_US = 50.0
TARGET_ONE_US = 10.0


def main() -> None:
    rows = []
    for name in ("xu3", "nano"):
        m = PlatformModel(load_platform(name), load_dnn_profile())
        n = m.n_units
        cool = State(np.array([1.0] * n), np.array([0.3] * n), 45.0, np.array([u.freqs_mhz[-1] for u in m.spec.units]))
        hot = State(np.array([1.0] * n), np.array([0.3] * n), 101.0, cool.freq_mhz)  # every trip active
        for label, s in (("below trips", cool), ("all trips active", hot)):
            t_all = time_call(lambda m=m, s=s: m.expected_all(s), repeats=2000)
            t_one = time_call(lambda m=m, s=s: m.expected(len(m.space) // 2, s), repeats=20000)
            rows.append(
                {
                    "platform": name,
                    "state": label,
                    "configs": len(m.space),
                    "all_us": t_all * 1e6,
                    "one_us": t_one * 1e6,
                    "all_ok": t_all * 1e6 < TARGET_ALL_US,
                    "one_ok": t_one * 1e6 < TARGET_ONE_US,
                }
            )
    print_table(
        rows,
        [
            ("platform", "platform", ""),
            ("state", "state", ""),
            ("configs", "configs", "d"),
            ("all_us", "all configs us", ".1f"),
            ("one_us", "one config us", ".2f"),
            ("all_ok", f"all<{TARGET_ALL_US:g}us", ""),
            ("one_ok", f"one<{TARGET_ONE_US:g}us", ""),
        ],
    )
    path = write_results("platform_model", rows, {"targets_us": {"all": TARGET_ALL_US, "one": TARGET_ONE_US}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
