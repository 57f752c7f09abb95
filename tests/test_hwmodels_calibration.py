import numpy as np
import pytest

from hwmodels.calibrate import calibration_report, fit_macs_per_cycle, fit_power, fit_serial_fraction, fit_thermal
from hwmodels.profile import load_platform


def test_powmon_a15_points() -> None:
    rows = [r for r in calibration_report(load_platform("xu3")) if r.quantity == "power a15 W"]
    assert len(rows) == 45  # 9 frequencies x (idle + 1..4 busy cores)
    err = np.abs([r.error for r in rows])
    assert err.max() <= 0.15 and err.mean() < 0.08


@pytest.mark.parametrize("name", ["xu3", "nano"])
def test_every_published_point_within_its_stated_tolerance(name: str) -> None:
    rows = calibration_report(load_platform(name))
    bad = [(r.quantity, r.condition, r.published, r.model) for r in rows if not r.ok]
    assert not bad
    kinds = {r.quantity.split()[0] for r in rows}
    assert {"power", "latency", "speed-up", "temperature"} <= kinds


@pytest.mark.parametrize("name", ["xu3", "nano"])
def test_shipped_coefficients_are_the_fit(name: str) -> None:
    spec = load_platform(name)
    for u in spec.units:
        if u.name in spec.calibration.get("power", {}):
            for k, v in fit_power(spec, u.name).items():
                assert getattr(u.power, k) == pytest.approx(v, rel=1e-3, abs=1e-6), (u.name, k)
    assert all(
        u.perf.serial_fraction == pytest.approx(fit_serial_fraction(spec), abs=0.006) for u in spec.units if u.kind == "cpu"
    )
    for unit in {p[0] for p in spec.calibration["latency"]["points"] if p[-1] != "check"}:
        assert spec.unit(unit).perf.macs_per_cycle == pytest.approx(fit_macs_per_cycle(spec, unit), rel=0.01)
    for k, v in fit_thermal(spec).items():
        assert getattr(spec.thermal, k) == pytest.approx(v, abs=0.01)
