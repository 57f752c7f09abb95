"""Calibration: fit a profile's coefficients to its published points, and report the fit.

The published points live in the profile under ``calibration:`` (each with its source), so the
fit and the report need nothing outside the package. ``fit_*`` return coefficients (used to
write the shipped profiles: ``python -m hwmodels.calibrate xu3``); :func:`calibration_report`
evaluates every published point with :class:`PlatformModel` itself and states the error.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnn.fileio import read_yaml
from dnn.profile import DNNProfile, GroupCost
from hwmodels.config import Config
from hwmodels.fit import fit_nonnegative
from hwmodels.model import PlatformModel, State
from hwmodels.profile import PlatformProfileError, PlatformSpec, load_platform

REFERENCE_NETWORKS_FILE = Path(__file__).resolve().parent / "reference_networks.yaml"


@dataclass(frozen=True)
class CalibrationRow:
    """One published point against the model."""

    quantity: str
    condition: str
    published: float
    model: float
    tolerance: float | None
    source: str

    @property
    def error(self) -> float:
        """Relative error (model / published - 1); absolute degrees C for temperatures."""
        if self.quantity.startswith("temperature"):
            return self.model - self.published
        return self.model / self.published - 1.0

    @property
    def ok(self) -> bool:
        return self.tolerance is None or abs(self.error) <= self.tolerance


def reference_networks() -> dict[str, dict]:
    """The published networks' work (``reference_networks.yaml``)."""
    return read_yaml(REFERENCE_NETWORKS_FILE, ValueError, "reference network table")


@functools.cache
def reference_profile(name: str) -> DNNProfile:
    """A one-configuration DNN profile with the work of a published reference network (cached:
    the fits evaluate the same few networks hundreds of times)."""
    n = reference_networks()[name]
    cost = GroupCost(
        groups=1,
        top1=0.0,
        macs=int(n["gmacs"] * 1e9),
        params=int(n["mparams"] * 1e6),
        weight_bytes=int(n["mparams"] * 4e6),
        activation_bytes=0,
        layers=int(n["layers"]),
    )
    return DNNProfile(name=name, configs=(cost,), source=str(REFERENCE_NETWORKS_FILE))


def _unit_volts(spec: PlatformSpec, unit: str, freqs: np.ndarray) -> np.ndarray:
    u = spec.unit(unit)
    idx = np.searchsorted(u.freqs_mhz, freqs)
    if np.any(u.freqs_mhz[np.minimum(idx, len(u.freqs_mhz) - 1)] != freqs):
        raise PlatformProfileError(f"{spec.path}: field 'calibration': a frequency is not in the {unit} DVFS table")
    return u.volts[idx]


# ---------------------------------------------------------------- fits


def fit_power(spec: PlatformSpec, unit: str) -> dict[str, float]:
    """Least-squares (relative error) fit of idle_dyn, leak, uncore and per_core to published rail power."""
    cal = spec.calibration["power"][unit]
    pts = np.asarray(cal["points"], dtype=np.float64)
    f, busy, p = pts[:, 0], pts[:, 1], pts[:, 2]
    v = _unit_volts(spec, unit, f)
    v2f = v * v * f / 1e3
    active = busy > 0
    share = spec.calibration.get("uncore_share")
    if not np.any(busy == 0):
        # no idle point: a rail that is power-gated when idle (the Nano GPU reads 0 mW idle)
        coef = fit_nonnegative((busy * v2f)[:, None], p, relative=True)
        out = {"idle_dyn": 0.0, "leak": 0.0, "uncore": 0.0, "per_core": coef[0]}
    elif np.all(busy <= 1):
        # uncore and per-core are not separable from these points: fixed ratio
        coef = fit_nonnegative(np.stack([v2f, v, (share * active + busy) * v2f], 1), p, relative=True)
        out = {"idle_dyn": coef[0], "leak": coef[1], "uncore": share * coef[2], "per_core": coef[2]}
    else:
        coef = fit_nonnegative(np.stack([v2f, v, active * v2f, busy * v2f], 1), p, relative=True)
        out = {"idle_dyn": coef[0], "leak": coef[1], "uncore": coef[2], "per_core": coef[3]}
    return {k: round(float(x), 5) for k, x in out.items()}


