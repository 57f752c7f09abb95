"""Online correction of the platform model: a filtered slow-down factor per unit.

The model predicts a configuration's latency from the state the board observes; what it cannot
see (the memory intensity of co-runners, a board slower or faster than its profile, a drift as
the board warms) shows as measured latency / predicted latency. ALERT (Wan et al., USENIX
ATC'20) keeps the model and corrects it online with a Kalman-filtered slow-down factor; this is
that factor, one per unit, shared by the simulated env and the live runtime.

Per unit, a scalar Kalman filter on ``x = log(slow-down)`` (a ratio of 2 and one of 1/2 weigh
alike):

* *measurement*: after a request ran on unit ``u``, ``y = log(measured / predicted)`` with
  ``predicted`` the nominal model's (where co-runners preempt in quanta, both less the quanta
  the model's mean wait makes certain; a run that most likely waited one more, a tick having
  landed in it, teaches nothing of the board's speed and is skipped:
  :meth:`hwmodels.model.PlatformModel.explain`; so the estimate is of the board's compute, the
  kernel's quanta being the same on a slower board; a count of quanta the profile's jitter
  leaves ambiguous is skipped too); its noise is the run-to-run jitter, variance ``R``: the
  profile's ``latency_cv^2`` to start with, then estimated online per unit from the innovations
  (``E[(y - x)^2] = P + R``, an exponential average at rate ``noise_rate``: a board whose
  latency jitters more under load than the idle profile said is trusted less, request by
  request); an innovation beyond ``clip`` standard deviations counts as that many (one
  request descheduled for 100 ms moves the estimate no more than a plausible one would), but a
  second one the same way in a row is a change, not jitter: the variance grows by ``q_change``
  as on a load change (a co-runner the load monitor cannot see, on another unit, a memory
  streamer);
* *time update*, before every request: the slow-down may drift (variance ``q_drift`` per
  request) and, on a unit that is not running, relaxes towards the prior by ``decay``: the
  log-estimate towards 0 and its variance towards ``q_init`` (an estimate made under a
  co-runner that has since stopped must not keep the unit looking slow, nor look certain, when
  no controller runs it again to find out); when the background load the board measures changes
  on any unit (a co-runner started or stopped, whose memory intensity nobody observes), the
  variance grows by ``q_change``, so the next measurements count almost fully.

In steady state the gain is about ``sqrt(q_drift / R)`` (jitter averaged over many requests);
after a load change it is near 1 (the first request on the unit moves the estimate most of the
way). The corrected prediction of a configuration on unit ``u`` is nominal x ``factors[u]``
(its compute and mean wait; whole quanta as they are: :meth:`hwmodels.model.PlatformModel.realised_latency`).
Plain Python, no allocation per request: it runs in the env's step and in the live loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: the factor's clip, and the bounds of its log scale in the observation
SLOWDOWN_RANGE = (0.5, 3.0)
#: the measurement noise assumed at the least
MIN_LATENCY_CV = 0.01


class SlowdownEstimator:
    """Per-unit Kalman-filtered slow-down (measured / predicted latency).

    :param n_units: units of the platform
    :param latency_cv: run-to-run latency jitter (coefficient of variation, the profile's; taken
        as at least :data:`MIN_LATENCY_CV`: no timing is exact, and a noise-free model would
        otherwise trust a single request completely)
    :param q_drift: variance of the log slow-down's change per request (slow drift)
    :param q_change: variance added when the measured background load changes
    :param load_step: busy threads by which a unit's load must move to count as a change
    :param decay: per request, the share of a non-running unit's log-estimate (and of its
        variance's distance below ``q_init``) forgotten
    :param bounds: (low, high) the factor is clipped to
    :param noise_rate: rate of the online estimate of the measurement noise (0: keep the profile's)
    :param clip: innovations are clipped to this many standard deviations
    :param q_init: variance of the log slow-down before the first request (a board within about
        0.6x-1.6x of its model at one standard deviation)
    """

    def __init__(
        self,
        n_units: int,
        latency_cv: float = 0.06,
        q_drift: float = 1e-5,
        q_change: float = 0.04,
        load_step: float = 0.5,
        decay: float = 0.02,
        bounds: tuple[float, float] = SLOWDOWN_RANGE,
        noise_rate: float = 0.05,
        clip: float = 2.5,
        q_init: float = 0.25,
    ) -> None:
        if not latency_cv >= 0:
            raise ValueError(f"latency_cv must be >= 0, got {latency_cv!r}")
        if q_drift < 0 or q_change < 0 or q_init < 0:
            raise ValueError(f"q_drift and q_change must be >= 0, got {q_drift!r}, {q_change!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        if not 0.0 < bounds[0] <= 1.0 <= bounds[1]:
            raise ValueError(f"bounds must satisfy 0 < low <= 1 <= high, got {bounds!r}")
        if not 0.0 <= noise_rate < 1.0 or not clip > 0:
            raise ValueError(f"noise_rate must be in [0, 1) and clip > 0, got {noise_rate!r}, {clip!r}")
        self.r0 = max(float(latency_cv), MIN_LATENCY_CV) ** 2
        self.noise_rate, self.clip = float(noise_rate), float(clip)
        self.q_drift, self.q_change, self.load_step, self.decay = float(q_drift), float(q_change), float(load_step), float(decay)
        self._log_bounds = (math.log(bounds[0]), math.log(bounds[1]))
        n = int(n_units)
        self._x = [0.0] * n
        self.q_init = float(q_init)
        self._p = [self.q_init] * n
        self.r = [self.r0] * n
        self._streak = [0] * n
        self._load: list[float] | None = None
        self._ran = -1
        self.factors: list[float] = [1.0] * n

    def reset(self) -> None:
        """Back to the nominal model (every factor 1, uncertain)."""
        for u in range(len(self._x)):
            self._x[u], self._p[u], self.r[u], self._streak[u], self.factors[u] = 0.0, self.q_init, self.r0, 0, 1.0
        self._load, self._ran = None, -1

    def observe(self, load: Sequence[float]) -> None:
        """Time update before a request: drift, forgetting on units that did not run the last
        request, and more uncertainty where the measured background load changed."""
        changed = self._load is not None and any(abs(a - b) >= self.load_step for a, b in zip(load, self._load))
        self._load = list(load)
        keep = 1.0 - self.decay
        for u in range(len(self._x)):
            if u != self._ran:
                self._x[u] *= keep
                self.factors[u] = math.exp(self._x[u])
                self._p[u] += self.decay * max(self.q_init - self._p[u], 0.0)
            self._p[u] += self.q_drift + (self.q_change if changed else 0.0)

    def ran(self, unit: int) -> None:
        """A request ran on ``unit`` that teaches nothing of its speed (a co-runner's quantum
        landed in it: :meth:`hwmodels.model.PlatformModel.explain`): the unit is not forgotten as
        one that did not run, and the estimate stays."""
        self._ran = unit

    def update(self, unit: int, measured_ms: float, predicted_ms: float) -> None:
        """Measurement update with one request that ran on ``unit``: measured latency vs the
        nominal prediction (a non-positive timing teaches nothing and is skipped)."""
        self.ran(unit)
        if measured_ms <= 0.0 or predicted_ms <= 0.0:
            return
        p, r = self._p[unit], self.r[unit]
        nu = math.log(measured_ms / predicted_ms) - self._x[unit]
        bound = self.clip * math.sqrt(p + r)
        if abs(nu) > bound:
            up = nu > 0
            streak = self._streak[unit]
            streak = (streak + 1 if up else streak - 1) if (streak > 0) == up and streak else (1 if up else -1)
            self._streak[unit] = streak
            changed = abs(streak) >= 2  # a second outlier the same way in a row: the board changed, not jitter
            if changed:
                p += self.q_change
                bound = self.clip * math.sqrt(p + r)
            nu = min(nu, bound) if up else max(nu, -bound)
        else:
            self._streak[unit], changed = 0, False
        if not changed:  # a change is not noise
            self.r[unit] = r + self.noise_rate * (max(nu * nu - p, MIN_LATENCY_CV**2) - r)
        gain = p / (p + r)
        x = self._x[unit] + gain * nu
        lo, hi = self._log_bounds
        self._x[unit] = lo if x < lo else (hi if x > hi else x)
        self._p[unit] = (1.0 - gain) * p
        self.factors[unit] = math.exp(self._x[unit])
