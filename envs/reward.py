"""The reward of one request: a named objective's weights (``envs/objectives.yaml``); the same
function scores simulated and live requests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import yaml

from dnn.errors import UserError
from dnn.fileio import read_yaml

OBJECTIVES_FILE = Path(__file__).resolve().parent / "objectives.yaml"
DEFAULT_OBJECTIVE = "accuracy"
#: ``energy_weight: tie-break`` resolves to this fraction of the DNN's smallest accuracy step
TIE_BREAK_FRACTION = 0.5


class ObjectiveError(UserError, ValueError):
    """An objective (name, file or weight) that cannot be used; the message names file and field."""


@dataclass(frozen=True)
class RewardConfig:
    """The weights of an objective.

    ``ok = [latency <= time budget] [energy <= energy budget] [top-1 >= min_accuracy]``

    ``r = ok (met_reward + accuracy_weight (top1 - accuracy_ref)) - (1 - ok) (miss_penalty +
    overshoot_weight min(overshoot, overshoot_cap)) - energy_weight energy / energy_budget``

    with ``overshoot = max(0, latency / time_budget - 1) + max(0, energy / energy_budget - 1)``.
    A miss costs a fixed penalty plus a term that grows with how far a budget was overshot (a
    near miss is better than a wild one); a configuration below ``min_accuracy`` costs the fixed
    penalty as a miss does.

    :param objective: the objective's name (reports and policies carry it)
    :param met_reward: reward for a request that meets both budgets (and the accuracy floor)
    :param accuracy_weight: reward per unit of top-1 above ``accuracy_ref`` on such a request
    :param accuracy_ref: top-1 that earns no accuracy reward (``normalised`` objectives: the
        DNN's least accurate group count, with ``accuracy_weight`` = 1 / the top-1 spread)
    :param min_accuracy: top-1 below which a configuration is not acceptable
    :param miss_penalty: fixed cost of missing either budget (or the floor)
    :param overshoot_weight: cost per unit of relative overshoot
    :param overshoot_cap: overshoot counted at most this much (keeps rewards bounded)
    :param energy_weight: cost per unit of energy / energy budget
    """

    objective: str = "custom"
    met_reward: float = 0.0
    accuracy_weight: float = 1.0
    accuracy_ref: float = 0.0
    min_accuracy: float = 0.0
    miss_penalty: float = 0.5
    overshoot_weight: float = 0.5
    overshoot_cap: float = 4.0
    energy_weight: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_value(cls, value: RewardConfig | dict | None) -> RewardConfig:
        """A reward from a :class:`RewardConfig`, a dict of its fields (a stored policy's or run's)
        or ``None`` (the default weights)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown reward weight(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: (str(v) if k == "objective" else float(v)) for k, v in value.items()})

    def floor_penalty(self, accuracy):
        """The cost of configurations below ``min_accuracy`` (0 for the others)."""
        return (accuracy < self.min_accuracy) * self.miss_penalty

    def __call__(self, accuracy, latency_ms, energy_mj, time_budget_ms, energy_budget_mj):
        """Reward of one request, or of arrays of them (element-wise).

        Written in arithmetic that means the same for floats and numpy arrays, so one function
        scores the env's step and the ceiling's search over every configuration.
        """
        t_over = latency_ms / time_budget_ms - 1.0
        e_ratio = energy_mj / energy_budget_mj
        e_over = e_ratio - 1.0
        met = (t_over <= 0.0) & (e_over <= 0.0)
        over = (t_over > 0.0) * t_over + (e_over > 0.0) * e_over
        capped = over - (over > self.overshoot_cap) * (over - self.overshoot_cap)
        floor = self.floor_penalty(accuracy)
        ok = met * (floor == 0)
        return (
            ok * (self.met_reward + self.accuracy_weight * (accuracy - self.accuracy_ref))
            - (1 - met) * (self.miss_penalty + self.overshoot_weight * capped)
            - met * floor
            - self.energy_weight * e_ratio
        )

    def sure_met(self, accuracy, energy_ratio):
        """The reward of configurations at or above the accuracy floor that meet both budgets,
        at ``energy_ratio`` = energy / energy budget (mean, <= 1)."""
        return self.met_reward + self.accuracy_weight * (accuracy - self.accuracy_ref) - self.energy_weight * energy_ratio

    def expected(self, accuracy, latency, energy, latency_draws, energy_draws, time_budget_ms: float, energy_budget_mj: float):
        """Mean reward of each configuration over noise draws: equal to
        ``self(accuracy[:, None], latency[:, None] * latency_draws, energy[:, None] * energy_draws,
        ...).mean(axis=1)`` (with ``latency`` and ``energy`` as given where they are ``(n, d)``),
        in the fewest array passes (the model-predictive controller runs it per request over every
        configuration).

        :param accuracy: top-1 per configuration, shape ``(n,)``
        :param latency: noise-free latency per configuration, shape ``(n,)``, or per configuration
            and draw, ``(n, d)`` (where the draws also differ in the quanta a run waits for co-runners)
        :param energy: noise-free energy per configuration, ``(n,)`` or ``(n, d)`` as ``latency``
        :param latency_draws: multiplicative latency noise draws, shape ``(d,)``
        :param energy_draws: multiplicative energy noise draws (paired with ``latency_draws``), ``(d,)``
        """
        t = _per_draw(latency / time_budget_ms, latency_draws)  # latency / budget
        e = _per_draw(energy / energy_budget_mj, energy_draws)  # energy / budget
        mean = np.full(t.shape[-1], 1.0 / t.shape[-1])  # row means as one matrix-vector product (fastest)
        e_mean = e @ mean
        met = ((t <= 1.0) & (e <= 1.0)) @ mean
        # overshoot max(0, t - 1) + max(0, e - 1) capped at c is min(max(t, 1) + max(e, 1), c + 2) - 2
        np.maximum(t, 1.0, out=t)
        np.maximum(e, 1.0, out=e)
        t += e
        np.minimum(t, self.overshoot_cap + 2.0, out=t)
        over = t @ mean - 2.0
        # meeting the budgets below the accuracy floor costs the miss penalty: no gain over a miss
        gain = np.where(
            accuracy >= self.min_accuracy,
            self.met_reward + self.accuracy_weight * (accuracy - self.accuracy_ref) + self.miss_penalty,
            0.0,
        )
        return met * gain - self.miss_penalty - self.overshoot_weight * over - self.energy_weight * e_mean