def fit_serial_fraction(spec: PlatformSpec) -> float:
    """Amdahl serial fraction from published 1-thread / 4-thread latency pairs (``calibration.speedup``).

    Each pair is evaluated with the unit's own model, so memory and overhead terms are counted.
    """
    pts = spec.calibration["speedup"]["points"]
    best = None
    for s in np.linspace(0.0, 0.3, 61):
        trial = _with_perf(spec, {u.name: {"serial_fraction": float(s)} for u in spec.units if u.kind == "cpu"})
        err = [
            (_latency(trial, unit, 1, f, net) / _latency(trial, unit, 4, f, net)) / (t1 / t4) - 1 for unit, f, net, t1, t4 in pts
        ]
        rms = float(np.sqrt(np.mean(np.square(err))))
        if best is None or rms < best[0]:
            best = (rms, float(s))
    return round(best[1], 3)


def fit_macs_per_cycle(spec: PlatformSpec, unit: str) -> float:
    """MACs per cycle per core that best fits the unit's absolute published latencies (``calibration.latency``).

    The latency is linear in 1 / macs_per_cycle, so the fit is one weighted least-squares step.
    The per-inference and per-layer overheads are not fitted: at 224x224 a "per-layer" term
    would absorb the ImageNet layers' activation traffic, which a 32x32 CIFAR layer does not
    have. They stay the profile's stated values (framework dispatch, tens of microseconds).
    """
    pts = [p for p in spec.calibration["latency"]["points"] if p[0] == unit and p[-1] != "check"]
    one = _with_perf(spec, {unit: {"macs_per_cycle": 1.0}})
    huge = _with_perf(spec, {unit: {"macs_per_cycle": 1e12}})
    rest = np.array([_latency(huge, unit, c, f, net) for _, c, f, net, _t, *_ in pts])
    compute = np.array([_latency(one, unit, c, f, net) for _, c, f, net, _t, *_ in pts]) - rest
    target = np.array([p[4] for p in pts]) - rest
    w = 1.0 / np.array([p[4] for p in pts])
    inv = float(np.sum(w * w * compute * target) / np.sum(w * w * compute * compute))
    return round(1.0 / inv, 4)


def _latency(spec: PlatformSpec, unit: str, threads: int, freq: float, net: str) -> float:
    m = PlatformModel(spec, reference_profile(net))
    return float(
        m.expected(
            m.space.encode(Config(1, unit, int(threads), float(freq))), State.idle(m.n_units, spec.thermal.start_c)
        ).latency_ms
    )


def _with_perf(spec: PlatformSpec, changes: dict[str, dict]) -> PlatformSpec:
    units = tuple(dataclasses.replace(u, perf=dataclasses.replace(u.perf, **changes.get(u.name, {}))) for u in spec.units)
    return dataclasses.replace(spec, units=units, measured=None)


def fit_thermal(spec: PlatformSpec) -> dict[str, float]:
    """Thermal resistance (and, with several points, the effective ambient) from published
    (rail power, temperature) pairs; one point keeps the profile's ambient."""
    th = spec.calibration["thermal"]
    pts = np.asarray(th["points"], dtype=np.float64)
    total = pts[:, 0] + spec.thermal.other_rails_w
    if len(pts) == 1:
        return {"r_th_c_per_w": round(float((pts[0, 1] - spec.thermal.ambient_c) / total[0]), 3)}
    slope, intercept = np.polyfit(total, pts[:, 1], 1)
    return {"r_th_c_per_w": round(float(slope), 3), "ambient_c": round(float(intercept), 2)}


# ---------------------------------------------------------------- report


def calibration_report(spec: PlatformSpec) -> list[CalibrationRow]:
    """Every published point of the profile, evaluated with the model, with its error.

    :raises PlatformProfileError: the ``calibration`` section does not have the expected shape
    """
    try:
        return _calibration_rows(dataclasses.replace(spec, measured=None))
    except PlatformProfileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PlatformProfileError(f"{spec.path}: field 'calibration' is malformed ({reason})") from None


