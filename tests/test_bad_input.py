"""Every subcommand against bad input: exit 2, one line on stderr, no traceback, and not one
file of the workspace changed, removed or added.

The workspace is built once per module: a fake one-CPU board profiled into ``board.yaml``, a
budget trace for it and for the XU3 model, a tiny trained run folder, a copy of the shipped
weights, and broken variants of each. Each case names its command line with ``{placeholders}``
filled from the workspace.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import fake_one_cpu_board, write_python_batches

REPO = Path(__file__).resolve().parents[1]
XU3 = REPO / "hwmodels/platforms/xu3.yaml"

TINY_HYPERPARAMS = """
dynscale/DynDNN-v0:
  policy: MlpPolicy
  n_timesteps: 64
  n_envs: 1
  n_steps: 64
  batch_size: 64
  n_epochs: 1
  policy_kwargs: "dict(net_arch=[16, 16])"
  env_kwargs: {scenario: tiny, episode_length: 32}
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _write_broken_profiles(ws: Path) -> None:
    xu3 = XU3.read_text()
    board = (ws / "board.yaml").read_text()
    variants = {
        "typo.yaml": _edit(xu3, "activity:", "activty:"),
        "huge.yaml": _edit(xu3, "mem_slowdown:", "mem_slowdown: 1.0e+308 #"),
        "nosign.yaml": _edit(xu3, "r_th_c_per_w:", "r_th_c_per_w: 1.0e308 #"),
        "cold_trip.yaml": xu3.replace("temp_c: 70", "temp_c: -300", 1),
        "trip_freq.yaml": xu3.replace("max_freq_mhz: 1800", "max_freq_mhz: 1850", 1),
        "zero_latency.yaml": _edit(board, "latency_ms:\n  - ", "latency_ms:\n  - 0.0 #"),
        "negative_latency.yaml": _edit(board, "latency_ms:\n  - ", "latency_ms:\n  - -3.0 #"),
    }
    for name, text in variants.items():
        (ws / "profiles" / name).write_text(text)


