"""The online slow-down estimate (envs/slowdown.py): tracking, filtering, forgetting, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.slowdown import SlowdownEstimator


def run(est: SlowdownEstimator, unit: int, ratio: float, n: int, load=(0.0, 0.0)) -> None:
    for _ in range(n):
        est.observe(load)
        est.update(unit, measured_ms=10.0 * ratio, predicted_ms=10.0)


def test_a_co_runner_starting_or_stopping_is_tracked_within_a_few_requests() -> None:
    est = SlowdownEstimator(2, latency_cv=0.06)
    run(est, 0, 1.0, 200)  # settled: the model is right
    run(est, 0, 1.5, 1, load=(2.0, 0.0))  # a co-runner starts: load jumps, the unit slows
    assert est.factors[0] > 1.5**0.85  # the first request after the change moves it most of the way
    run(est, 0, 1.5, 4, load=(2.0, 0.0))
    assert est.factors[0] == pytest.approx(1.5, rel=0.02)
    run(est, 0, 1.0, 5, load=(0.0, 0.0))  # it stops
    assert est.factors[0] == pytest.approx(1.0, rel=0.03)


def test_without_a_load_change_jitter_is_averaged_over_many_requests() -> None:
    rng = np.random.default_rng(0)
    est = SlowdownEstimator(1, latency_cv=0.06, q_drift=1e-4)
    seen = []
    for x in np.exp(rng.normal(math.log(1.2), 0.06, 3000)):
        est.observe((0.0,))
        est.update(0, 10.0 * x, 10.0)
        seen.append(math.log(est.factors[0]))
    seen = np.array(seen[200:])
    assert seen.mean() == pytest.approx(math.log(1.2), abs=0.01)
    gain = (math.sqrt(1e-4**2 + 4 * 1e-4 * 0.06**2) - 1e-4) / 2 / (0.06**2)  # steady-state Kalman gain
    assert seen.std() == pytest.approx(0.06 * math.sqrt(gain / (2 - gain)), rel=0.2)
    assert seen.std() < 0.06 / 3  # far steadier than one request


def test_units_that_do_not_run_forget_towards_the_nominal_model() -> None:
    est = SlowdownEstimator(2, latency_cv=0.06, decay=0.1)
    run(est, 1, 2.0, 10)
    assert est.factors[0] == 1.0 and est.factors[1] == pytest.approx(2.0, rel=0.02)
    f = est.factors[1]
    run(est, 0, 1.0, 10)  # unit 1 idles: its estimate fades by decay per request it did not run the one before
    assert est.factors[1] == pytest.approx(f ** (0.9**9), rel=1e-6)
    # and its certainty fades too: after a long idle spell the first request on it counts almost fully
    run(est, 0, 1.0, 200)
    est.observe((0.0, 0.0))
    est.update(1, measured_ms=15.0, predicted_ms=10.0)
    assert est.factors[1] > 1.5**0.9
    est.reset()
    assert est.factors == [1.0, 1.0]


def test_bounds_bad_timings_and_parameters() -> None:
    est = SlowdownEstimator(1, latency_cv=0.0, bounds=(0.5, 3.0))  # a noise-free profile still filters
    run(est, 0, 100.0, 5, load=(0.0,))
    assert est.factors[0] == pytest.approx(3.0)
    est.update(0, 0.0, 1.0)  # a failed timing teaches nothing
    assert est.factors[0] == pytest.approx(3.0)
    run(est, 0, 0.01, 50, load=(0.0,))
    assert est.factors[0] == pytest.approx(0.5)
    for bad in ({"latency_cv": -1.0}, {"decay": 1.0}, {"q_change": -1.0}, {"bounds": (1.5, 3.0)}):
        with pytest.raises(ValueError):
            SlowdownEstimator(1, **bad)


def test_measurement_noise_is_learnt_online_and_outliers_are_clipped() -> None:
    """A board that jitters far more than its idle profile said: the estimate learns the noise
    and steadies (with the profile's noise kept, it chases every request)."""
    rng = np.random.default_rng(1)
    ratios = np.exp(rng.normal(0.0, 0.3, 4000))
    spread = {}
    for rate in (0.0, 0.05):
        est = SlowdownEstimator(1, latency_cv=0.02, q_drift=1e-4, noise_rate=rate)
        seen = []
        for x in ratios:
            est.observe((0.0,))
            est.update(0, 10.0 * x, 10.0)
            seen.append(math.log(est.factors[0]))
        spread[rate] = np.std(seen[500:])
        if rate:
            assert math.sqrt(est.r[0]) == pytest.approx(0.3, rel=0.25)
    gain = math.sqrt(1e-4 / 0.3**2)  # the steady-state gain with the true noise (q << R)
    assert spread[0.05] == pytest.approx(0.3 * math.sqrt(gain / (2 - gain)), rel=0.25) and spread[0.05] < spread[0.0]
    est = SlowdownEstimator(1, latency_cv=0.06)
    run(est, 0, 1.0, 200)
    run(est, 0, 20.0, 1)  # one request descheduled for a long time
    assert est.factors[0] < 1.1
    run(est, 0, 1.0, 50)
    run(est, 0, 2.0, 4)  # but a change nobody announced (no load change seen) is tracked within a few requests
    assert est.factors[0] == pytest.approx(2.0, rel=0.1)
