"""The latency MAPE a deploy log would have had with other interference coefficients: each request
predicted again as deploy predicted it (the typical run of the chosen configuration at the
observed state, :func:`envs.step.observed_state` of the logged load, temperature, frequency, time
awake, tick phase at the wake and slow-down estimate), under the profile with ``wake_credit_ms``
and ``preempt_share`` replaced by each pair of a grid. The column ``again`` predicts with the
profile's own values: it is a check, and equals ``logged`` up to the log's rounding of the state
(4 decimals), which can move a request whose wait sits on the edge of a whole quantum by one
(``differ``: how many requests' two predictions are more than 0.01 ms apart). It would not on a board
whose frequency changed between requests: the log holds the frequency delivered, not the one
observed before, so a switch's cost is not charged again. The slow-down estimate is held as
logged: with other predictions the online correction would have moved a little differently.
Ties go to the first pair of the grid.

    python docs/live/repredict.py --platform runs/board-torch.yaml runs/live-torch2/*.jsonl
    python docs/live/repredict.py --platform runs/board-torch.yaml --credit-ms 1.0 1.5 --share 0.5 1.0 -- runs/live-torch2/*.jsonl

(``--`` ends a list of values before the logs.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from dnn.profile import ProfileError, load_dnn_profile
from envs.step import Request, observed_state
from hwmodels.model import PlatformModel
from hwmodels.profile import PlatformProfileError, PlatformSpec, load_platform


def predictions(model: PlatformModel, lines: list[dict]) -> np.ndarray:
    """The typical latency (ms) deploy would have logged for each request of a one-unit log.

    :param model: the platform model to predict with
    :param lines: the deploy log's JSON lines
    """
    out = np.empty(len(lines))
    for i, r in enumerate(lines):
        slowdown = (float(r["slowdown"]),)
        request = Request(
            r["time_budget_ms"],
            r["energy_budget_mj"],
            0.0,
            r["load"],
            r["temp_c"],
            (float(r["freq_mhz"]),),
            (0, 0, 0, 0.0),  # the previous configuration: not part of the state the model reads
            slowdown=slowdown,
            awake_ms=r.get("awake_ms", 0.0),
            tick_phase_ms=r.get("wake_tick_phase_ms"),
        )
        out[i] = model.typical_latency(model.expected(r["action"], observed_state(request)), slowdown[0])
    return out


def with_interference(spec: PlatformSpec, credit_ms: float, share: float) -> PlatformSpec:
    """``spec`` with its wake-up credit and preemption share replaced.

    :param spec: the profile the log ran with
    :param credit_ms: ``interference.wake_credit_ms`` to use
    :param share: ``interference.preempt_share`` to use
    """
    it = dataclasses.replace(spec.interference, wake_credit_ms=credit_ms, preempt_share=share)
    return dataclasses.replace(spec, interference=it)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", required=True, help="the profile the logs ran with")
    ap.add_argument("--dnn-profile", help="the DNN profile deploy ran with (default: the shipped one)")
    ap.add_argument("--credit-ms", type=float, nargs="+", default=[0.9, 1.2, 1.4, 1.6, 1.8], help="wake-up credits to try")
    ap.add_argument("--share", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0], help="preemption shares to try")
    ap.add_argument("logs", nargs="+", help="deploy logs (JSON lines) made with that profile")
    args = ap.parse_args()
    try:
        spec = load_platform(args.platform)
        dnn = load_dnn_profile(args.dnn_profile)
    except (PlatformProfileError, ProfileError) as exc:
        ap.exit(2, f"{exc}\n")
    if len(spec.units) != 1:
        ap.exit(2, f"{args.platform}: {len(spec.units)} units; a log holds the chosen unit's slow-down only, so one unit\n")
    it = spec.interference
    print(f"profile: credit {it.wake_credit_ms:.2f} ms, share {it.preempt_share:.2f}")
    print(f"{'log':<44} {'logged':>7} {'again':>7} {'differ':>6} {'best':>7} {'credit':>7} {'share':>6}")
    for path in args.logs:
        try:
            with open(path) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except (OSError, ValueError) as exc:
            ap.exit(2, f"{path}: {exc}\n")
        try:
            measured = np.array([r["latency_ms"] for r in lines])
            logged = np.array([r["predicted_latency_ms"] for r in lines])
            again = predictions(PlatformModel(spec, dnn), lines)
        except KeyError as exc:
            ap.exit(2, f"{path}: a line has no field {exc} (a deploy log of this dynscale has it)\n")
        grid = []
        for c in args.credit_ms:
            for p in args.share:
                error = np.mean(
                    np.abs(predictions(PlatformModel(with_interference(spec, c, p), dnn), lines) - measured) / measured
                )
                grid.append((float(error), c, p))
        best = min(grid, key=lambda g: g[0])  # the first of equally good pairs
        print(
            f"{path:<44} {np.mean(np.abs(logged - measured) / measured):>7.1%} {np.mean(np.abs(again - measured) / measured):>7.1%}"
            f" {int(np.sum(np.abs(again - logged) > 0.01)):>6d} {best[0]:>7.1%} {best[1]:>7.2f} {best[2]:>6.2f}"
        )


if __name__ == "__main__":
    main()
