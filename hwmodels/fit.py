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


def fit_interference(doc: dict, dnn, points: list[tuple], fit_thread_wait: bool = True) -> dict[str, float]:
    """``interference`` (``mem_slowdown``, ``barrier_slowdown``, ``wake_credit_ms``,
    ``thread_wait_ms``, ``preempt_share``) from latencies measured beside co-runners.

    For a given wake-up credit ``C`` and thread wait ``d`` the model's latency is
    ``t = r + m dt_m + max(s (w0 + b dw_b), w_d)``: memory contention adds to the rest, the barrier
    stretches the fair-share wait ``w0`` beyond the credit, a run waits the share ``s`` of it
    (``preempt_share``), and a held multi-core run waits at least ``w_d`` (its thread wait alone,
    read off the model with no share). Each term is read off the model's own outcomes
    at (m, b) = (0, 0), (1, 0), (0, 1) and at ``d`` (latency and mean wait), so the fit uses exactly
    the model's equations. ``m, b`` in [0, :data:`MAX_SLOWDOWN`] and ``s`` in [:data:`MIN_PREEMPT_SHARE`, 1] minimise a robust (soft-L1, scale 0.1) loss of the log
    ratio of model to measurement (latency noise is log-normal: over- and under-prediction by the
    same factor weigh alike), so one point the host disturbed does not set a coefficient. ``(C, d)``
    is the best of a grid (:data:`CREDIT_GRID_POINTS` x :data:`THREAD_WAIT_GRID_POINTS` values
    from 0 to the longest measured latency plus the longest time awake, as the credit counts from
    the wake; the error is piecewise smooth, with a kink at every
    point's compute time), polished jointly (Nelder-Mead) from there and from the next best local
    minima of the grid at other credits (:data:`POLISH_STARTS` in all). Of equally good grid points
    the least ``d``, then ``C``, stands (a flat error, where no point has excess load or no held
    multi-core run waits longer than its share, keeps them 0), and the polish only where it lowers
    the error; where no point tells a share from the whole, ``s`` stays 1.

    :param doc: the platform profile document (its other coefficients already fitted)
    :param dnn: the DNN profile (:class:`dnn.profile.DNNProfile`)
    :param points: (configuration index, observed busy threads per unit, memory intensity per unit,
        measured mean latency ms[, ms the loop had run since its wake when the inference started])
    :param fit_thread_wait: ``False``: hold ``d`` at 0 (the model without the term, to compare)
    :return: ``{"mem_slowdown": m, "barrier_slowdown": b, "wake_credit_ms": C, "thread_wait_ms": d, "preempt_share": s}``
    """
    from scipy.optimize import least_squares, minimize, minimize_scalar

    from hwmodels.model import PlatformModel, State
    from hwmodels.profile import parse_platform

    y = np.array([p[3] for p in points], dtype=np.float64)
    temp = float(doc["thermal"]["start_c"])
    states = [State(np.asarray(p[1], float), np.asarray(p[2], float), temp, None, p[4] if len(p) > 4 else 0.0) for p in points]

    def outcomes(m: float, b: float, credit: float, thread_wait: float, share: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(latency, mean wait) of every point."""
        coefficients = {
            "mem_slowdown": m,
            "barrier_slowdown": b,
            "wake_credit_ms": credit,
            "thread_wait_ms": thread_wait,
            "preempt_share": share,
        }
        model = PlatformModel(parse_platform({**doc, "interference": coefficients}, "interference fit"), dnn)
        o = [model.expected(p[0], s) for p, s in zip(points, states)]
        return np.array([x.latency_ms for x in o]), np.array([x.wait_ms for x in o])

    def terms(credit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rest r, dt_m, w0, dw_b) at this credit."""
        t0, w0 = outcomes(0.0, 0.0, credit, 0.0)
        t_m, _ = outcomes(1.0, 0.0, credit, 0.0)
        _, w_b = outcomes(0.0, 1.0, credit, 0.0)
        return t0 - w0, t_m - t0, w0, w_b - w0

    held: dict[float, np.ndarray] = {}

    def thread_wait_alone(thread_wait: float) -> np.ndarray:
        """Every point's thread wait without any share (it does not depend on the credit)."""
        if thread_wait not in held:
            held[thread_wait] = outcomes(0.0, 0.0, 0.0, thread_wait, share=0.0)[1]
        return held[thread_wait]

    def fit_at(credit: float, thread_wait: float, at: tuple | None = None) -> tuple[float, np.ndarray]:
        """(cost, [m, b, s]) at this credit and thread wait."""
        rest, dt_m, w0, dw_b = at if at is not None else terms(credit)
        w_d = thread_wait_alone(thread_wait) if thread_wait > 0 else np.zeros_like(w0)

        def latency(c: np.ndarray) -> np.ndarray:
            return rest + c[0] * dt_m + np.maximum(c[2] * (w0 + c[1] * dw_b), w_d)

        def cost(c: np.ndarray) -> float:
            return _soft_l1(np.log(latency(c) / y))

        t0 = latency(np.array([0.0, 0.0, 1.0]))
        start = fit_nonnegative(np.stack([dt_m, dw_b], 1) / y[:, None], (y - t0) / y)  # as if the share won
        start = np.append(np.minimum(start, MAX_SLOWDOWN), 1.0)
        bounds = ([0.0, 0.0, MIN_PREEMPT_SHARE], [MAX_SLOWDOWN, MAX_SLOWDOWN, 1.0])
        fit = least_squares(lambda c: np.log(latency(c) / y), start, bounds=bounds, loss="soft_l1", f_scale=0.1)
        x = fit.x
        if x[2] < 1.0 and cost(np.array([x[0], x[1], 1.0])) <= fit.cost * (1 + TIE) + TIE_ABS:
            x = np.array([x[0], x[1], 1.0])  # no point tells a share from the whole: the fair share stands
        if x[1] > 0 and cost(np.array([x[0], 0.0, x[2]])) <= fit.cost * (1 + TIE) + TIE_ABS:
            x = np.array([x[0], 0.0, x[2]])  # no point feels the barrier: say none
        return float(fit.cost), x

    awake = max(s.awake_ms for s in states)
    top = min(float(y.max()) + awake, MAX_CREDIT_MS)  # a credit counted from the wake
    credits = np.linspace(0.0, top, CREDIT_GRID_POINTS)
    waits = np.linspace(0.0, top, THREAD_WAIT_GRID_POINTS) if fit_thread_wait else np.zeros(1)
    cost = np.empty((len(waits), len(credits)))
    for j, credit in enumerate(credits):
        at = terms(credit)
        cost[:, j] = [fit_at(credit, d, at)[0] for d in waits]
    ties = np.argwhere(cost <= cost.min() * (1 + TIE) + TIE_ABS)  # row-major: least d, then least C
    credit, thread_wait = float(credits[ties[0][1]]), float(waits[ties[0][0]])
    if fit_thread_wait:
        half = [credits[1] / 2, waits[1] / 2]

        def polish_from(start: tuple[float, float]):
            simplex = [list(start), [start[0] + half[0], start[1]], [start[0], start[1] + half[1]]]
            return minimize(
                lambda x: fit_at(*x)[0],
                list(start),
                method="Nelder-Mead",
                bounds=[(0.0, top)] * 2,
                options={"initial_simplex": simplex, "xatol": 1e-4, "fatol": POLISH_FATOL},
            )

        # from the best grid point and the next best local minima of the grid: a share below 1 trades
        # against the credit, so the best cell of a coarse grid may lie in another valley than the optimum
        starts, columns = [(credit, thread_wait)], {int(ties[0][1])}
        for i, j in _local_minima(cost):  # one start per credit: a plateau in d is one valley
            if len(starts) < POLISH_STARTS and j not in columns:
                starts.append((float(credits[j]), float(waits[i])))
                columns.add(j)
        polish = min((polish_from(x) for x in starts), key=lambda r: r.fun)
        polished = [float(x) for x in polish.x]
    else:
        j = int(np.searchsorted(credits, credit))
        lo, hi = credits[max(j - 1, 0)], credits[min(j + 1, len(credits) - 1)]
        polish = minimize_scalar(lambda c: fit_at(c, 0.0)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        polished = [float(polish.x), 0.0]
    if polish.fun < cost.min() * (1 - TIE) - TIE_ABS:
        credit, thread_wait = polished
        if thread_wait > 0 and fit_at(credit, 0.0)[0] <= polish.fun * (1 + TIE) + TIE_ABS:
            thread_wait = 0.0  # the polish moved a thread wait no point feels: say none
    m, b, share = fit_at(credit, thread_wait)[1]
    return {
        "mem_slowdown": float(m),
        "barrier_slowdown": float(b),
        "wake_credit_ms": credit,
        "thread_wait_ms": thread_wait,
        "preempt_share": float(share),
    }


def _local_minima(cost: np.ndarray) -> list[tuple[int, int]]:
    """Cells of a 2-D grid no neighbour (of eight) is below, by ascending cost."""
    padded = np.pad(cost, 1, constant_values=np.inf)
    rows, cols = cost.shape
    neighbours = [padded[1 + di : 1 + di + rows, 1 + dj : 1 + dj + cols] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
    cells = np.argwhere(np.all([cost <= n for n in neighbours], axis=0))
    return [(int(i), int(j)) for i, j in sorted(cells.tolist(), key=lambda c: cost[c[0], c[1]])]


def _soft_l1(residuals: np.ndarray, f_scale: float = 0.1) -> float:
    """The cost ``scipy.optimize.least_squares`` minimises with ``loss="soft_l1"``."""
    z = (residuals / f_scale) ** 2
    return float(0.5 * f_scale**2 * np.sum(2.0 * (np.sqrt(1.0 + z) - 1.0)))


#: the least ``preempt_share`` the interference fit gives
MIN_PREEMPT_SHARE = 0.05
#: the joint polish starts from this many of the grid's best local minima (one per credit)
POLISH_STARTS = 3
#: values of the wake-up credit the interference fit tries
CREDIT_GRID_POINTS = 121
#: values of the thread wait the interference fit tries (at each credit)
THREAD_WAIT_GRID_POINTS = 13
#: relative difference in cost below which two fits count as equally good
TIE = 1e-9
#: the joint polish stops when its simplex's costs agree within this (absolute)
POLISH_FATOL = 1e-9
#: absolute difference in cost (half the sum of squared log ratios) below which two fits count as
#: equally good: rounding, where a fit is exact
TIE_ABS = 1e-12
#: the largest ``mem_slowdown`` and ``barrier_slowdown`` a profile may hold (hwmodels.profile checks
#: them): where no point is sensitive to one (a held multi-core run whose thread wait exceeds its
#: share does not feel the barrier), the fit could otherwise wander to any value
MAX_SLOWDOWN = 100.0
#: the largest credit a profile may hold (hwmodels.profile checks it)
MAX_CREDIT_MS = 1000.0
