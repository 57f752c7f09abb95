"""The latency MAPE a deploy log would have had with other interference coefficients: each request
predicted again as deploy predicted it (the typical run of the chosen configuration at the
observed state, its time awake, the tick's phase at the wake and the slow-down estimate it was
logged with), under the profile with ``wake_credit_ms`` and ``preempt_share`` replaced by each
pair of a grid. The first column repeats the log's own prediction with the profile's values, so
it equals the logged MAPE. The estimate is held as logged: with other predictions the online
correction would have moved a little differently.

    python docs/live/repredict.py --platform runs/board-torch.yaml runs/live-torch2/*.jsonl
    python docs/live/repredict.py --platform runs/board-torch.yaml --credit-ms 1.0 1.5 --share 0.5 1.0 -- runs/live-torch2/*.jsonl

(``--`` ends a list of values before the logs.) Ties go to the first pair of the grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from dnn.profile import load_dnn_profile
from envs.step import ASSUMED_MEM
from hwmodels.model import PlatformModel, State
from hwmodels.profile import PlatformSpec, load_platform


def mape(spec: PlatformSpec, lines: list[dict]) -> float:
    """The mean absolute percentage error of the typical latency under ``spec`` (one-unit logs)."""
    model = PlatformModel(spec, load_dnn_profile())
    errors = []
    for r in lines:
        load = np.asarray(r["load"], dtype=float)
        state = State(
            load,
            np.where(load > 0, ASSUMED_MEM, 0.0),
            r["temp_c"],
            np.array([r["freq_mhz"]], dtype=float),
            r.get("awake_ms", 0.0),
            r.get("wake_tick_phase_ms"),
            [r["slowdown"]],
        )
        typical = float(model.typical_latency(model.expected(r["action"], state), r["slowdown"]))
        errors.append(abs(typical - r["latency_ms"]) / r["latency_ms"])
    return float(np.mean(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", required=True, help="the profile the logs ran with")
    ap.add_argument("--credit-ms", type=float, nargs="+", default=[0.9, 1.2, 1.4, 1.6, 1.8])
    ap.add_argument("--share", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()
    spec = load_platform(args.platform)
    if len(spec.units) != 1:
        raise SystemExit(f"{args.platform}: {len(spec.units)} units; the logs' slow-down is the chosen unit's, so one unit only")
    it = spec.interference
    print(f"profile: credit {it.wake_credit_ms:.2f} ms, share {it.preempt_share:.2f}")
    print(f"{'log':<40} {'logged':>7} {'again':>7} {'best':>7} {'credit':>7} {'share':>6}")
    for path in args.logs:
        with open(path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        logged = float(np.mean([abs(r["predicted_latency_ms"] - r["latency_ms"]) / r["latency_ms"] for r in lines]))
        grid = [
            (
                mape(dataclasses.replace(spec, interference=dataclasses.replace(it, wake_credit_ms=c, preempt_share=p)), lines),
                c,
                p,
            )
            for c in args.credit_ms
            for p in args.share
        ]
        best = min(grid)
        print(f"{path:<40} {logged:>7.1%} {mape(spec, lines):>7.1%} {best[0]:>7.1%} {best[1]:>7.2f} {best[2]:>6.2f}")


if __name__ == "__main__":
    main()