def _write_broken_traces(ws: Path) -> None:
    good = (ws / "xu3trace.csv").read_text().splitlines()
    head, row = good[0], good[1]
    d = ws / "traces"
    (d / "latin1.csv").write_bytes((head + "\n" + row + ",caf\xe9\n").encode("latin-1"))
    (d / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (d / "duplicated.csv").write_text(f"{head},time_budget_ms\n{row},1.0\n")
    cols = head.split(",")
    huge = row.split(",")
    huge[cols.index("load_a15")] = "1e308"
    (d / "huge_load.csv").write_text(f"{head}\n{','.join(huge)}\n")
    board_rows = (ws / "trace.csv").read_text().splitlines()
    bcols, brow = board_rows[0].split(","), board_rows[1].split(",")
    brow[bcols.index("period_ms")] = "1e308"
    (d / "long_period.csv").write_text(f"{board_rows[0]}\n{','.join(brow)}\n")
    (ws / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (ws / "xu3trace.csv").read_bytes())
    (ws / "load20.csv").write_text("t_s,unit,threads,mem_intensity\n0,cpu0,20,0.5\n")


def _write_broken_runs(ws: Path) -> None:
    for name in ("run_incomplete", "run_truncated", "run_empty"):
        shutil.copytree(ws / "run", ws / name)
    (ws / "run_incomplete" / "INCOMPLETE").write_text("training interrupted (SIGINT) at 2026-11-22 10:00:00\n")
    npz = (ws / "run" / "policy.npz").read_bytes()
    (ws / "run_truncated" / "policy.npz").write_bytes(npz[: len(npz) // 2])
    (ws / "run_empty" / "policy.npz").write_bytes(b"")
    (ws / "w_truncated.pt").write_bytes((ws / "w.pt").read_bytes()[:5000])
    hp = TINY_HYPERPARAMS
    (ws / "hp_unknown_kwarg.yml").write_text(_edit(hp, "episode_length: 32", "episode_length: 32, bogus: 1"))
    (ws / "hp_bad_lr.yml").write_text(_edit(hp, "n_epochs: 1", "n_epochs: 1\n  learning_rate: fast"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dynscale_cli import main

    ws = tmp_path_factory.mktemp("ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DYNSCALE_CACHE", str(tmp_path_factory.mktemp("cache")))
        root = fake_one_cpu_board(ws / "root")
        data = write_python_batches(ws / "data")
        common = ["--root", str(root), "--data", str(data)]
        assert main(["profile", "--out", str(ws / "board.yaml"), "--repeats", "3", "--warmup", "1", "--quiet", *common]) == 0
        assert main(["env", "record", "--platform", str(ws / "board.yaml"), "--scenario", "tiny", "--length", "40",
                     "--out", str(ws / "trace.csv")]) == 0  # fmt: skip
        assert main(["env", "record", "--platform", "xu3", "--length", "40", "--out", str(ws / "xu3trace.csv")]) == 0
        (ws / "hp.yml").write_text(TINY_HYPERPARAMS)
        assert main(["train", "--platform", str(ws / "board.yaml"), "--hyperparams", str(ws / "hp.yml"),
                     "--eval-seeds", "1000", "--out", str(ws / "run"), "--quiet"]) == 0  # fmt: skip
    shutil.copy(REPO / "dnn/weights/dynalexnet_cifar10.pt", ws / "w.pt")
    for d in ("profiles", "traces", "ro"):
        (ws / d).mkdir()
    _write_broken_profiles(ws)
    _write_broken_traces(ws)
    _write_broken_runs(ws)
    return ws


def _snapshot(ws: Path) -> dict[str, str]:
    """Every file and folder of the workspace (relative path -> content hash, or 'dir')."""
    return {
        str(p.relative_to(ws)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ws.rglob("*"))
    }


BOARD = ["--platform", "{ws}/board.yaml"]
LIVE = ["--root", "{ws}/root", "--data", "{ws}/data"]
DEPLOY = ["deploy", "--controller", "greedy", *BOARD, "--budgets", "{ws}/trace.csv", *LIVE]
COMPARE = ["compare", *BOARD, "--agents", "{ws}/run", "--seeds", "1000", "--episode-length", "10", "--quiet"]
TRAIN = ["train", *BOARD, "--hyperparams", "{ws}/hp.yml", "--eval-seeds", "1000", "--quiet"]
PROFILE = ["profile", "--repeats", "3", "--warmup", "1", "--quiet", *LIVE]

CASES = {
    # 1. an output that is an input, or a directory
    "deploy-log-is-profile": [*DEPLOY, "--log", "{ws}/board.yaml"],
    "deploy-log-is-trace": [*DEPLOY, "--log", "{ws}/trace.csv"],
    "deploy-log-is-policy": ["deploy", "--controller", "{ws}/run", *BOARD, "--budgets", "{ws}/trace.csv", *LIVE,
                             "--log", "{ws}/run/policy.npz"],  # fmt: skip
    "deploy-log-is-dir": [*DEPLOY, "--log", "{ws}"],
    "deploy-log-is-policy-metadata": ["deploy", "--controller", "{ws}/run/policy.npz", *BOARD, "--budgets", "{ws}/trace.csv",
                                      *LIVE, "--log", "{ws}/run/policy.json"],  # fmt: skip
    "compare-plot-is-trace": [*COMPARE, "--traces", "{ws}/traces_ok", "--plot", "{ws}/traces_ok/trace.csv"],
    "compare-plot-is-policy": [*COMPARE, "--plot", "{ws}/run/policy.npz"],
    "compare-plot-is-dir": [*COMPARE, "--plot", "{ws}"],
    "record-out-is-profile": ["env", "record", *BOARD, "--scenario", "tiny", "--out", "{ws}/board.yaml"],
    "record-out-is-scenario": ["env", "record", *BOARD, "--scenario", "{ws}/trace.csv", "--out", "{ws}/trace.csv"],
    "record-out-is-dir": ["env", "record", *BOARD, "--scenario", "tiny", "--out", "{ws}"],
    "eval-profile-is-weights": ["dnn", "eval", "--weights", "{ws}/w.pt", "--data", "{ws}/data", "--write-profile", "{ws}/w.pt"],
    "eval-profile-is-dir": ["dnn", "eval", "--weights", "{ws}/w.pt", "--data", "{ws}/data", "--write-profile", "{ws}"],
    "profile-out-is-weights": [*PROFILE, "--weights", "{ws}/w.pt", "--out", "{ws}/w.pt"],
    "profile-out-is-dir": [*PROFILE, "--out", "{ws}"],
    "profile-out-is-data": [*PROFILE, "--out", "{ws}/data/cifar-10-batches-py/test_batch"],
    # 2. an existing run folder
    "train-into-existing-run": [*TRAIN, "--out", "{ws}/run"],
    "train-into-a-file": [*TRAIN, "--out", "{ws}/trace.csv"],
    # 3. counts
    "train-timesteps-0": [*TRAIN, "--timesteps", "0", "--out", "{ws}/new"],
    "train-timesteps-neg": [*TRAIN, "--timesteps", "-1", "--out", "{ws}/new"],
    "train-n-envs-0": [*TRAIN, "--n-envs", "0", "--out", "{ws}/new"],
    "train-n-envs-neg": [*TRAIN, "--n-envs", "-2", "--out", "{ws}/new"],
    "compare-episode-length-0": [*COMPARE, "--episode-length", "0"],
    "compare-baselines-bogus": [*COMPARE, "--baselines", "bogus"],
    "compare-seeds-negative": [*COMPARE, "--seeds", "-5"],
    "compare-seeds-billion": [*COMPARE, "--seeds", "0-1000000000"],
    "train-seed-negative": [*TRAIN, "--seed", "-1", "--out", "{ws}/new"],
    "record-seed-2-to-the-64": ["env", "record", *BOARD, "--seed", str(2**64), "--out", "{ws}/new.csv"],
    "dnn-train-lr-nan": ["dnn", "train", "--data", "{ws}/data", "--lr", "nan", "--out", "{ws}/new.pt"],
    # 4. profiles and what-if numbers
    "profile-misspelt-key": ["platform", "show", "{ws}/profiles/typo.yaml"],
    "profile-huge-coefficient": ["platform", "show", "{ws}/profiles/huge.yaml"],
    "profile-number-without-exponent-sign": ["platform", "show", "{ws}/profiles/nosign.yaml"],
    "profile-trip-below-absolute-zero": ["platform", "show", "{ws}/profiles/cold_trip.yaml"],
    "profile-trip-off-table": ["platform", "show", "{ws}/profiles/trip_freq.yaml"],
    "profile-zero-latency": ["platform", "show", "{ws}/profiles/zero_latency.yaml"],
    "profile-negative-latency": ["platform", "show", "{ws}/profiles/negative_latency.yaml"],
    **{
        f"query-temp-{t}": ["platform", "query", "xu3", "--groups", "4", "--unit", "a15", "--freq", "2000", f"--temp={t}"]
        for t in ("nan", "inf", "-300", "5000", "1e9")
    },
    "query-load-beyond-cores": ["platform", "query", "xu3", "--groups", "4", "--unit", "a15", "--freq", "2000",
                                "--load", "a15=1e308"],  # fmt: skip
    # 5./6. traces and schedules
    **{
        f"trace-{name}": ["env", "stats", "--platform", "xu3", "--scenario", f"{{ws}}/traces/{name}.csv", "--seeds", "0",
                          "--length", "1", "--quiet"]  # fmt: skip
        for name in ("latin1", "binary", "duplicated", "huge_load")
    },
    "compare-trace-huge-load": ["compare", "--platform", "xu3", "--traces", "{ws}/traces_huge", "--baselines", "greedy",
                                "--json", "--quiet"],  # fmt: skip
    "deploy-period-1e308": ["deploy", "--controller", "greedy", *BOARD, "--budgets", "{ws}/traces/long_period.csv", *LIVE,
                            "--log", "{ws}/out.jsonl"],  # fmt: skip
    "deploy-load-20-threads-on-1-core": [*DEPLOY, "--load", "{ws}/load20.csv", "--log", "{ws}/out.jsonl"],
    # 7. weights and policies
    "eval-truncated-weights": ["dnn", "eval", "--weights", "{ws}/w_truncated.pt", "--data", "{ws}/data", "--quiet"],
    "profile-truncated-weights": [*PROFILE, "--weights", "{ws}/w_truncated.pt", "--out", "{ws}/new.yaml"],
    "compare-truncated-policy": [*COMPARE[:3], "--agents", "{ws}/run_truncated", *COMPARE[5:]],
    "compare-empty-policy": [*COMPARE[:3], "--agents", "{ws}/run_empty", *COMPARE[5:]],
    "deploy-truncated-policy": ["deploy", "--controller", "{ws}/run_truncated", *BOARD, "--budgets", "{ws}/trace.csv",
                                *LIVE, "--log", "{ws}/out.jsonl"],  # fmt: skip
    "policy-for-another-board": ["compare", "--platform", "xu3", "--agents", "{ws}/run", "--seeds", "1000",
                                 "--episode-length", "10", "--quiet"],  # fmt: skip
    # 8. hyperparameters
    "train-unknown-env-kwarg": [*TRAIN[:3], "--hyperparams", "{ws}/hp_unknown_kwarg.yml", *TRAIN[5:], "--out", "{ws}/new"],
    "train-learning-rate-fast": [*TRAIN[:3], "--hyperparams", "{ws}/hp_bad_lr.yml", *TRAIN[5:], "--out", "{ws}/new"],
    # 9. incomplete runs
    "compare-incomplete-run": [*COMPARE[:3], "--agents", "{ws}/run_incomplete", *COMPARE[5:]],
    "deploy-incomplete-run": ["deploy", "--controller", "{ws}/run_incomplete", *BOARD, "--budgets", "{ws}/trace.csv",
                              *LIVE, "--log", "{ws}/out.jsonl"],  # fmt: skip
    "export-incomplete-run": ["export", "{ws}/run_incomplete", "--out", "{ws}/new"],
    # 10. live numbers
    **{f"deploy-duration-{d}": [*DEPLOY, "--duration", d, "--log", "{ws}/out.jsonl"] for d in ("0", "-1", "inf", "nan")},
    "profile-repeats-0": ["profile", "--repeats", "0", "--quiet", *LIVE, "--out", "{ws}/new.yaml"],
    "profile-warmup-neg": ["profile", "--repeats", "3", "--warmup", "-1", "--quiet", *LIVE, "--out", "{ws}/new.yaml"],
}


@pytest.fixture(scope="module")
def ws_ready(ws: Path) -> Path:
    """The workspace plus the folders the compare cases replay (made once)."""
    (ws / "traces_ok").mkdir()
    shutil.copy(ws / "xu3trace.csv", ws / "traces_ok" / "trace.csv")
    (ws / "traces_huge").mkdir()
    shutil.copy(ws / "traces" / "huge_load.csv", ws / "traces_huge" / "huge_load.csv")
    return ws


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_no_file(name: str, ws_ready: Path, capsys: pytest.CaptureFixture) -> None:
    from dynscale_cli import main

    argv = [a.format(ws=ws_ready) for a in CASES[name]]
    before = _snapshot(ws_ready)
    assert main(argv) == 2, capsys.readouterr().err
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), err
    assert "Traceback" not in err and "weights_only" not in err
    assert _snapshot(ws_ready) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_one_line(ws_ready: Path, capsys: pytest.CaptureFixture) -> None:
    from dynscale_cli import main

    ro = ws_ready / "ro"
    ro.chmod(0o555)
    try:
        assert main(["env", "record", "--platform", "xu3", "--length", "5", "--out", str(ro / "t.csv")]) == 2
    finally:
        ro.chmod(0o755)
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_byte_order_mark_is_accepted(ws_ready: Path, capsys: pytest.CaptureFixture) -> None:
    from dynscale_cli import main

    argv = ["env", "stats", "--platform", "xu3", "--scenario", str(ws_ready / "bom.csv"), "--seeds", "0", "--length", "5"]
    assert main([*argv, "--json", "--quiet"]) == 0, capsys.readouterr().err


def test_force_replaces_a_finished_run(ws_ready: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dynscale_cli import main

    run = tmp_path / "run"
    shutil.copytree(ws_ready / "run", run)
    (run / "stale.txt").write_text("from an older run\n")
    argv = [a.format(ws=ws_ready) for a in TRAIN] + ["--out", str(run)]
    assert main(argv) == 2
    assert main([*argv, "--force"]) == 0, capsys.readouterr().err
    assert not (run / "stale.txt").exists() and not (run / "INCOMPLETE").exists()
    assert (run / "evaluation.json").is_file()


def test_atomic_write_leaves_the_target_whole_and_sweeps_a_dead_writers_part(tmp_path: Path) -> None:
    import subprocess
    import sys

    from dnn.errors import Terminated
    from dnn.fileio import atomic_write

    target = tmp_path / "trace.csv"
    target.write_text("old\n")
    with pytest.raises(Terminated), atomic_write(target) as f:
        f.write("half of the new")
        raise Terminated
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["trace.csv"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".trace.csv.{dead}.abc.part"  # what a SIGKILLed writer leaves
    live = tmp_path / f".trace.csv.{os.getpid()}.xyz.part"  # a writer still at work
    stale.write_text("x")
    live.write_text("y")
    with atomic_write(target) as f:
        f.write("new\n")
    assert target.read_text() == "new\n" and not stale.exists() and live.exists()


@pytest.mark.parametrize(("signal_exc", "code", "how"), [("KeyboardInterrupt", 130, "SIGINT"), ("Terminated", 143, "SIGTERM")])
def test_interrupted_training_marks_its_folder_and_compare_refuses_it(
    ws_ready: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, signal_exc, code, how
) -> None:
    from agents import train as train_module
    from dnn import errors
    from dynscale_cli import main

    exc = KeyboardInterrupt if signal_exc == "KeyboardInterrupt" else errors.Terminated

    def stopped(*args, **kwargs):
        raise exc

    monkeypatch.setattr(train_module, "_train_in", stopped)
    run = tmp_path / "run"
    assert main([a.format(ws=ws_ready) for a in TRAIN] + ["--out", str(run)]) == code
    assert capsys.readouterr().err.strip() == f"dynscale: {'interrupted' if code == 130 else 'terminated'} ({how}); partial outputs removed"
    assert f"training {'interrupted' if code == 130 else 'terminated'} ({how}) at " in (run / "INCOMPLETE").read_text()
    assert main(["compare", "--platform", str(ws_ready / "board.yaml"), "--agents", str(run), "--quiet"]) == 2
    assert "an incomplete run" in capsys.readouterr().err
