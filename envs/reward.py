"""The reward of one request (configurable weights; the same function scores the live runs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward.

    ``r = accuracy * [both met] - miss_penalty * [a budget missed]
    - overshoot_weight * min(overshoot, overshoot_cap) - energy_weight * energy / energy_budget``

    with ``overshoot = max(0, latency / time_budget - 1) + max(0, energy / energy_budget - 1)``.
    Accuracy (top-1 in [0, 1]) is earned only when both budgets are met; a miss costs a fixed
    penalty plus a term that grows with how far the budget was overshot (so a near miss is
    better than a wild one); the small energy term makes the cheaper of two equally accurate
    configurations win.

    :param miss_penalty: fixed cost of missing either budget
    :param overshoot_weight: cost per unit of relative overshoot
    :param overshoot_cap: overshoot counted at most this much (keeps rewards bounded)
    :param energy_weight: cost per unit of energy / energy budget
    """

    miss_penalty: float = 0.5
    overshoot_weight: float = 0.5
    overshoot_cap: float = 4.0
    energy_weight: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_value(cls, value: RewardConfig | dict | None) -> RewardConfig:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown reward weight(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: float(v) for k, v in value.items()})

    def __call__(self, accuracy, latency_ms, energy_mj, time_budget_ms, energy_budget_mj):
        """Reward of one request, or of arrays of them (element-wise).

        Written in arithmetic that means the same for floats and numpy arrays, so one function
        scores the env's step and the oracle's search over every configuration.
        """
        t_over = latency_ms / time_budget_ms - 1.0
        e_ratio = energy_mj / energy_budget_mj
        e_over = e_ratio - 1.0
        met = (t_over <= 0.0) & (e_over <= 0.0)
        over = (t_over > 0.0) * t_over + (e_over > 0.0) * e_over
        capped = over - (over > self.overshoot_cap) * (over - self.overshoot_cap)
        return met * accuracy - (1 - met) * (self.miss_penalty + self.overshoot_weight * capped) - self.energy_weight * e_ratio

    def expected(self, accuracy, latency, energy, latency_draws, energy_draws, time_budget_ms: float, energy_budget_mj: float):
        """Mean reward of each configuration over noise draws: equal to
        ``self(accuracy[:, None], latency[:, None] * latency_draws, energy[:, None] * energy_draws,
        ...).mean(axis=1)``, in the fewest array passes (the model-predictive controller runs it
        per request over every configuration).

        :param accuracy: top-1 per configuration, shape ``(n,)``
        :param latency: noise-free latency per configuration, shape ``(n,)``
        :param energy: noise-free energy per configuration, shape ``(n,)``
        :param latency_draws: multiplicative latency noise draws, shape ``(d,)``
        :param energy_draws: multiplicative energy noise draws (paired with ``latency_draws``), ``(d,)``
        """
        t = np.multiply.outer(latency / time_budget_ms, latency_draws)  # latency / budget
        e = np.multiply.outer(energy / energy_budget_mj, energy_draws)  # energy / budget
        mean = np.full(t.shape[-1], 1.0 / t.shape[-1])  # row means as one matrix-vector product (fastest)
        met = ((t <= 1.0) & (e <= 1.0)) @ mean
        # overshoot max(0, t - 1) + max(0, e - 1) capped at c is min(max(t, 1) + max(e, 1), c + 2) - 2
        np.maximum(t, 1.0, out=t)
        np.maximum(e, 1.0, out=e)
        t += e
        np.minimum(t, self.overshoot_cap + 2.0, out=t)
        over = t @ mean - 2.0
        e_mean = energy / energy_budget_mj * energy_draws.mean()
        return (
            met * (accuracy + self.miss_penalty) - self.miss_penalty - self.overshoot_weight * over - self.energy_weight * e_mean
        )