def _calibration_rows(spec: PlatformSpec) -> list[CalibrationRow]:
    cal = spec.calibration
    rows: list[CalibrationRow] = []
    probe = PlatformModel(spec, reference_profile("alexnet"))
    for unit, c in cal.get("power", {}).items():
        if not isinstance(c, dict):
            continue
        ui = spec.unit_index(unit)
        ref_t = spec.unit(unit).power.leak_ref_c
        for f, busy, p in c["points"]:
            model = probe.unit_power(ui, f, busy, ref_t)
            rows.append(CalibrationRow(f"power {unit} W", f"{f:g} MHz, {busy:g} busy", p, model, c.get("tolerance"), c["source"]))
    lat = cal.get("latency")
    if lat:
        for unit, threads, f, net, t, *note in lat["points"]:
            cond = f"{net}, {threads} thr, {f:g} MHz" + (" (check)" if note else "")
            rows.append(
                CalibrationRow(
                    f"latency {unit} ms", cond, t, _latency(spec, unit, threads, f, net), lat.get("tolerance"), lat["source"]
                )
            )
    sp = cal.get("speedup")
    if sp:
        for unit, f, net, t1, t4 in sp["points"]:
            got = _latency(spec, unit, 1, f, net) / _latency(spec, unit, 4, f, net)
            rows.append(
                CalibrationRow(f"speed-up {unit} 4 thr/1", f"{net}, {f:g} MHz", t1 / t4, got, sp.get("tolerance"), sp["source"])
            )
    for r in cal.get("ratios", []):
        a, b = spec.unit(r["units"][0]).perf.macs_per_cycle, spec.unit(r["units"][1]).perf.macs_per_cycle
        rows.append(
            CalibrationRow(
                f"per-clock ratio {r['units'][0]}/{r['units'][1]}", r["what"], r["value"], a / b, r.get("tolerance"), r["source"]
            )
        )
    th = cal.get("thermal")
    if th:
        for p, temp in th["points"]:
            steady = spec.thermal.ambient_c + spec.thermal.r_th_c_per_w * (p + spec.thermal.other_rails_w)
            rows.append(
                CalibrationRow(
                    "temperature C", f"{th['unit']} rail {p:g} W, steady", temp, steady, th.get("tolerance_c"), th["source"]
                )
            )
    return rows


def format_report(rows: list[CalibrationRow]) -> str:
    """The report as a table: quantity, condition, published, model, error, tolerance."""
    head = f"{'quantity':<26} {'condition':<34} {'published':>10} {'model':>10} {'error':>8} {'tol':>6}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        err = f"{r.error:+.1f}C" if r.quantity.startswith("temperature") else f"{r.error * 100:+.1f}%"
        tol = (
            "-"
            if r.tolerance is None
            else (f"{r.tolerance:g}C" if r.quantity.startswith("temperature") else f"{r.tolerance * 100:.0f}%")
        )
        lines.append(
            f"{r.quantity:<26} {r.condition:<34} {r.published:>10.4g} {r.model:>10.4g} {err:>8} {tol:>6}  {'yes' if r.ok else 'NO'}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print fitted coefficients for a profile (to copy into its YAML) and its current report."""
    spec = load_platform(argv[0] if argv else "xu3")
    for unit in spec.units:
        if unit.name in spec.calibration.get("power", {}):
            print(f"{unit.name} power: {fit_power(spec, unit.name)}")
    if "speedup" in spec.calibration:
        print(f"serial_fraction (all cpu units): {fit_serial_fraction(spec)}")
    units_with_points = {p[0] for p in spec.calibration.get("latency", {}).get("points", []) if p[-1] != "check"}
    fitted = {unit: fit_macs_per_cycle(spec, unit) for unit in sorted(units_with_points)}
    for unit, mpc in fitted.items():
        print(f"{unit} macs_per_cycle: {mpc}")
    for r in spec.calibration.get("ratios", [])[:1]:
        a, b = r["units"]
        if a in fitted and b not in fitted:
            print(f"{b} macs_per_cycle: {round(fitted[a] / r['value'], 4)} ({a} / {r['value']}, {r['what']})")
    if "thermal" in spec.calibration:
        print(f"thermal: {fit_thermal(spec)}")
    print(format_report(calibration_report(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
