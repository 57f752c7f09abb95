"""Sweeps on Optuna: sweep files, workers that share a study (SQLite and a real PostgreSQL
server), a worker killed mid-trial, and results over seeds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agents.sweep import SweepError, completed_evaluations, default_storage, load_sweep
from agents.sweep_report import iqm, iqm_ci
from dynscale_cli import main

#: a tiny training run: a few hundred steps, short episodes, no warm start
TINY_HYPERPARAMS = """\
dynscale/DynDNN-Nano-v0: &tiny
  n_timesteps: 256
  n_envs: 1
  policy: MlpPolicy
  n_steps: 128
  batch_size: 64
  n_epochs: 1
  policy_kwargs: "dict(net_arch=[16])"
  env_kwargs: {scenario: train, objective: accuracy, episode_length: 40}
dynscale/DynDNN-XU3-v0: *tiny
"""


def _sweep_file(tmp: Path, name: str = "tiny", extra: str = "") -> Path:
    (tmp / "tiny.yml").write_text(TINY_HYPERPARAMS)
    f = tmp / f"{name}.yaml"
    f.write_text(
        f"name: {name}\n"
        "grid: {platform: [nano], objective: [accuracy, energy], seed: [0, 1, 2]}\n"
        "train: {hyperparams: tiny.yml, eval_seeds: 1000}\n"
        "heartbeat_s: 1\ngrace_s: 4\n" + extra
    )
    return f


def _worker(sweep: Path, out: Path, storage: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dynscale_cli", "sweep", str(sweep), "--out", str(out), "--workers", "1"]
    cmd += ["--storage", storage] if storage else []
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parents[1])


def _trials_by_state(sweep: Path, storage: str) -> Counter:
    """The states of the study's trials, less those a worker discarded: one that asked for a trial
    as another claimed the last waiting grid point gets a trial with no point, which it marks
    ``discarded`` and prunes without running anything (agents.sweep; how often depends on timing)."""
    import optuna

    spec = load_sweep(sweep)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    discarded = [t.state.name for t in trials if "discarded" in t.user_attrs]
    assert set(discarded) <= {"PRUNED", "RUNNING"}, discarded  # pruned as soon as its worker has marked it
    return Counter(t.state.name for t in trials if "discarded" not in t.user_attrs)


def _assert_each_grid_point_completed_once(sweep: Path, storage: str, out: Path) -> None:
    done = completed_evaluations(load_sweep(sweep), storage)
    points = Counter((p["objective"], p["seed"]) for p, _ in done)
    assert len(points) == 6 and set(points.values()) == {1}, points
    runs = sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith("."))
    assert len(runs) == 6 and not any((out / "runs" / ".partial").iterdir())  # whole folders only
    assert all((out / "runs" / r / "evaluation.json").is_file() and not (out / "runs" / r / "INCOMPLETE").exists() for r in runs)


def test_two_workers_share_the_embedded_study_and_a_killed_workers_trial_is_retried(tmp_path: Path) -> None:
    sweep, out = _sweep_file(tmp_path), tmp_path / "sweep"
    storage = default_storage(out)
    a, b = _worker(sweep, out), _worker(sweep, out)
    deadline = time.monotonic() + 120
    while _trials_by_state_when_ready(sweep, storage)["RUNNING"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    a.send_signal(signal.SIGKILL)  # mid-trial (both workers are): its trial stays 'running', its heartbeat stops
    a.wait()
    restarted = _worker(sweep, out)
    for p in (b, restarted):
        p.wait(timeout=600)
        assert p.returncode == 0, p.stdout.read()
    _assert_each_grid_point_completed_once(sweep, storage, out)
    states = _trials_by_state(sweep, storage)
    assert states == Counter(COMPLETE=6, FAIL=1)  # the killed attempt failed; its retry completed


def _trials_by_state_when_ready(sweep: Path, storage: str) -> Counter:
    """The study's trial states, or none before a worker has created it."""
    try:
        return _trials_by_state(sweep, storage)
    except Exception:  # the database or the study does not exist yet
        return Counter()


def _postgres_binaries() -> Path | None:
    for d in [
        *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep)),
        *sorted(Path("/usr/lib/postgresql").glob("*/bin")),
    ]:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


