"""Least-squares fits of platform-model coefficients, shared by the calibration to published
points (:mod:`hwmodels.calibrate`) and the live profiler (:mod:`runtime.profiler`).

Coefficients are physical (cycles, watts): never negative. One routine,
:func:`fit_nonnegative`, solves every such fit with SciPy's NNLS (Lawson-Hanson).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from hwmodels.config import ConfigSpace


def fit_nonnegative(X: np.ndarray, y: np.ndarray, relative: bool = False) -> np.ndarray:
    """Coefficients ``c >= 0`` minimising ``|X c - y|`` (or the relative error ``|(X c - y) / y|``).

    :param X: design matrix (points x terms)
    :param y: measured values (points)
    :param relative: weigh each point by ``1 / y``, so small and large values count alike
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = 1.0 / y if relative else np.ones_like(y)
    coef, _ = nnls(X * w[:, None], y * w)
    return coef


def fit_perf(space: ConfigSpace, unit: int, latency_ms: np.ndarray, macs: np.ndarray, memory_ms: np.ndarray) -> dict[str, float]:
    """The unit's ``perf`` coefficients from measured latencies of its configurations.

    Compute time (latency less the memory term) in cycles is ``W_k (s + (1 - s) / c) / mpc + O``
    = ``a W_k + b W_k / c + O`` with ``a, b, O >= 0``; then ``mpc = 1 / (a + b)``, ``s = a / (a + b)``.

    :param space: the configurations (``latency_ms`` and ``memory_ms`` are in its order)
    :param unit: index of the unit
    :param latency_ms: measured latency of every configuration
    :param macs: MACs of each group count k = 1..G
    :param memory_ms: modelled memory time of every configuration (does not scale with f)
    """
    idx = np.flatnonzero(space.unit_idx == unit)
    c = space.cores[idx].astype(float)
    w = macs[space.groups[idx] - 1]
    cycles = np.maximum(latency_ms[idx] - memory_ms[idx], 1e-6) * space.freq_mhz[idx] * 1e3
    a, b, o = (float(x) for x in fit_nonnegative(np.stack([w, w / c, np.ones_like(w)], 1), cycles))
    if a + b <= 0:  # nothing scales with the work: a degenerate table; say all of it is parallel
        a, b = 0.0, float(np.mean(cycles / w))
    return {"macs_per_cycle": 1 / (a + b), "serial_fraction": a / (a + b), "overhead_mcycles": o / 1e6}


def fit_interference(doc: dict, dnn, points: list[tuple[int, list[float], list[float], float]]) -> dict[str, float]:
    """``interference`` (``mem_slowdown``, ``barrier_slowdown``, ``wake_credit_ms``) from latencies
    measured beside co-runners.

    For a given wake-up credit ``C`` the model's latency is linear in the other two,
    ``t = t0 + m dt_m + b dt_b`` (the model is evaluated at (0, 0), (1, 0) and (0, 1), so the fit
    uses exactly the model's equations); ``m, b >= 0`` minimise a robust (soft-L1, scale 0.1) loss of the log
    ratio of model to measurement (latency noise is log-normal: over- and under-prediction by the
    same factor weigh alike), so one point the host disturbed does not set a coefficient. ``C`` is the
    best of a grid of :data:`CREDIT_GRID_POINTS` values from 0 to the longest measured latency
    (the error is piecewise smooth in ``C``, with a kink at every point's compute time), polished
    by a bounded scalar search between its grid neighbours.

    :param doc: the platform profile document (its other coefficients already fitted)
    :param dnn: the DNN profile (:class:`dnn.profile.DNNProfile`)
    :param points: (configuration index, observed busy threads per unit, memory intensity per unit,
        measured mean latency ms)
    :return: ``{"mem_slowdown": m, "barrier_slowdown": b, "wake_credit_ms": C}``
    """
    from scipy.optimize import least_squares, minimize_scalar

    from hwmodels.model import PlatformModel, State
    from hwmodels.profile import parse_platform

    y = np.array([p[3] for p in points], dtype=np.float64)
    temp = float(doc["thermal"]["start_c"])

    def latencies(m: float, b: float, credit: float) -> np.ndarray:
        trial = {**doc, "interference": {"mem_slowdown": m, "barrier_slowdown": b, "wake_credit_ms": credit}}
        model = PlatformModel(parse_platform(trial, "interference fit"), dnn)
        return np.array(
            [model.expected(i, State(np.asarray(ld, float), np.asarray(mem, float), temp)).latency_ms for i, ld, mem, _ in points]
        )

    def fit_at(credit: float) -> tuple[float, np.ndarray]:
        t0 = latencies(0.0, 0.0, credit)
        X = np.stack([latencies(1.0, 0.0, credit) - t0, latencies(0.0, 1.0, credit) - t0], 1)
        start = fit_nonnegative(X / y[:, None], (y - t0) / y)
        fit = least_squares(lambda c: np.log((t0 + X @ c) / y), start, bounds=(0.0, np.inf), loss="soft_l1", f_scale=0.1)
        return float(fit.cost), fit.x

    grid = np.linspace(0.0, min(float(y.max()), MAX_CREDIT_MS), CREDIT_GRID_POINTS)
    j = int(np.argmin([fit_at(c)[0] for c in grid]))
    # polish between the grid neighbours of the best point
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    credit = float(minimize_scalar(lambda c: fit_at(c)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-4}).x)
    if fit_at(grid[j])[0] <= fit_at(credit)[0]:  # a flat cost (no point has excess load) keeps the grid's
        credit = float(grid[j])
    m, b = fit_at(credit)[1]
    return {"mem_slowdown": float(m), "barrier_slowdown": float(b), "wake_credit_ms": credit}


#: values of the wake-up credit the interference fit tries
CREDIT_GRID_POINTS = 121
#: the largest credit a profile may hold (hwmodels.profile checks it)
MAX_CREDIT_MS = 1000.0
