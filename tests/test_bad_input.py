"""Issue #11, "every bad input gets one line": every subcommand against bad input exits with code
2, prints exactly one non-empty line on stderr and no traceback, and leaves every file of the
workspace as it was (not one file changed, removed or added).

The workspace is built once per module: a fake one-CPU board profiled into ``board.yaml``, a
budget trace for it and one for the XU3 model, a tiny trained run folder, a copy of the shipped
weights, and broken variants of each. Each case is a command line whose ``{ws}`` placeholders
are filled from the workspace; the commands run in-process, so an uncaught exception fails the
case with its traceback.
"""

from __future__ import annotations

import hashlib
import json
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

GARBAGE = bytes(range(256)) * 4  # NUL bytes, invalid UTF-8, no line structure


# ---------------------------------------------------------------- the workspace


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _write_broken_profiles(ws: Path) -> None:
    xu3 = XU3.read_text()
    board = (ws / "board.yaml").read_text()
    variants = {
        "typo.yaml": _edit(xu3, "activity:", "activty:"),
        "huge.yaml": _edit(xu3, "mem_slowdown:", "mem_slowdown: 1.0e+308 #"),
        "huge_power.yaml": _edit(xu3, "per_core: 0.22485", "per_core: 1.0e+308"),
        "nosign.yaml": _edit(xu3, "r_th_c_per_w:", "r_th_c_per_w: 1.0e308 #"),
        "nosign_ok.yaml": _edit(xu3, "r_th_c_per_w: 6.115", "r_th_c_per_w: 6.115e0"),
        "cold_trip.yaml": _edit(xu3, "temp_c: 70", "temp_c: -300"),
        "trip_freq.yaml": _edit(xu3, "max_freq_mhz: 1800", "max_freq_mhz: 1850"),
        "zero_latency.yaml": _edit(board, "latency_ms:\n  - ", "latency_ms:\n  - 0.0 #"),
        "negative_latency.yaml": _edit(board, "latency_ms:\n  - ", "latency_ms:\n  - -3.0 #"),
    }
    for name, text in variants.items():
        (ws / "profiles" / name).write_text(text)
    (ws / "profiles" / "binary.yaml").write_bytes(GARBAGE)
    (ws / "profiles" / "latin1.yaml").write_bytes(_edit(xu3, "name:", "name: caf\xe9 #").encode("latin-1"))


def _broken_variants(d: Path, prefix: str, good: Path, load_col: str) -> None:
    """latin1 / binary / duplicated / huge_load / long_period variants of the trace ``good``."""
    rows = good.read_text().splitlines()
    head, row = rows[0], rows[1]
    cols = head.split(",")
    (d / f"{prefix}_latin1.csv").write_bytes((head + "\n" + row + ",caf\xe9\n").encode("latin-1"))
    (d / f"{prefix}_binary.csv").write_bytes(GARBAGE)
    (d / f"{prefix}_duplicated.csv").write_text(f"{head},time_budget_ms\n{row},1.0\n")
    huge = row.split(",")
    huge[cols.index(load_col)] = "1e308"
    (d / f"{prefix}_huge_load.csv").write_text(f"{head}\n" + f"{','.join(huge)}\n" * 3)
    long = row.split(",")
    long[cols.index("period_ms")] = "1e308"
    (d / f"{prefix}_long_period.csv").write_text(f"{head}\n{','.join(long)}\n")


def _write_broken_traces(ws: Path) -> None:
    d = ws / "traces"
    _broken_variants(d, "xu3", ws / "xu3trace.csv", "load_a15")
    board_head = (ws / "trace.csv").read_text().splitlines()[0].split(",")
    _broken_variants(d, "board", ws / "trace.csv", next(c for c in board_head if c.startswith("load_")))
    (ws / "bom_xu3.csv").write_bytes(b"\xef\xbb\xbf" + (ws / "xu3trace.csv").read_bytes())
    (ws / "bom_board.csv").write_bytes(b"\xef\xbb\xbf" + (ws / "trace.csv").read_bytes())
    # load schedules (t_s, unit, threads, mem_intensity)
    (ws / "load_ok.csv").write_text("t_s,unit,threads,mem_intensity\n0,cpu0,0,0\n")
    (ws / "load20.csv").write_text("t_s,unit,threads,mem_intensity\n0,cpu0,20,0.5\n")
    (ws / "load_binary.csv").write_bytes(GARBAGE)
    # folders of traces replayed by compare --traces
    (ws / "traces_ok").mkdir()
    shutil.copy(ws / "xu3trace.csv", ws / "traces_ok" / "trace.csv")
    for name in ("latin1", "binary", "duplicated", "long_period"):
        (ws / f"traces_{name}").mkdir()
        shutil.copy(d / f"xu3_{name}.csv", ws / f"traces_{name}" / "trace.csv")
    # a budget trace named like the log compare --live would write next to it
    (ws / "livelog").mkdir()
    shutil.copy(ws / "trace.csv", ws / "livelog" / "greedy.jsonl")