def _per_draw(ratio: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``ratio`` (per configuration, or per configuration and draw) times the draws, ``(n, d)``."""
    return ratio * draws if ratio.ndim == 2 else np.multiply.outer(ratio, draws)


def objective_names() -> list[str]:
    """The shipped objectives (``envs/objectives.yaml``)."""
    return list(yaml.safe_load(OBJECTIVES_FILE.read_text()))


def load_objective(name_or_path: str | None, accuracies: Sequence[float], **overrides: float) -> RewardConfig:
    """The reward of an objective: a shipped one by name or the single entry of a YAML file.

    :param accuracies: top-1 of each group count (resolves ``energy_weight: tie-break``)
    :param overrides: fields to set after loading (``min_accuracy=...`` from the command line)
    :raises ObjectiveError: one line naming the file and field at fault
    """
    name = name_or_path or DEFAULT_OBJECTIVE
    if name in objective_names():
        where, doc = OBJECTIVES_FILE, yaml.safe_load(OBJECTIVES_FILE.read_text())[name]
    else:
        p = Path(name)
        if not p.is_file():
            raise ObjectiveError(f"{name}: neither an objective ({', '.join(objective_names())}) nor a YAML file")
        raw = read_yaml(p, ObjectiveError, "objective file")
        if not isinstance(raw, dict) or len(raw) != 1 or not isinstance(next(iter(raw.values())), dict):
            raise ObjectiveError(f"{p}: must hold exactly one objective (name: {{weights}})")
        (name, doc), where = next(iter(raw.items())), p
    return _parse_objective(str(name), dict(doc), where, accuracies, overrides)


def _parse_objective(name: str, doc: dict, where: Path, accuracies: Sequence[float], overrides: dict) -> RewardConfig:
    doc.pop("description", None)
    weights = [f.name for f in fields(RewardConfig) if f.name != "objective"]
    for key in doc:
        if key not in weights:
            raise ObjectiveError(f"{where}: field '{name}.{key}' unknown; valid: {', '.join(weights)}")
    values = {}
    acc = np.unique(np.asarray(accuracies, dtype=float))
    if doc.get("accuracy_weight") == "normalised":  # k's top-1 mapped onto [0, 1]
        if "accuracy_ref" in doc:
            raise ObjectiveError(f"{where}: field '{name}.accuracy_ref' is set by accuracy_weight: normalised; drop one")
        doc["accuracy_weight"] = 1.0 / float(acc[-1] - acc[0]) if len(acc) > 1 else 0.0
        doc["accuracy_ref"] = float(acc[0])
    for key in weights:
        v = doc.get(key, getattr(RewardConfig, key))
        if key == "energy_weight" and v == "tie-break":
            v = TIE_BREAK_FRACTION * float(np.diff(acc).min()) * float(doc.get("accuracy_weight", 1.0)) if len(acc) > 1 else 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ObjectiveError(f"{where}: field '{name}.{key}' must be a finite number >= 0, got {v!r}")
        values[key] = float(v)
    if values["min_accuracy"] > 1:
        raise ObjectiveError(f"{where}: field '{name}.min_accuracy' is top-1 in [0, 1], got {values['min_accuracy']:g}")
    reward = RewardConfig(objective=name, **values)
    if overrides:
        reward = replace(reward, **{k: float(v) for k, v in overrides.items()})
    if reward.min_accuracy > max(accuracies):
        raise ObjectiveError(
            f"{where}: objective '{name}': min_accuracy {reward.min_accuracy:g} is above the DNN's best top-1 {max(accuracies):.4f}"
        )
    return reward