@pytest.fixture
def postgres(request: pytest.FixtureRequest):
    """A real PostgreSQL server in a temporary folder (initdb + pg_ctl), on a free port; as
    the ``postgres`` user when run as root (initdb refuses root)."""
    pytest.importorskip("psycopg2", reason="psycopg2 not installed (pip install '.[postgres]')")
    bin_dir = _postgres_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: initdb refuses root")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = Path(tempfile.mkdtemp(prefix="dynscale-pg-"))  # pytest's own folders are closed to other users
    request.addfinalizer(lambda: shutil.rmtree(data, ignore_errors=True))
    if as_user:
        shutil.chown(data, "postgres")
        os.chmod(data, 0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout}{done.stderr}"

    run(str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "dynscale", "--auth=trust")
    run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-l",
        str(data / "log"),
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg2://dynscale@127.0.0.1:{port}/postgres"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "-w", "stop")


def test_two_workers_on_a_real_postgresql_server_run_each_trial_once(tmp_path: Path, postgres: str) -> None:
    sweep, out = _sweep_file(tmp_path), tmp_path / "sweep"
    workers = [_worker(sweep, out, postgres), _worker(sweep, out, postgres)]
    for p in workers:
        p.wait(timeout=600)
        assert p.returncode == 0, p.stdout.read()
    _assert_each_grid_point_completed_once(sweep, postgres, out)
    assert _trials_by_state(sweep, postgres) == Counter(COMPLETE=6)
    assert main(["report", str(out), "--storage", postgres]) == 0


def test_report_prints_iqm_and_bootstrap_intervals_per_controller(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep, out = _sweep_file(tmp_path), tmp_path / "sweep"
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--json", "--plot", str(tmp_path / "r.png")]) == 0
    rows = json.loads(capsys.readouterr().out)
    agents = [r for r in rows if r["controller"] == "agent"]
    assert {r["objective"] for r in agents} == {"accuracy", "energy"} and all(r["runs"] == 3 for r in agents)
    for r in rows:
        for m in ("mean_reward", "deadline_miss_rate", "mean_accuracy"):
            assert r[m]["ci_low"] <= r[m]["iqm"] <= r[m]["ci_high"]
    greedy = next(r for r in rows if r["controller"] == "greedy")
    assert greedy["mean_reward"]["ci_low"] == greedy["mean_reward"]["ci_high"]  # a deterministic baseline: no spread
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "IQM [95% bootstrap CI]" in table and "model-predictive" in table
    # run again: nothing left to do, nothing run twice
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "1"]) == 0
    assert _trials_by_state(sweep, default_storage(out)) == Counter(COMPLETE=6)


def test_iqm_is_the_mean_of_the_middle_half_and_its_interval_covers_it() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 100.0, 4.0, 5.0, 6.0])
    assert iqm(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))  # the outlier seed does not move it
    c, lo, hi = iqm_ci(list(x))
    assert lo <= c <= hi and hi - lo > 0
    assert iqm_ci([2.0]) == (2.0, 2.0, 2.0)