def _write_broken_runs(ws: Path) -> None:
    for name in ("run_incomplete", "run_truncated", "run_empty", "run_badmodel", "run_emptymodel", "run_noconfig"):
        shutil.copytree(ws / "run", ws / name)
    (ws / "run_incomplete" / "INCOMPLETE").write_text("training interrupted (SIGINT) at 2026-11-22 10:00:00\n")
    npz = (ws / "run" / "policy.npz").read_bytes()
    (ws / "run_truncated" / "policy.npz").write_bytes(npz[: len(npz) // 2])
    (ws / "run_empty" / "policy.npz").write_bytes(b"")
    model = (ws / "run" / "model.zip").read_bytes()
    (ws / "run_badmodel" / "model.zip").write_bytes(model[: len(model) // 2])
    (ws / "run_emptymodel" / "model.zip").write_bytes(b"")
    (ws / "run_noconfig" / "config.yaml").unlink()
    weights = (ws / "w.pt").read_bytes()
    (ws / "w_truncated.pt").write_bytes(weights[:5000])
    (ws / "w_garbage.pt").write_bytes(GARBAGE)
    (ws / "w_empty.pt").write_bytes(b"")
    hp = TINY_HYPERPARAMS
    (ws / "hp_unknown_kwarg.yml").write_text(_edit(hp, "episode_length: 32", "episode_length: 32, bogus: 1"))
    (ws / "hp_bad_lr.yml").write_text(_edit(hp, "n_epochs: 1", "n_epochs: 1\n  learning_rate: fast"))
    (ws / "hp_binary.yml").write_bytes(GARBAGE)
    (ws / "hp_list.yml").write_text("- just\n- a list\n")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dynscale_cli import main

    ws = tmp_path_factory.mktemp("ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DYNSCALE_CACHE", str(tmp_path_factory.mktemp("cache")))
        root = fake_one_cpu_board(ws / "root")
        data = write_python_batches(ws / "data")
        common = ["--root", str(root), "--data", str(data)]
        profile = ["profile", "--out", str(ws / "board.yaml"), "--repeats", "3", "--warmup", "1", "--allow-busy", "--quiet"]
        assert main([*profile, *common]) == 0
        assert (
            main(
                [
                    "env",
                    "record",
                    "--platform",
                    str(ws / "board.yaml"),
                    "--scenario",
                    "tiny",
                    "--length",
                    "40",
                    "--out",
                    str(ws / "trace.csv"),
                ]
            )
            == 0
        )
        assert main(["env", "record", "--platform", "xu3", "--length", "40", "--out", str(ws / "xu3trace.csv")]) == 0
        (ws / "hp.yml").write_text(TINY_HYPERPARAMS)
        assert (
            main(
                [
                    "train",
                    "--platform",
                    str(ws / "board.yaml"),
                    "--hyperparams",
                    str(ws / "hp.yml"),
                    "--eval-seeds",
                    "1000",
                    "--out",
                    str(ws / "run"),
                    "--quiet",
                ]
            )
            == 0
        )
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
        str(p.relative_to(ws)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ws.rglob("*"))
    }


def _run(argv: list[str]) -> int:
    """``dynscale ARGV``, or ``train_agent.py ARGV[1:]`` when ARGV starts with ``train_agent.py``."""
    if argv and argv[0] == "train_agent.py":
        import train_agent

        entry = getattr(train_agent, "main", None) or train_agent.train_agent_main
        return entry(argv[1:])
    from dynscale_cli import main

    return main(argv)


def _check_one_line_exit_2(argv: list[str], ws: Path, capsys: pytest.CaptureFixture) -> str:
    """Run ARGV; assert exit 2, one non-empty stderr line, no traceback, the workspace untouched."""
    before = _snapshot(ws)
    rc = _run(argv)
    err = capsys.readouterr().err
    after = _snapshot(ws)
    assert rc == 2, f"exit code {rc}, stderr: {err!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and err.strip() == lines[0].strip(), f"expected one line on stderr, got {err!r}"
    assert "Traceback" not in err, err
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"files changed, removed or added: {changed}"
    return lines[0]


# ---------------------------------------------------------------- the battery


def _with(base: list[str], flag: str, value: str) -> list[str]:
    """``base`` with the value of ``flag`` replaced."""
    i = base.index(flag)
    return [*base[: i + 1], value, *base[i + 2 :]]


BOARD = ["--platform", "{ws}/board.yaml"]
LIVE = ["--root", "{ws}/root", "--data", "{ws}/data"]
# --duration bounds a deploy that wrongly starts (the trace's requests are 500 ms apart)
DEPLOY = ["deploy", "--controller", "greedy", *BOARD, "--budgets", "{ws}/trace.csv", "--duration", "0.3", "--quiet", *LIVE]
LIVE_COMPARE = [
    "compare",
    "--live",
    *BOARD,
    "--budgets",
    "{ws}/trace.csv",
    "--duration",
    "0.3",
    "--quiet",
    "--log-dir",
    "{ws}/live",
    *LIVE,
]
COMPARE = ["compare", *BOARD, "--agents", "{ws}/run", "--seeds", "1000", "--episode-length", "10", "--quiet"]
XU3_COMPARE = ["compare", "--platform", "xu3", "--baselines", "greedy", "--seeds", "1000", "--episode-length", "10", "--quiet"]
TRAIN = ["train", *BOARD, "--hyperparams", "{ws}/hp.yml", "--eval-seeds", "1000", "--quiet"]
TRAIN_AGENT = ["train_agent.py", *BOARD, "--hyperparams", "{ws}/hp.yml", "--eval-seeds", "1000", "--quiet"]
PROFILE = ["profile", "--repeats", "3", "--warmup", "1", "--allow-busy", "--quiet", *LIVE]
EVAL = ["dnn", "eval", "--data", "{ws}/data", "--limit", "4", "--repeats", "1", "--quiet"]
DNN_TRAIN = ["dnn", "train", "--data", "{ws}/data", "--epochs-per-stage", "1", "--limit", "8", "--batch-size", "8", "--quiet"]
RECORD = ["env", "record", *BOARD, "--scenario", "tiny", "--length", "5"]
STATS = ["env", "stats", "--platform", "xu3", "--seeds", "0", "--length", "1", "--quiet"]
SCENARIO_COMPARE = _with(XU3_COMPARE, "--episode-length", "1")  # the broken traces hold one request
QUERY = ["platform", "query", "xu3", "--groups", "4", "--unit", "a15", "--freq", "2000"]


#: name -> (what the one line must name: the flag, field or file at fault; the command line)
CASES: dict[str, tuple[str, list[str]]] = {
    # ---- 1. an output that is an input, a directory, or under a file
    "deploy-log-is-profile": ("--log", [*DEPLOY, "--log", "{ws}/board.yaml"]),
    "deploy-log-is-trace": ("--log", [*DEPLOY, "--log", "{ws}/trace.csv"]),
    "deploy-log-is-load-schedule": ("--log", [*DEPLOY, "--load", "{ws}/load_ok.csv", "--log", "{ws}/load_ok.csv"]),
    "deploy-log-is-policy": ("--log", [*_with(DEPLOY, "--controller", "{ws}/run"), "--log", "{ws}/run/policy.npz"]),
    "deploy-log-is-policy-file": (
        "--log",
        [*_with(DEPLOY, "--controller", "{ws}/run/policy.npz"), "--log", "{ws}/run/policy.npz"],
    ),
    "deploy-log-is-policy-metadata": (
        "--log",
        [*_with(DEPLOY, "--controller", "{ws}/run/policy.npz"), "--log", "{ws}/run/policy.json"],
    ),
    "deploy-log-is-data-file": ("--log", [*DEPLOY, "--log", "{ws}/data/cifar-10-batches-py/test_batch"]),
    "deploy-log-is-dir": ("--log", [*DEPLOY, "--log", "{ws}"]),
    "deploy-log-under-a-file": ("board.yaml/run.jsonl", [*DEPLOY, "--log", "{ws}/board.yaml/run.jsonl"]),
    "compare-plot-is-trace-of-traces": ("--plot", [*COMPARE, "--traces", "{ws}/traces_ok", "--plot", "{ws}/traces_ok/trace.csv"]),
    "compare-plot-is-scenario-trace": ("--plot", [*COMPARE, "--scenario", "{ws}/trace.csv", "--plot", "{ws}/trace.csv"]),
    "compare-plot-is-profile": ("--plot", [*COMPARE, "--plot", "{ws}/board.yaml"]),
    "compare-plot-is-policy": ("--plot", [*COMPARE, "--plot", "{ws}/run/policy.npz"]),
    "compare-plot-is-dir": ("--plot", [*COMPARE, "--plot", "{ws}"]),
    "compare-plot-under-a-file": ("trace.csv/plot.png", [*COMPARE, "--plot", "{ws}/trace.csv/plot.png"]),
    "compare-live-log-is-budgets": (
        "--log-dir",
        [*_with(LIVE_COMPARE, "--budgets", "{ws}/livelog/greedy.jsonl"), "--log-dir", "{ws}/livelog"],
    ),
    "compare-live-log-dir-is-a-file": ("trace.csv", [*LIVE_COMPARE, "--log-dir", "{ws}/trace.csv"]),
    "record-out-is-profile": ("--out", [*RECORD, "--out", "{ws}/board.yaml"]),
    "record-out-is-scenario": ("--out", [*_with(RECORD, "--scenario", "{ws}/trace.csv"), "--out", "{ws}/trace.csv"]),
    "record-out-is-dir": ("--out", [*RECORD, "--out", "{ws}"]),
    "record-out-under-a-file": ("trace.csv/new.csv", [*RECORD, "--out", "{ws}/trace.csv/new.csv"]),
    "eval-profile-is-weights": ("--write-profile", [*EVAL, "--weights", "{ws}/w.pt", "--write-profile", "{ws}/w.pt"]),
    "eval-profile-is-data-file": (
        "--write-profile",
        [*EVAL, "--weights", "{ws}/w.pt", "--write-profile", "{ws}/data/cifar-10-batches-py/test_batch"],
    ),
    "eval-profile-is-dir": ("--write-profile", [*EVAL, "--weights", "{ws}/w.pt", "--write-profile", "{ws}"]),
    "eval-profile-under-a-file": ("w.pt/dnn.yaml", [*EVAL, "--weights", "{ws}/w.pt", "--write-profile", "{ws}/w.pt/dnn.yaml"]),
    "profile-out-is-weights": ("--out", [*PROFILE, "--weights", "{ws}/w.pt", "--out", "{ws}/w.pt"]),
    "profile-out-is-data-file": ("--out", [*PROFILE, "--out", "{ws}/data/cifar-10-batches-py/test_batch"]),
    "profile-out-is-dir": ("--out", [*PROFILE, "--out", "{ws}"]),
    "profile-out-under-a-file": ("trace.csv/board.yaml", [*PROFILE, "--out", "{ws}/trace.csv/board.yaml"]),
    "dnn-train-out-is-dir": ("--out", [*DNN_TRAIN, "--out", "{ws}"]),
    "dnn-train-out-is-data-file": ("--out", [*DNN_TRAIN, "--out", "{ws}/data/cifar-10-batches-py/data_batch_1"]),
    "export-out-under-a-file": ("trace.csv/policy", ["export", "{ws}/run", "--out", "{ws}/trace.csv/policy"]),
    # ---- 2. an existing run folder, or an input, as the run folder
    "train-into-existing-run": ("--out", [*TRAIN, "--out", "{ws}/run"]),
    "train-agent-py-into-existing-run": ("--out", [*TRAIN_AGENT, "--out", "{ws}/run"]),
    "train-into-a-file": ("--out", [*TRAIN, "--out", "{ws}/trace.csv"]),
    "train-into-the-profile": ("--out", [*TRAIN, "--out", "{ws}/board.yaml"]),
    # ---- 3. counts and names
    "train-timesteps-0": ("--timesteps", [*TRAIN, "--timesteps", "0", "--out", "{ws}/new"]),
    "train-timesteps-neg": ("--timesteps", [*TRAIN, "--timesteps", "-1", "--out", "{ws}/new"]),
    "train-n-envs-0": ("--n-envs", [*TRAIN, "--n-envs", "0", "--out", "{ws}/new"]),
    "train-n-envs-neg": ("--n-envs", [*TRAIN, "--n-envs", "-2", "--out", "{ws}/new"]),
    "train-agent-py-timesteps-0": ("--timesteps", [*TRAIN_AGENT, "--timesteps", "0", "--out", "{ws}/new"]),
    "train-agent-py-n-envs-neg": ("--n-envs", [*TRAIN_AGENT, "--n-envs", "-2", "--out", "{ws}/new"]),
    "train-seed-negative": ("--seed", [*TRAIN, "--seed", "-1", "--out", "{ws}/new"]),
    "compare-episode-length-0": ("--episode-length", [*COMPARE, "--episode-length", "0"]),
    "compare-episode-length-neg": ("--episode-length", [*COMPARE, "--episode-length", "-3"]),
    "compare-baselines-bogus": ("bogus", [*COMPARE, "--baselines", "bogus"]),
    "compare-seeds-negative": ("--seeds", [*COMPARE, "--seeds", "-5"]),
    "compare-seeds-billion": ("--seeds", [*COMPARE, "--seeds", "0-1000000000"]),
    "compare-live-baseline-simulation-only": ("oracle", [*LIVE_COMPARE, "--baselines", "oracle"]),
    "compare-live-without-budgets": ("--budgets", ["compare", "--live", *BOARD, "--quiet", "--log-dir", "{ws}/live", *LIVE]),
    "record-seed-2-to-the-64": ("--seed", [*RECORD, "--seed", str(2**64), "--out", "{ws}/new.csv"]),
    "record-length-0": ("--length", [*RECORD, "--length", "0", "--out", "{ws}/new.csv"]),
    "stats-length-0": ("--length", [*_with(STATS, "--length", "0"), "--scenario", "{ws}/xu3trace.csv"]),
    "stats-seeds-bogus": ("--seeds", [*_with(STATS, "--seeds", "a-b"), "--scenario", "{ws}/xu3trace.csv"]),
    "dnn-train-lr-nan": ("--lr", [*DNN_TRAIN, "--lr", "nan", "--out", "{ws}/new.pt"]),
    "dnn-train-epochs-0": ("--epochs-per-stage", [*_with(DNN_TRAIN, "--epochs-per-stage", "0"), "--out", "{ws}/new.pt"]),
    "dnn-train-batch-size-0": ("--batch-size", [*_with(DNN_TRAIN, "--batch-size", "0"), "--out", "{ws}/new.pt"]),
    "dnn-eval-repeats-0": ("--repeats", [*_with(EVAL, "--repeats", "0"), "--weights", "{ws}/w.pt"]),
    "dnn-eval-limit-0": ("--limit", [*_with(EVAL, "--limit", "0"), "--weights", "{ws}/w.pt"]),
    "board-info-root-missing": ("no-such-root", ["board", "info", "--root", "{ws}/no-such-root"]),
    "board-info-root-is-a-file": ("trace.csv", ["board", "info", "--root", "{ws}/trace.csv"]),
    # ---- 4. profiles and what-if numbers
    "show-misspelt-key": ("activty", ["platform", "show", "{ws}/profiles/typo.yaml"]),
    "show-huge-coefficient": ("mem_slowdown", ["platform", "show", "{ws}/profiles/huge.yaml"]),
    "ranges-huge-power-coefficient": ("per_core", ["platform", "ranges", "{ws}/profiles/huge_power.yaml", "--json"]),
    "show-trip-below-absolute-zero": ("temp_c", ["platform", "show", "{ws}/profiles/cold_trip.yaml"]),
    "show-trip-off-table": ("max_freq_mhz", ["platform", "show", "{ws}/profiles/trip_freq.yaml"]),
    "show-zero-latency": ("latency_ms", ["platform", "show", "{ws}/profiles/zero_latency.yaml"]),
    "show-negative-latency": ("latency_ms", ["platform", "show", "{ws}/profiles/negative_latency.yaml"]),
    "show-binary-profile": ("binary.yaml", ["platform", "show", "{ws}/profiles/binary.yaml"]),
    "show-latin1-profile": ("latin1.yaml", ["platform", "show", "{ws}/profiles/latin1.yaml"]),
    "show-missing-profile": ("no-such.yaml", ["platform", "show", "{ws}/profiles/no-such.yaml"]),
    "ranges-misspelt-key": ("activty", ["platform", "ranges", "{ws}/profiles/typo.yaml"]),
    "ranges-binary-dnn-profile": ("binary.yaml", ["platform", "ranges", "xu3", "--dnn-profile", "{ws}/profiles/binary.yaml"]),
    "query-misspelt-key": ("activty", ["platform", "query", "{ws}/profiles/typo.yaml", *QUERY[3:]]),
    "query-binary-dnn-profile": ("binary.yaml", [*QUERY, "--dnn-profile", "{ws}/profiles/binary.yaml"]),
    **{f"query-temp-{t}": ("--temp", [*QUERY, f"--temp={t}"]) for t in ("nan", "inf", "-300", "5000", "1e9")},
    "query-load-1e308": ("--load", [*QUERY, "--load", "a15=1e308"]),
    "record-misspelt-profile": (
        "activty",
        ["env", "record", "--platform", "{ws}/profiles/typo.yaml", "--length", "5", "--out", "{ws}/new.csv"],
    ),
    "train-zero-latency-profile": (
        "latency_ms",
        [*_with(TRAIN, "--platform", "{ws}/profiles/zero_latency.yaml"), "--out", "{ws}/new"],
    ),
    "compare-misspelt-profile": ("activty", [*_with(XU3_COMPARE, "--platform", "{ws}/profiles/typo.yaml")]),
    "deploy-negative-latency-profile": (
        "latency_ms",
        [*_with(DEPLOY, "--platform", "{ws}/profiles/negative_latency.yaml"), "--log", "{ws}/out.jsonl"],
    ),
    # ---- 5. budget traces (culprit: the file, or the column at fault)
    **{
        f"stats-trace-{name}": (culprit, [*STATS, "--scenario", f"{{ws}}/traces/xu3_{name}.csv"])
        for name, culprit in (
            ("latin1", "xu3_latin1.csv"),
            ("binary", "xu3_binary.csv"),
            ("duplicated", "time_budget_ms"),
            ("long_period", "period_ms"),
        )
    },
    **{
        f"compare-scenario-{name}": (culprit, [*SCENARIO_COMPARE, "--scenario", f"{{ws}}/traces/xu3_{name}.csv"])
        for name, culprit in (
            ("latin1", "xu3_latin1.csv"),
            ("binary", "xu3_binary.csv"),
            ("duplicated", "time_budget_ms"),
            ("long_period", "period_ms"),
        )
    },
    **{
        f"compare-traces-{name}": (culprit, [*XU3_COMPARE, "--traces", f"{{ws}}/traces_{name}"])
        for name, culprit in (("latin1", "traces_latin1"), ("binary", "traces_binary"), ("duplicated", "time_budget_ms"))
    },
    **{
        f"deploy-budgets-{name}": (
            culprit,
            [*_with(DEPLOY, "--budgets", f"{{ws}}/traces/board_{name}.csv"), "--log", "{ws}/out.jsonl"],
        )
        for name, culprit in (("latin1", "board_latin1.csv"), ("binary", "board_binary.csv"), ("duplicated", "time_budget_ms"))
    },
    "deploy-period-1e308": (
        "period_ms",
        [*_with(DEPLOY, "--budgets", "{ws}/traces/board_long_period.csv"), "--log", "{ws}/out.jsonl"],
    ),
    "compare-live-budgets-binary": ("board_binary.csv", [*_with(LIVE_COMPARE, "--budgets", "{ws}/traces/board_binary.csv")]),
    "record-scenario-binary": (
        "board_binary.csv",
        [*_with(RECORD, "--scenario", "{ws}/traces/board_binary.csv"), "--out", "{ws}/new.csv"],
    ),
    # ---- 6. load schedules
    "deploy-load-20-threads-on-1-core": ("threads", [*DEPLOY, "--load", "{ws}/load20.csv", "--log", "{ws}/out.jsonl"]),
    "deploy-load-binary": ("load_binary.csv", [*DEPLOY, "--load", "{ws}/load_binary.csv", "--log", "{ws}/out.jsonl"]),
    "compare-live-load-20-threads-on-1-core": ("threads", [*LIVE_COMPARE, "--load", "{ws}/load20.csv"]),
    # ---- 7. weight files
    **{f"eval-{n}-weights": (f"w_{n}.pt", [*EVAL, "--weights", f"{{ws}}/w_{n}.pt"]) for n in ("truncated", "garbage", "empty")},
    **{
        f"profile-{n}-weights": (f"w_{n}.pt", [*PROFILE, "--weights", f"{{ws}}/w_{n}.pt", "--out", "{ws}/new.yaml"])
        for n in ("truncated", "garbage", "empty")
    },
    "dnn-train-resume-garbage-weights": ("w_garbage.pt", [*DNN_TRAIN, "--resume", "--out", "{ws}/w_garbage.pt"]),
    "dnn-train-resume-truncated-weights": ("w_truncated.pt", [*DNN_TRAIN, "--resume", "--out", "{ws}/w_truncated.pt"]),
    # ---- 8. policies and run folders
    "compare-truncated-policy": ("policy.npz", [*_with(COMPARE, "--agents", "{ws}/run_truncated")]),
    "compare-empty-policy": ("policy.npz", [*_with(COMPARE, "--agents", "{ws}/run_empty")]),
    "compare-truncated-policy-file": ("policy.npz", [*_with(COMPARE, "--agents", "{ws}/run_truncated/policy.npz")]),
    "deploy-truncated-policy": ("policy.npz", [*_with(DEPLOY, "--controller", "{ws}/run_truncated"), "--log", "{ws}/out.jsonl"]),
    "deploy-empty-policy": ("policy.npz", [*_with(DEPLOY, "--controller", "{ws}/run_empty"), "--log", "{ws}/out.jsonl"]),
    "compare-live-truncated-policy": ("policy.npz", [*LIVE_COMPARE, "--agents", "{ws}/run_truncated"]),
    "export-truncated-model": ("model.zip", ["export", "{ws}/run_badmodel", "--out", "{ws}/new_policy"]),
    "export-empty-model": ("model.zip", ["export", "{ws}/run_emptymodel", "--out", "{ws}/new_policy"]),
    "export-run-without-config": ("config.yaml", ["export", "{ws}/run_noconfig", "--out", "{ws}/new_policy"]),
    "export-missing-run": ("no-such-run", ["export", "{ws}/no-such-run", "--out", "{ws}/new_policy"]),
    "export-a-file-as-run": ("trace.csv", ["export", "{ws}/trace.csv", "--out", "{ws}/new_policy"]),
    "policy-for-another-board": ("xu3", [*XU3_COMPARE, "--agents", "{ws}/run"]),
    # ---- 9. hyperparameters
    "train-unknown-env-kwarg": ("bogus", [*_with(TRAIN, "--hyperparams", "{ws}/hp_unknown_kwarg.yml"), "--out", "{ws}/new"]),
    "train-learning-rate-fast": ("learning_rate", [*_with(TRAIN, "--hyperparams", "{ws}/hp_bad_lr.yml"), "--out", "{ws}/new"]),
    "train-binary-hyperparams": ("hp_binary.yml", [*_with(TRAIN, "--hyperparams", "{ws}/hp_binary.yml"), "--out", "{ws}/new"]),
    "train-hyperparams-a-list": ("hp_list.yml", [*_with(TRAIN, "--hyperparams", "{ws}/hp_list.yml"), "--out", "{ws}/new"]),
    # ---- 10. incomplete runs
    "compare-incomplete-run": ("incomplete", [*_with(COMPARE, "--agents", "{ws}/run_incomplete")]),
    "compare-incomplete-run-policy-file": ("incomplete", [*_with(COMPARE, "--agents", "{ws}/run_incomplete/policy.npz")]),
    "deploy-incomplete-run": ("incomplete", [*_with(DEPLOY, "--controller", "{ws}/run_incomplete"), "--log", "{ws}/out.jsonl"]),
    "deploy-incomplete-run-policy-file": (
        "incomplete",
        [*_with(DEPLOY, "--controller", "{ws}/run_incomplete/policy.npz"), "--log", "{ws}/out.jsonl"],
    ),
    "compare-live-incomplete-run": ("incomplete", [*LIVE_COMPARE, "--agents", "{ws}/run_incomplete"]),
    "export-incomplete-run": ("incomplete", ["export", "{ws}/run_incomplete", "--out", "{ws}/new_policy"]),
    # ---- 11. live numbers
    **{
        f"deploy-duration-{d}": ("--duration", [*DEPLOY, "--duration", d, "--log", "{ws}/out.jsonl"])
        for d in ("0", "-1", "inf", "nan")
    },
    **{f"compare-live-duration-{d}": ("--duration", [*LIVE_COMPARE, "--duration", d]) for d in ("0", "nan")},
    "profile-repeats-0": ("--repeats", [*_with(PROFILE, "--repeats", "0"), "--out", "{ws}/new.yaml"]),
    "profile-repeats-2": ("--repeats", [*_with(PROFILE, "--repeats", "2"), "--out", "{ws}/new.yaml"]),  # the help: at least 3
    "profile-warmup-neg": ("--warmup", [*_with(PROFILE, "--warmup", "-1"), "--out", "{ws}/new.yaml"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_no_file(name: str, ws: Path, capsys: pytest.CaptureFixture) -> None:
    culprit, argv = CASES[name]
    line = _check_one_line_exit_2([a.format(ws=ws) for a in argv], ws, capsys)
    assert culprit in line, f"the line does not name {culprit!r}: {line!r}"
    assert "weights_only" not in line, line


# ---------------------------------------------------------------- outputs in a read-only folder

READ_ONLY = {
    "record-out": [*RECORD, "--out", "{ws}/ro/t.csv"],
    "deploy-log": [*DEPLOY, "--log", "{ws}/ro/run.jsonl"],
    "compare-plot": [*COMPARE, "--plot", "{ws}/ro/plot.png"],
    "compare-live-log-dir": [*LIVE_COMPARE, "--log-dir", "{ws}/ro/live"],
    "eval-write-profile": [*EVAL, "--weights", "{ws}/w.pt", "--write-profile", "{ws}/ro/dnn.yaml"],
    "profile-out": [*PROFILE, "--out", "{ws}/ro/board.yaml"],
    "export-out": ["export", "{ws}/run", "--out", "{ws}/ro/policy"],
    "train-out": [*TRAIN, "--out", "{ws}/ro/run"],
    "dnn-train-out": [*DNN_TRAIN, "--out", "{ws}/ro/w.pt"],
}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("name", list(READ_ONLY))
def test_output_in_a_read_only_folder_is_one_line(name: str, ws: Path, capsys: pytest.CaptureFixture) -> None:
    ro = ws / "ro"
    ro.chmod(0o555)
    try:
        _check_one_line_exit_2([a.format(ws=ws) for a in READ_ONLY[name]], ws, capsys)
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------- what must be accepted, or kept finite


def _run_ok(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    rc = _run(argv)
    out, err = capsys.readouterr()
    assert rc == 0, f"exit code {rc}, stderr: {err!r}"
    return out


BOM = {
    "stats": [*STATS, "--scenario", "{ws}/bom_xu3.csv", "--json"],
    "compare-scenario": [*XU3_COMPARE, "--scenario", "{ws}/bom_xu3.csv", "--json"],
    "deploy-budgets": [*_with(DEPLOY, "--budgets", "{ws}/bom_board.csv"), "--log", "{tmp}/run.jsonl", "--json"],
}


@pytest.mark.parametrize("name", list(BOM))
def test_a_byte_order_mark_is_accepted(name: str, ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = _snapshot(ws)
    _run_ok([a.format(ws=ws, tmp=tmp_path) for a in BOM[name]], capsys)
    assert _snapshot(ws) == before


def _null_paths(obj, path: str = "") -> set[str]:
    if obj is None:
        return {path}
    if isinstance(obj, dict):
        return set().union(*(_null_paths(v, f"{path}/{k}") for k, v in obj.items()))
    if isinstance(obj, list):
        return set().union(*(_null_paths(v, f"{path}[]") for v in obj))
    return set()


def _strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"{token} in the --json output")

    return json.loads(text, parse_constant=refuse)


HUGE_LOAD = {
    # name: (argv with {trace} for the trace, the good trace, the 1e308 trace)
    "stats": ([*STATS, "--scenario", "{trace}", "--json"], "xu3trace.csv", "traces/xu3_huge_load.csv"),
    "compare-scenario": (
        [*_with(XU3_COMPARE, "--episode-length", "3"), "--scenario", "{trace}", "--json"],
        "xu3trace.csv",
        "traces/xu3_huge_load.csv",
    ),
    "compare-traces": ([*XU3_COMPARE, "--traces", "{trace}", "--json"], "xu3trace.csv", "traces/xu3_huge_load.csv"),
    "deploy": (
        [*_with(DEPLOY, "--budgets", "{trace}"), "--log", "{tmp}/run.jsonl", "--json"],
        "trace.csv",
        "traces/board_huge_load.csv",
    ),
}


@pytest.mark.parametrize("name", list(HUGE_LOAD))
def test_a_load_of_1e308_is_refused_or_kept_out_of_the_json(
    name: str, ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Refused in one line, or the --json output is as finite as a good trace's: no NaN or
    Infinity tokens and no null where the good trace's output has a number."""
    argv, good, huge = HUGE_LOAD[name]
    traces = {}
    for label, src in (("good", good), ("huge", huge)):
        d = tmp_path / label
        d.mkdir()
        # the same file name for both, so the reports' keys match; the good trace trimmed to the huge one's length
        rows = (ws / src).read_text().splitlines()[:4]
        (d / "trace.csv").write_text("\n".join(rows) + "\n")
        traces[label] = d if name == "compare-traces" else d / "trace.csv"
    fill = {"ws": ws, "tmp": tmp_path}
    good_out = _run_ok([a.format(trace=traces["good"], **fill) for a in argv], capsys)
    before = _snapshot(ws)
    rc = _run([a.format(trace=traces["huge"], **fill) for a in argv])
    out, err = capsys.readouterr()
    assert _snapshot(ws) == before
    assert "Traceback" not in err
    if rc == 2:
        assert len(err.strip().splitlines()) == 1 and "load_" in err, err
        return
    assert rc == 0, f"exit code {rc}, stderr: {err!r}"
    report = _strict_json(out)
    extra = _null_paths(report) - _null_paths(_strict_json(good_out))
    assert not extra, f"the 1e308 load turned these into null (NaN or inf): {sorted(extra)}"


@pytest.mark.parametrize(
    ("name", "ok"), [("nosign_ok.yaml", True), ("nosign.yaml", False)], ids=["6.115e0-in-range", "1.0e308-out-of-range"]
)
def test_a_number_without_exponent_sign_is_a_number(name: str, ok: bool, ws: Path, capsys: pytest.CaptureFixture) -> None:
    """YAML 1.1 reads ``1.0e308`` as a string: it is taken as the number it spells (accepted when
    in range, refused as out of range), never "must be a number, got str"."""
    rc = _run(["platform", "show", str(ws / "profiles" / name)])
    err = capsys.readouterr().err
    assert "got str" not in err and "Traceback" not in err, err
    if ok:
        assert rc == 0, f"exit code {rc}, stderr: {err!r}"
    else:
        assert rc in (0, 2), f"exit code {rc}, stderr: {err!r}"
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and "r_th_c_per_w" in err, err


# ---------------------------------------------------------------- --force, atomic writes, interruptions


@pytest.mark.parametrize("entry", [TRAIN, TRAIN_AGENT], ids=["dynscale-train", "train_agent.py"])
def test_force_replaces_a_finished_run(entry: list[str], ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(ws / "run", run)
    (run / "stale.txt").write_text("from an older run\n")
    argv = [a.format(ws=ws) for a in entry] + ["--out", str(run)]
    before = _snapshot(run)
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _snapshot(run) == before
    assert _run([*argv, "--force"]) == 0, capsys.readouterr().err
    assert not (run / "stale.txt").exists() and not (run / "INCOMPLETE").exists()
    assert (run / "evaluation.json").is_file() and (run / "policy.npz").is_file()


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
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False
    ).stdout.strip()
    stale = tmp_path / f".trace.csv.{dead}.abc.part"  # what a SIGKILLed writer leaves
    live = tmp_path / f".trace.csv.{os.getpid()}.xyz.part"  # a writer still at work
    stale.write_text("x")
    live.write_text("y")
    with atomic_write(target) as f:
        f.write("new\n")
    assert target.read_text() == "new\n" and not stale.exists() and live.exists()


@pytest.mark.parametrize(("signal_exc", "code", "how"), [("KeyboardInterrupt", 130, "SIGINT"), ("Terminated", 143, "SIGTERM")])
def test_interrupted_training_marks_its_folder_and_compare_refuses_it(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, signal_exc, code, how
) -> None:
    from agents import train as train_module
    from dnn import errors
    from dynscale_cli import main

    exc = KeyboardInterrupt if signal_exc == "KeyboardInterrupt" else errors.Terminated

    def stopped(*args, **kwargs):
        raise exc

    monkeypatch.setattr(train_module, "_train_in", stopped)
    run = tmp_path / "run"
    assert main([a.format(ws=ws) for a in TRAIN] + ["--out", str(run)]) == code
    assert (
        capsys.readouterr().err.strip()
        == f"dynscale: {'interrupted' if code == 130 else 'terminated'} ({how}); partial outputs removed"
    )
    assert f"training {'interrupted' if code == 130 else 'terminated'} ({how}) at " in (run / "INCOMPLETE").read_text()
    assert main(["compare", "--platform", str(ws / "board.yaml"), "--agents", str(run), "--quiet"]) == 2
    assert "an incomplete run" in capsys.readouterr().err
