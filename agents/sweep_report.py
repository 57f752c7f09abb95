"""Results over seeds: the interquartile mean and a 95% bootstrap confidence interval of each
metric, per (platform, scenario, objective, algorithm, controller), over a sweep's trials.

One training seed is not a result (Henderson et al., AAAI 2018). Following Agarwal et al.
(NeurIPS 2021, the ``rliable`` library), each metric is summarised by its interquartile mean
(the mean of the middle half of the runs: robust to one outlier seed, less noisy than the
median) with a percentile bootstrap confidence interval over runs (``scipy.stats.bootstrap``).
The baselines are deterministic for given evaluation seeds, so their intervals have zero width;
the agent's interval is the spread that training seeds cause.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnn.fileio import atomic_write, json_text

#: metrics summarised per controller: (key, column title, scale for the table)
METRICS = (
    ("mean_reward", "reward", 1.0),
    ("deadline_miss_rate", "miss%", 100.0),
    ("mean_accuracy", "accuracy%", 100.0),
    ("oracle_gap", "oracle gap%", 100.0),
    ("energy_mj", "mJ/inf", 1.0),
)
CONFIDENCE = 0.95
RESAMPLES = 2000


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    from scipy.stats import trim_mean

    return trim_mean(x, 0.25, axis=axis)


def iqm_ci(values: list[float], seed: int = 0) -> tuple[float, float, float]:
    """(IQM, low, high): the 95% percentile-bootstrap interval of the IQM over runs (a single
    run, or runs that all agree, give a zero-width interval)."""
    from scipy.stats import bootstrap

    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    centre = float(iqm(x))
    if len(x) < 2 or np.ptp(x) == 0:
        return centre, centre, centre
    res = bootstrap(
        (x,),
        iqm,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return centre, float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass
class Row:
    """One controller of one (platform, scenario, objective, algorithm) group."""

    platform: str
    scenario: str
    objective: str
    algo: str
    controller: str
    runs: int
    metrics: dict[str, tuple[float, float, float]]  # metric -> (iqm, low, high)


def summarise(evaluations: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[Row]:
    """Rows from (grid point, evaluation) pairs: every trial's agent becomes ``agent``."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for point, ev in evaluations:
        key = (str(point["platform"]), str(point["scenario"]), str(point["objective"]), str(point["algo"]))
        for name, m in ev["controllers"].items():
            groups.setdefault(key, {}).setdefault("agent" if name.startswith("agent:") else name, []).append(m)
    rows = []
    for key, controllers in sorted(groups.items()):
        for name, runs in controllers.items():
            stats = {k: iqm_ci([r.get(k) for r in runs]) for k, _, _ in METRICS}
            rows.append(Row(*key, name, len(runs), stats))
    return rows


def format_table(rows: list[Row]) -> str:
    """Fixed-width table: IQM [95% CI] per metric."""
    head = f"{'platform':<9} {'scenario':<9} {'objective':<9} {'algo':<5} {'controller':<18} {'runs':>4}" + "".join(
        f" {title:>22}" for _, title, _ in METRICS
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(f" {_cell(r.metrics[k], scale):>22}" for k, _, scale in METRICS)
        lines.append(
            f"{Path(r.platform).stem:<9} {Path(r.scenario).stem:<9} {r.objective:<9} {r.algo:<5} {r.controller:<18} {r.runs:>4}"
            + cells
        )
    lines.append(f"IQM [{CONFIDENCE:.0%} bootstrap CI] over training seeds ({RESAMPLES} resamples, percentile method)")
    return "\n".join(lines)


def _cell(stat: tuple[float, float, float], scale: float) -> str:
    c, lo, hi = (v * scale for v in stat)
    if np.isnan(c):
        return "-"
    digits = 3 if scale == 1.0 and abs(c) < 10 else 1
    return f"{c:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def to_json(rows: list[Row]) -> str:
    return json_text(
        [
            {
                "platform": r.platform,
                "scenario": r.scenario,
                "objective": r.objective,
                "algo": r.algo,
                "controller": r.controller,
                "runs": r.runs,
                **{k: {"iqm": v[0], "ci_low": v[1], "ci_high": v[2]} for k, v in r.metrics.items()},
            }
            for r in rows
        ]
    )


def plot(
    rows: list[Row], path: str | os.PathLike, metrics: tuple[str, ...] = ("mean_reward", "deadline_miss_rate", "mean_accuracy")
) -> None:
    """Bars with 95% CI error bars: one panel per metric, groups by platform (PNG, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.platform, r.scenario, r.objective, r.algo) for r in rows})
    controllers = list(dict.fromkeys(r.controller for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    width = 0.8 / max(len(controllers), 1)
    for ax, metric in zip(axes[0], metrics):
        scale = dict((k, s) for k, _, s in METRICS)[metric]
        for j, c in enumerate(controllers):
            xs, ys, err = [], [], [[], []]
            for i, g in enumerate(groups):
                r = next((r for r in rows if (r.platform, r.scenario, r.objective, r.algo) == g and r.controller == c), None)
                if r is None or np.isnan(r.metrics[metric][0]):
                    continue
                m, lo, hi = (v * scale for v in r.metrics[metric])
                xs.append(i + (j - (len(controllers) - 1) / 2) * width)
                ys.append(m)
                err[0].append(m - lo)
                err[1].append(hi - m)
            ax.bar(xs, ys, width, yerr=err, capsize=3, label=c)
        ax.set_xticks(range(len(groups)), [f"{Path(p).stem}/{Path(sc).stem}\n{o}/{a}" for p, sc, o, a in groups])
        ax.set_title(dict((k, t) for k, t, _ in METRICS)[metric])
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
