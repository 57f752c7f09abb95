from pathlib import Path

import pytest
import yaml

from hwmodels.profile import PlatformProfileError, load_platform, shipped_platforms

XU3 = Path(__file__).resolve().parents[1] / "hwmodels" / "platforms" / "xu3.yaml"


def broken(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(XU3.read_text())
    edit(doc)
    p = tmp_path / "broken.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_shipped_profiles_load() -> None:
    assert {"xu3", "nano"} <= set(shipped_platforms())
    for name in ("xu3", "nano"):
        spec = load_platform(name)
        assert spec.sources and spec.units


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("units"), "units"),
        (lambda d: d["units"][0].pop("name"), "units[0].name"),
        (lambda d: d["units"][1]["dvfs"]["freq_mhz"].reverse(), "units[1].dvfs.freq_mhz"),
        (lambda d: d["units"][0]["dvfs"]["volt_v"].pop(), "units[0].dvfs.volt_v"),
        (lambda d: d["units"][0]["power"].update(per_core=-0.2), "units[0].power.per_core"),
        (lambda d: d["units"][0]["perf"].update(macs_per_cycle="fast"), "units[0].perf.macs_per_cycle"),
        (lambda d: d["thermal"]["trips"][0].update(unit="a99"), "thermal.trips[0].unit"),
        (lambda d: d["units"][0].update(kind="npu"), "units[0].kind"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d["interference"].update(thread_wait_ms=-1.0), "interference.thread_wait_ms"),
        (lambda d: d["interference"].update(preempt_share=1.5), "interference.preempt_share"),
    ],
)
def test_broken_profiles_name_file_and_field(tmp_path: Path, edit, field: str) -> None:
    p = broken(tmp_path, edit)
    with pytest.raises(PlatformProfileError) as e:
        load_platform(p)
    msg = str(e.value)
    assert str(p) in msg and f"'{field}'" in msg and "\n" not in msg


def test_unknown_platform_name() -> None:
    with pytest.raises(PlatformProfileError, match="neither a shipped platform"):
        load_platform("pdp11")


@pytest.mark.parametrize(
    "coefficients",
    [
        {"mem_slowdown": 0.4, "barrier_slowdown": 0.7, "wake_credit_ms": 1.3, "thread_wait_ms": 0.0, "preempt_share": 1.0},
        # a credit that covers the short runs, so a held multi-core run's wait is the thread wait
        {"mem_slowdown": 0.4, "barrier_slowdown": 0.7, "wake_credit_ms": 20.0, "thread_wait_ms": 6.0, "preempt_share": 1.0},
        # runs wait part of their fair share beyond the credit (the barrier stretches that part)
        {"mem_slowdown": 0.4, "barrier_slowdown": 0.7, "wake_credit_ms": 1.3, "thread_wait_ms": 0.0, "preempt_share": 0.5},
        {"mem_slowdown": 0.4, "barrier_slowdown": 0.0, "wake_credit_ms": 20.0, "thread_wait_ms": 6.0, "preempt_share": 0.3},
    ],
)
def test_interference_fit_recovers_the_coefficients_it_was_made_with(coefficients: dict) -> None:
    """Latencies made by the model with known coefficients give the same coefficients back."""
    import numpy as np

    from dnn.profile import load_dnn_profile
    from hwmodels.fit import fit_interference
    from hwmodels.model import PlatformModel, State
    from hwmodels.profile import parse_platform

    doc = yaml.safe_load(Path("hwmodels/platforms/xu3.yaml").read_text())
    dnn = load_dnn_profile()
    truth = PlatformModel(parse_platform({**doc, "interference": coefficients}, "x"), dnn)
    states = [([2.0, 0.0], [0.0, 0.0]), ([4.0, 0.0], [0.0, 0.0]), ([1.0, 0.0], [1.0, 0.0])]  # a15 loads, as the profiler runs
    points = []
    for load, mem in states:
        for i in np.flatnonzero(truth.space.unit_idx == 0)[::7]:
            points.append((int(i), load, mem, truth.expected(int(i), State(np.array(load), np.array(mem), 25.0)).latency_ms))
    fit = fit_interference({**doc, "interference": {"mem_slowdown": 0.0}}, dnn, points)
    assert fit == {k: pytest.approx(v, rel=1e-3) for k, v in coefficients.items()}
    if coefficients["thread_wait_ms"] == 0:  # the model without the term fits its own points as well
        held = fit_interference({**doc, "interference": {"mem_slowdown": 0.0}}, dnn, points, fit_thread_wait=False)
        assert held == {k: pytest.approx(v, rel=1e-3) for k, v in coefficients.items()}


def test_local_minima_are_cells_no_neighbour_is_below_by_ascending_cost() -> None:
    """The interference fit's polish starts: cells of the grid none of whose eight neighbours is
    below them (edges and corners compare with the neighbours they have), cheapest first; every
    cell of a flat valley counts (the fit keeps one per credit column)."""
    import numpy as np

    from hwmodels.fit import _local_minima

    cost = np.array(
        [
            [0.0, 4.0, 6.0, 7.0],
            [4.0, 5.0, 6.0, 6.0],
            [8.0, 6.0, 2.0, 2.0],
        ]
    )
    assert _local_minima(cost) == [(0, 0), (2, 2), (2, 3)]
    assert _local_minima(np.array([[3.0, 1.0, 2.0]])) == [(0, 1)]  # one row: left and right only
    assert _local_minima(np.ones((2, 2))) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # flat: every cell
