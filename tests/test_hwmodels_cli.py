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
