"""The profiler's interference fit of a profile's co-runner points, with the thread wait of a held
multi-core run (``interference.thread_wait_ms``) fitted and held at 0: the coefficients, and the
model's mean latency against the measured one at every point, with the root-mean-square log error.
Both fits include the share of the fair share a run waits (``interference.preempt_share``, since
2f2040f; before it, the fit had no such coefficient).

    python docs/live/interference_fit.py runs/board-onnx.yaml
"""

from __future__ import annotations

import argparse

import numpy as np
import yaml

from dnn.profile import load_dnn_profile
from hwmodels.fit import fit_interference
from hwmodels.model import PlatformModel, State
from hwmodels.profile import parse_platform
from runtime.profiler import co_runner_points


def fitted_model(doc: dict, dnn, fit: dict) -> PlatformModel:
    return PlatformModel(parse_platform({**doc, "interference": {**doc["interference"], **fit}}, "fit"), dnn)


def model_latencies(model: PlatformModel, doc: dict, points) -> np.ndarray:
    temp = float(doc["thermal"]["start_c"])
    return np.array(
        [
            model.expected(i, State(np.asarray(ld, float), np.asarray(m, float), temp, None, up)).latency_ms
            for i, ld, m, _, up in points
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", help="a profile written by dynscale profile (it has measured.co_runners)")
    args = ap.parse_args()
    try:
        with open(args.profile) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        ap.exit(2, f"{ap.prog}: {args.profile}: not a readable profile ({str(e).splitlines()[0]})\n")
    if not isinstance(doc, dict) or not (doc.get("measured") or {}).get("co_runners"):
        ap.exit(2, f"{ap.prog}: {args.profile}: no measured.co_runners to fit\n")
    dnn, points = load_dnn_profile(), co_runner_points(doc, doc["measured"]["co_runners"])
    y = np.array([p[3] for p in points])
    fits = {"with": fit_interference(doc, dnn, points), "without": fit_interference(doc, dnn, points, fit_thread_wait=False)}
    models = {name: fitted_model(doc, dnn, fit) for name, fit in fits.items()}
    lat = {name: model_latencies(model, doc, points) for name, model in models.items()}
    for name, fit in fits.items():
        rms = float(np.sqrt(np.mean(np.log(lat[name] / y) ** 2)))
        coefficients = ", ".join(f"{k} {v:.3g}" for k, v in fit.items())
        print(f"{name:<8} the thread wait: {coefficients}; rms log error {rms:.3f} over {len(points)} points")
    space = models["with"].space
    print(f"\n{'co-runners (observed)':<24} {'k':>2} {'cores':>5} {'measured':>9} {'with':>7} {'without':>8}  (mean ms)")
    for j, (i, load, mem, ms, _) in enumerate(points):
        cond = f"{np.sum(load):.1f} busy, memory {max(mem):g}"
        print(f"{cond:<24} {space.groups[i]:>2} {space.cores[i]:>5} {ms:>9.2f} {lat['with'][j]:>7.2f} {lat['without'][j]:>8.2f}")


if __name__ == "__main__":
    main()