def test_a_search_tunes_hyperparameters_and_scores_the_named_metric(tmp_path: Path) -> None:
    import optuna

    sweep = _sweep_file(
        tmp_path,
        "search",
        "metric: {name: deadline_miss_rate, min_accuracy: 0.5}\n"
        "search: {n_trials: 3, space: {ppo: {learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}, n_epochs: {low: 1, high: 2}}}}\n",
    )
    sweep.write_text(sweep.read_text().replace("objective: [accuracy, energy], seed: [0, 1, 2]", "seed: [0]"))
    out = tmp_path / "sweep"
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "1"]) == 0
    study = optuna.load_study(study_name="search", storage=default_storage(out))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 3 and study.direction == optuna.study.StudyDirection.MINIMIZE
    assert len({t.params["learning_rate"] for t in done}) == 3
    for t in done:
        agent = next(v for k, v in t.user_attrs["evaluation"]["controllers"].items() if k.startswith("agent:"))
        expected = agent["deadline_miss_rate"] if agent["mean_accuracy"] >= 0.5 else float("inf")
        assert t.value == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("grid: {platform: [xu3], color: [red]}\n", "field 'grid' has unknown dimension(s) color"),
        ("grid: {seed: [0, 0]}\n", "field 'grid.seed' must be a non-empty list without repeats"),
        ("grid: {algo: [sac]}\n", "field 'grid.algo' 'sac' is none of"),
        ("metric: {name: speed}\n", "field 'metric.name' 'speed' is none of"),
        ("train: {timesteps: 0}\n", "field 'train.timesteps' must be a whole number > 0"),
        ("train: {hyperparams: nope.yml}\n", "field 'train.hyperparams' 'nope.yml': no such file"),
        ("grid: {seed: [0, 1]}\nsearch: {n_trials: 2, space: {}}\n", "field 'grid' must name one value per dimension"),
        (
            "search: {n_trials: 2, space: {ppo: {gamma: {low: 0.9, high: 0.8}}}}\n",
            "field 'search.space.ppo.gamma' needs low < high",
        ),
        ("heartbeat_s: 5\ngrace_s: 5\n", "field 'grace_s' must exceed heartbeat_s"),
    ],
)
def test_bad_sweep_files_exit_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    assert main(["sweep", str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and message in err, err
    assert not (tmp_path / "o").exists()


def test_a_sweep_folder_refuses_a_different_sweep_and_report_needs_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o"
    out.mkdir()
    assert main(["report", str(out)]) == 2 and "no sweep.yaml" in capsys.readouterr().err
    with pytest.raises(SweepError, match="'metric.direction' must be maximize or minimize"):
        (tmp_path / "m.yaml").write_text("metric: {direction: up}\n")
        load_sweep(tmp_path / "m.yaml")


def test_a_stopped_workers_trial_is_queued_again_once(tmp_path: Path) -> None:
    import optuna

    from agents.sweep import _fail_and_retry

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    waiting = optuna.trial.TrialState.WAITING
    for state_after_stop in ("RUNNING", "FAIL"):  # SIGTERM leaves it running; optimize fails it on SIGINT
        study.enqueue_trial({"x": 1})
        trial = study.ask()
        if state_after_stop == "FAIL":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        _fail_and_retry(study, trial.number)
        _fail_and_retry(study, trial.number)  # a second look (or another worker's) queues nothing more
        assert study.get_trials()[trial.number].state == optuna.trial.TrialState.FAIL
        retries = [t for t in study.get_trials(states=(waiting,)) if trial.number in t.system_attrs.get("retry_history", [])]
        assert len(retries) == 1 and retries[0].params == {} and retries[0].system_attrs["failed_trial"] == trial.number
        study.tell(study.ask(), 0.0)  # the retry runs


def test_workers_opening_a_new_study_at_the_same_moment_all_join_it(tmp_path: Path) -> None:
    """Workers started together on an empty database race to create Optuna's tables and the
    study: every one must end up in the same study, with the grid enqueued once."""
    import threading

    from agents.sweep import open_study

    spec = load_sweep(_sweep_file(tmp_path))
    url = default_storage(tmp_path)
    start, studies, errors = threading.Barrier(4), [], []

    def join() -> None:
        start.wait()
        try:
            studies.append(open_study(spec, url))
        except Exception as exc:  # collected: an assert in a thread would not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(studies) == 4
    assert len({s._study_id for s in studies}) == 1 and len(studies[0].get_trials()) == 6


def test_a_trial_claimed_by_a_worker_killed_before_its_first_heartbeat_is_retried(tmp_path: Path) -> None:
    """Optuna calls a running trial stale only from its heartbeats; one whose worker died before
    the first (killed right after claiming it) must not make every other worker wait forever."""
    import optuna
    from optuna.storages import fail_stale_trials

    from agents.sweep import open_study

    spec = load_sweep(_sweep_file(tmp_path))  # grace_s 4
    study = open_study(spec, default_storage(tmp_path))
    claimed = study.ask()  # running, and no heartbeat thread: as if killed right after the claim
    fail_stale_trials(study)
    assert study.get_trials(deepcopy=False)[claimed.number].state == optuna.trial.TrialState.RUNNING  # not yet
    time.sleep(spec.grace_s + 1)
    fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    assert trials[claimed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if claimed.number in t.system_attrs.get("retry_history", ())]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.WAITING
