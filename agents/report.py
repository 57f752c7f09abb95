"""The comparison report, built in one place: metrics per controller from episode logs
(simulated or live), the gap to the oracle, the fixed-width table and the JSON form.

Metrics per controller (over all requests of all episodes):

* ``deadline_miss_rate``: requests whose latency exceeded the time budget;
* ``energy_violation_rate``: requests whose energy exceeded the energy budget;
* ``mean_accuracy``: top-1 accuracy of the configurations chosen (what the requests got);
* ``energy_mj``: mean energy per inference;
* ``mean_reward``: mean reward per request (the env's reward);
* ``oracle_gap``: ``1 - mean_reward / oracle mean_reward`` (when the ceiling ``oracle`` was run);
* ``switches_per_100``: configuration changes per 100 requests;
* ``decision_us``: median time of one ``act`` call;
* ``group_share``: share of requests per group count (``{"1": .., "2": .., ...}``);
* ``unit_share``: share of requests per unit;
* ``accuracy_on_met``: mean top-1 on the requests that met both budgets (``None`` if none did).

Per report, ``infeasible_rate``: the share of requests on which the ceiling itself missed a
budget (a miss rate reads against it; ``None`` when the ceiling was not run, and live).

Live runs add :class:`LiveMetrics` (decision overhead, measured top-1, the model's prediction
error, miss rate and prediction error per load phase).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from envs.step import EpisodeLog


@dataclass
class LiveMetrics:
    """What only a live run measures.

    :param overhead_ms_median: median observe + decide + apply time (not the inference)
    :param overhead_ms_p99: its 99th percentile
    :param measured_top1: fraction of test images classified right (``None`` without labels)
    :param energy_is_estimate: some energy came from the model, not a sensor
    :param seconds: wall time of the run
    :param requests: requests run
    :param by_load_threads: per generated load phase (worker threads, and their memory intensity
        where they stream: ``"2"``, ``"1 mem 1"``): requests, miss rate,
        accuracy, ``latency_mape``
    :param latency_mape: mean |measured - predicted| / measured latency of the chosen
        configurations, predicted by the model at the observed state
    :param energy_mape: the same for energy (``None`` when energy was estimated by the model)
    """

    overhead_ms_median: float
    overhead_ms_p99: float
    measured_top1: float | None
    energy_is_estimate: bool
    seconds: float
    requests: int
    by_load_threads: dict[str, dict[str, float]]
    latency_mape: float | None = None
    energy_mape: float | None = None


@dataclass
class ControllerMetrics:
    """One controller's row of the comparison (see the module docstring)."""

    deadline_miss_rate: float
    energy_violation_rate: float
    mean_accuracy: float
    energy_mj: float
    mean_reward: float
    oracle_gap: float | None
    switches_per_100: float
    decision_us: float
    group_share: dict[str, float]
    unit_share: dict[str, float]
    accuracy_on_met: float | None
    live: LiveMetrics | None = None

    @classmethod
    def from_logs(cls, logs: list[EpisodeLog], max_groups: int = 4, units: tuple[str, ...] = ()) -> ControllerMetrics:
        """The metrics over every request of ``logs`` (``oracle_gap`` is set by :meth:`Report.fill_oracle_gap`)."""
        n = sum(len(lg) for lg in logs)
        switches = sum(sum(a != b for a, b in zip(lg.actions, lg.actions[1:])) for lg in logs)

        def cat(f: str) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(lg, f), dtype=float) for lg in logs])

        groups = cat("groups")
        unit = [u for lg in logs for u in lg.unit]
        met = (cat("deadline_met") > 0) & (cat("energy_met") > 0)
        accuracy = cat("accuracy")

        return cls(
            deadline_miss_rate=float(1 - cat("deadline_met").mean()),
            energy_violation_rate=float(1 - cat("energy_met").mean()),
            mean_accuracy=float(cat("accuracy").mean()),
            energy_mj=float(cat("energy_mj").mean()),
            mean_reward=float(cat("rewards").mean()),
            oracle_gap=None,
            switches_per_100=100.0 * switches / n,
            decision_us=float(np.median(cat("decision_us"))),
            group_share={str(k): float(np.mean(groups == k)) for k in range(1, max_groups + 1)},
            unit_share={u: unit.count(u) / n for u in (units or sorted(set(unit)))},
            accuracy_on_met=float(accuracy[met].mean()) if met.any() else None,
        )

    def to_dict(self) -> dict:
        """Flat JSON form: the live fields sit beside the others."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "live"}
        if self.live is not None:
            d.update(asdict(self.live))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ControllerMetrics:
        names = [f.name for f in fields(cls) if f.name != "live"]
        live_names = [f.name for f in fields(LiveMetrics)]
        required = live_names[: live_names.index("latency_mape")]  # reports written before the model-error fields
        live = LiveMetrics(**{k: d[k] for k in live_names if k in d}) if all(k in d for k in required) else None
        return cls(**{k: d[k] for k in names}, live=live)


@dataclass
class Report:
    """A comparison of controllers on the same requests.

    :param platform: platform name
    :param scenario: what the requests were (preset, trace(s), or the live trace and schedule)
    :param seeds: episode seeds (empty for replayed traces and live runs)
    :param requests: requests per controller
    :param noise: ``True``/``False`` (simulated with or without noise) or ``"live"``
    :param controllers: metrics per controller name, in the order run
    :param traces: the replayed trace files, when several were merged
    :param training: what the training run did (set by ``train``)
    :param objective: the objective every controller was scored by
    :param infeasible_rate: share of requests the ceiling could not meet (see the module docstring)
    """

    platform: str
    scenario: str
    seeds: list[int]
    requests: int
    noise: bool | str
    controllers: dict[str, ControllerMetrics]
    traces: list[str] | None = None
    training: dict | None = None
    objective: str | None = None
    infeasible_rate: float | None = None

    @classmethod
    def from_logs(
        cls,
        logs: dict[str, list[EpisodeLog]],
        platform: str,
        scenario: str,
        seeds: list[int],
        noise: bool | str,
        objective: str | None = None,
        max_groups: int = 4,
        units: tuple[str, ...] = (),
    ) -> Report:
        """The report of controllers run on the same episodes (one list of logs per controller).

        :param units: the platform's units, in order (every one gets a ``unit_share``)
        """
        metrics = {name: ControllerMetrics.from_logs(lg, max_groups, units) for name, lg in logs.items()}
        report = cls(platform, scenario, list(seeds), sum(len(lg) for lg in next(iter(logs.values()))), noise, metrics)
        report.objective = objective
        if "oracle" in logs:
            met = [d and e for lg in logs["oracle"] for d, e in zip(lg.deadline_met, lg.energy_met)]
            report.infeasible_rate = 1.0 - sum(met) / len(met)
        report.fill_oracle_gap()
        return report

    def fill_oracle_gap(self) -> None:
        """Every controller's ``oracle_gap`` = 1 - mean_reward / the oracle's (when the oracle ran
        and its reward is positive; otherwise undefined and left ``None``)."""
        oracle = self.controllers.get("oracle")
        if oracle is None:
            return
        ref = oracle.mean_reward
        for m in self.controllers.values():
            m.oracle_gap = (1.0 - m.mean_reward / ref) if ref > 0 else None

    @classmethod
    def merge(cls, reports: list[tuple[Path, Report]]) -> Report:
        """One report over several replayed traces: metrics weighted by requests (the oracle gap
        recomputed from the merged rewards, not averaged)."""
        total = sum(r.requests for _, r in reports)
        first = reports[0][1]
        controllers = {}
        for name in first.controllers:
            merged = {}
            for f in fields(ControllerMetrics):
                if f.name == "live":
                    continue
                vals = [(getattr(r.controllers[name], f.name), r.requests) for _, r in reports]
                merged[f.name] = _weighted_mean(vals, total)
            controllers[name] = ControllerMetrics(**merged)
        out = cls(
            first.platform,
            f"{len(reports)} traces",
            [],
            total,
            first.noise,
            controllers,
            traces=[str(f) for f, _ in reports],
            objective=first.objective,
            infeasible_rate=_weighted_mean([(r.infeasible_rate, r.requests) for _, r in reports], total),
        )
        out.fill_oracle_gap()
        return out

    def to_dict(self) -> dict:
        d = {
            "platform": self.platform,
            "scenario": self.scenario,
            "seeds": self.seeds,
            "requests": self.requests,
            "noise": self.noise,
            "objective": self.objective,
            "infeasible_rate": self.infeasible_rate,
        }
        if self.traces is not None:
            d["traces"] = self.traces
        d["controllers"] = {name: m.to_dict() for name, m in self.controllers.items()}
        if self.training is not None:
            d["training"] = self.training
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        return cls(
            d["platform"],
            d["scenario"],
            list(d["seeds"]),
            int(d["requests"]),
            d["noise"],
            {k: ControllerMetrics.from_dict(v) for k, v in d["controllers"].items()},
            d.get("traces"),
            d.get("training"),
            d.get("objective"),
            d.get("infeasible_rate"),
        )

    def format(self) -> str:
        """The comparison as a fixed-width table (and, for live runs, the live lines under it)."""
        head = (
            f"{'controller':<22} {'miss%':>6} {'energy viol%':>12} {'accuracy%':>9} {'mJ/inf':>8} {'reward':>7} "
            f"{'oracle gap':>10} {'sw/100':>7} {'decide us':>9}"
        )
        lines = [
            f"{self.platform} / {self.scenario}: {self.requests} requests"
            + (f", seeds {self.seeds[0]}-{self.seeds[-1]}" if self.seeds else "")
            + (f"; objective {self.objective}" if self.objective else ""),
            head,
            "-" * len(head),
        ]
        for name, m in self.controllers.items():
            gap = "-" if m.oracle_gap is None else f"{m.oracle_gap * 100:.1f}%"
            lines.append(
                f"{name:<22} {m.deadline_miss_rate * 100:>6.1f} {m.energy_violation_rate * 100:>12.1f} {m.mean_accuracy * 100:>9.2f} "
                f"{m.energy_mj:>8.2f} {m.mean_reward:>7.3f} {gap:>10} {m.switches_per_100:>7.1f} {m.decision_us:>9.1f}"
            )
        if self.infeasible_rate is not None:
            lines.append(f"the ceiling (oracle) could not meet both budgets on {self.infeasible_rate * 100:.1f}% of requests")
        lines += ["", *self._decisions_table()]
        live = [(name, m.live) for name, m in self.controllers.items() if m.live is not None]
        lines += [_live_line(name, lv) for name, lv in live]
        lines += [_phase_line(name, lv) for name, lv in live]
        return "\n".join(lines)

    def _decisions_table(self) -> list[str]:
        """How each controller decides: share of requests per group count and per unit, and the
        accuracy it delivered on the requests that met both budgets."""
        first = next(iter(self.controllers.values()))
        ks, units = list(first.group_share), list(first.unit_share)
        head = (
            f"{'controller':<22} "
            + " ".join(f"{'k=' + k + '%':>6}" for k in ks)
            + "  "
            + " ".join(f"{u[:9] + '%':>10}" for u in units)
            + f" {'acc. on met%':>12}"
        )
        lines = [head, "-" * len(head)]
        for name, m in self.controllers.items():
            acc = "-" if m.accuracy_on_met is None else f"{m.accuracy_on_met * 100:.2f}"
            lines.append(
                f"{name:<22} "
                + " ".join(f"{m.group_share.get(k, 0.0) * 100:>6.1f}" for k in ks)
                + "  "
                + " ".join(f"{m.unit_share.get(u, 0.0) * 100:>10.1f}" for u in units)
                + f" {acc:>12}"
            )
        return lines


def _weighted_mean(vals: list[tuple], total: int):
    """Request-weighted mean of numbers or of dicts of numbers (``None`` if any is ``None``)."""
    if any(v is None for v, _ in vals):
        return None
    if isinstance(vals[0][0], dict):
        keys = dict.fromkeys(k for v, _ in vals for k in v)
        return {k: sum(v.get(k, 0.0) * n for v, n in vals) / total for k in keys}
    return sum(v * n for v, n in vals) / total


def _live_line(name: str, m: LiveMetrics) -> str:
    top1 = "-" if m.measured_top1 is None else f"{m.measured_top1 * 100:.2f}%"
    lat = "-" if m.latency_mape is None else f"{m.latency_mape * 100:.1f}%"
    energy = "- (estimated)" if m.energy_mape is None else f"{m.energy_mape * 100:.1f}%"
    return (
        f"{name:<22} decision overhead median {m.overhead_ms_median:.3f} ms (p99 {m.overhead_ms_p99:.3f}); "
        f"measured top-1 {top1}; energy {'estimated' if m.energy_is_estimate else 'measured'}; "
        f"model error (MAPE) latency {lat}, energy {energy}; {m.seconds:.0f} s"
    )


def _phase_line(name: str, m: LiveMetrics) -> str:
    phases = " | ".join(
        f"{t} thr: miss {v['deadline_miss_rate'] * 100:.1f}% acc {v['mean_accuracy'] * 100:.2f}%"
        + (f" mape {v['latency_mape'] * 100:.1f}%" if "latency_mape" in v else "")
        + f" ({v['requests']})"
        for t, v in m.by_load_threads.items()
    )
    return f"{name:<22} by generated load: {phases}"


__all__ = ["ControllerMetrics", "LiveMetrics", "Report"]
