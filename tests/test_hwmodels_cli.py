import json

import pytest

from dynscale_cli import main


def test_show_ranges_query(capsys: pytest.CaptureFixture) -> None:
    assert main(["platform", "show", "xu3"]) == 0
    out = capsys.readouterr().out
    assert "calibration: 86 of 86 published points within tolerance" in out and "powmon" in out
    assert main(["platform", "ranges", "nano", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["all"]["time"] > r["dnn_alone"]["time"] > 1 and r["configurations"] == 288
    assert (
        main(
            [
                "platform",
                "query",
                "xu3",
                "--groups",
                "2",
                "--unit",
                "a7",
                "--cores",
                "2",
                "--freq",
                "1000",
                "--load",
                "a7=1.5",
                "--temp",
                "60",
                "--json",
            ]
        )
        == 0
    )
    q = json.loads(capsys.readouterr().out)
    assert q["latency_ms"] > 0 and q["energy_mj"] == pytest.approx(q["latency_ms"] * q["power_w"])


def test_query_spends_the_wake_credit_by_the_time_awake(tmp_path, capsys: pytest.CaptureFixture) -> None:
    """``--awake-ms``: CPU time run since the wake when the inference starts spends that much of
    the wake-up credit, so a run beside co-runners on its core waits longer; 0 is the default."""
    import yaml

    from hwmodels.profile import resolve_platform_path

    doc = yaml.safe_load(resolve_platform_path("xu3").read_text())
    doc["interference"]["wake_credit_ms"] = 20.0
    board = tmp_path / "credit.yaml"
    board.write_text(yaml.safe_dump(doc))

    def query(*extra: str) -> dict:
        argv = ["platform", "query", str(board), "--groups", "4", "--unit", "a7", "--cores", "1", "--freq", "1000"]
        assert main([*argv, "--load", "a7=4", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    fresh, default, spent = query("--awake-ms", "0"), query(), query("--awake-ms", "10")
    assert fresh == default and fresh["state"]["awake_ms"] == 0.0 and spent["state"]["awake_ms"] == 10.0
    assert spent["wait_ms"] > fresh["wait_ms"] > 0 and spent["latency_ms"] - fresh["latency_ms"] == pytest.approx(
        spent["wait_ms"] - fresh["wait_ms"]
    )
    assert main(["platform", "query", str(board), "--groups", "4", "--unit", "a7", "--freq", "1000", "--awake-ms", "-1"]) == 2
    assert "--awake-ms" in capsys.readouterr().err


def test_query_conditions_the_wait_on_the_tick_phase(tmp_path, capsys: pytest.CaptureFixture) -> None:
    """``--tick-phase-ms``: on a profile with a tick grid the wait counts the ticks in the run beyond
    the credit (none at some phases, whole ticks at others; the mean over the phase is the wait
    without it); a profile without a grid, or a phase beyond the tick, exits 2 naming the flag."""
    import yaml

    from hwmodels.profile import resolve_platform_path

    doc = yaml.safe_load(resolve_platform_path("xu3").read_text())
    doc["interference"].update(quantum_ms=4.0, tick_hz=250)
    board = tmp_path / "ticks.yaml"
    board.write_text(yaml.safe_dump(doc))
    argv = ["platform", "query", str(board), "--groups", "1", "--unit", "a7", "--cores", "1", "--freq", "1000", "--load", "a7=4"]

    def wait(*extra: str) -> float:
        assert main([*argv, "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)["wait_ms"]

    phases = [i / 10 for i in range(40)]
    waits = [wait("--tick-phase-ms", str(p)) for p in phases]
    assert min(waits) < max(waits) and all(w / 4.0 == pytest.approx(round(w / 4.0)) for w in waits)  # whole ticks
    assert sum(waits) / len(waits) == pytest.approx(wait(), rel=0.05)
    for bad, board_path in (("4.0", board), ("1.0", "xu3")):
        assert main(["platform", "query", str(board_path), *argv[3:], "--tick-phase-ms", bad]) == 2
        assert "--tick-phase-ms" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--unit", "gpu", "--freq", "200"], "unknown unit 'gpu'; valid: a15, a7"),
        (["--unit", "a15", "--freq", "2100"], "2100 MHz is not in the a15 DVFS table; valid: 200, 300"),
        (["--unit", "a7", "--cores", "5", "--freq", "200"], "cores 5 out of range for a7; valid: 1..4"),
        (["--unit", "a7", "--freq", "200", "--load", "a9=1"], "UNIT one of a15, a7"),
    ],
)
def test_query_bad_input_is_one_line_exit_2(argv: list[str], expect: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["platform", "query", "xu3", "--groups", "1", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and "\n" not in err
