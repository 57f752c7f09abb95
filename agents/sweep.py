"""Sweeps: many training runs on one Optuna study, shared by any number of workers.

A sweep file (YAML) names a **grid** (the cartesian product of platforms, training scenarios,
objectives, algorithms and seeds: one trial each) and, optionally, a **search** (a space of
hyperparameters per algorithm that Optuna's TPE sampler explores for ``n_trials`` trials, with
median pruning on the validation reward). Each trial trains one agent with
:func:`agents.train.train` and scores it on held-out seeds with ``dynscale compare``'s metrics;
the study maximises (or minimises) the metric the file names, never the training return::

    name: default-5seeds
    grid:
      platform: [xu3, nano]
      seed: [0, 1, 2, 3, 4]
      # scenario: [train]   objective: [accuracy]   algo: [ppo]   (defaults shown)
    train: {timesteps: 200000, eval_seeds: 7301-7320}   # optional; default: the file's
    metric: {name: mean_reward, direction: maximize}     # optional; min_accuracy: a floor
    search:                                              # optional
      n_trials: 20
      space:
        ppo:
          learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}
          n_epochs: {low: 4, high: 10}
          gamma: {choices: [0.8, 0.9, 0.95]}

How workers share a study (``--storage URL``; default: SQLite in the sweep folder):

* *exactly once*: the worker that creates the study enqueues every grid point as a waiting
  trial; a worker claims a waiting trial by moving it to running, which the storage does
  atomically, so two workers never run the same one;
* *killed workers*: a running trial records a heartbeat; one whose heartbeat is older than
  the grace period is marked failed by the next worker that looks and enqueued again
  (Optuna's ``RetryHeartbeatStaleTrialCallback``), so a SIGKILLed worker's trial is retried once a
  worker runs; a worker with nothing left to claim waits while other trials still run, as one
  of them may come back;
* *whole folders*: a trial trains in ``runs/.partial/KEY`` and is renamed to ``runs/KEY`` when
  its evaluation is written: a trial's folder is complete or absent, never half-written.

Each finished trial also stores its evaluation (every controller's metrics) in the study, so
``dynscale report`` works from the storage alone, for workers on many machines.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import queue as queues
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnn.errors import UserError
from dnn.fileio import atomic_write, incomplete_reason, json_text, read_yaml

if TYPE_CHECKING:
    import optuna

#: the grid's dimensions and their defaults (a dimension the file leaves out has one value)
GRID_DEFAULTS: dict[str, list[Any]] = {
    "platform": ["xu3"],
    "scenario": ["train"],
    "objective": ["accuracy"],
    "algo": ["ppo"],
    "seed": [0],
}
#: the metrics a sweep may optimise (``dynscale compare``'s), and the direction that is better
METRICS = {
    "mean_reward": "maximize",
    "oracle_gap": "minimize",
    "deadline_miss_rate": "minimize",
    "energy_violation_rate": "minimize",
    "mean_accuracy": "maximize",
    "energy_mj": "minimize",
}
#: the trial's evaluation, as stored in the study (user attribute)
EVALUATION_ATTR = "evaluation"
GRID_ATTR = "grid_point"
#: attempts to open a storage whose tables another worker may be creating at the same moment
STORAGE_ATTEMPTS = 5


class SweepError(UserError, ValueError):
    """A sweep file or study that cannot be used (the message names the file and field)."""


@dataclass(frozen=True)
class Metric:
    """What a sweep's study optimises.

    :param name: one of :data:`METRICS`, the agent's value on the held-out seeds
    :param direction: ``maximize`` or ``minimize`` (default: the metric's better way)
    :param min_accuracy: an accuracy floor: a trial whose agent's mean accuracy is below it
        scores the worst possible value (infinite), whatever its metric
    """

    name: str = "mean_reward"
    direction: str = ""
    min_accuracy: float | None = None

    def value(self, agent: dict[str, Any]) -> float:
        """The trial's objective value from the agent's metrics."""
        worst = float("-inf") if (self.direction or METRICS[self.name]) == "maximize" else float("inf")
        if self.min_accuracy is not None and agent["mean_accuracy"] < self.min_accuracy:
            return worst
        return float(agent[self.name])


@dataclass(frozen=True)
class Search:
    """A hyperparameter search: ``space[algo][name]`` is ``{low, high[, log]}`` (float, or int
    when both bounds are whole numbers) or ``{choices: [...]}``."""

    n_trials: int
    space: dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file (see the module docstring)."""

    name: str
    grid: dict[str, list[Any]]
    timesteps: int | None = None
    eval_seeds: list[int] | None = None
    eval_scenario: str | None = None
    hyperparams: str | None = None
    metric: Metric = field(default_factory=Metric)
    search: Search | None = None
    heartbeat_s: float = 10.0
    grace_s: float = 60.0

    def to_dict(self) -> dict:
        return asdict(self)


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep file; errors name the file and field."""
    p = Path(path)
    doc = read_yaml(p, SweepError, "sweep file")
    if not isinstance(doc, dict):
        raise SweepError(f"{p}: a sweep file is a mapping (name, grid, train, metric, search)")
    unknown = set(doc) - {"name", "grid", "train", "metric", "search", "heartbeat_s", "grace_s"}
    if unknown:
        raise SweepError(f"{p}: unknown field(s) {', '.join(sorted(unknown))}; valid: name, grid, train, metric, search")

    def err(where: str, what: str) -> SweepError:
        return SweepError(f"{p}: field '{where}' {what}")

    train = _mapping(doc.get("train"), "train", err)
    spec = SweepSpec(
        name=str(doc.get("name") or p.stem),
        grid=_parse_grid(doc.get("grid"), err),
        timesteps=_positive(train.get("timesteps"), "train.timesteps", err),
        eval_seeds=_seeds(train.get("eval_seeds"), err),
        eval_scenario=train.get("eval_scenario"),
        hyperparams=_hyperparams_path(train.get("hyperparams"), p, err),
        metric=_parse_metric(doc.get("metric"), err),
        search=_parse_search(doc.get("search"), err),
        heartbeat_s=float(_positive(doc.get("heartbeat_s", 10), "heartbeat_s", err, number=True)),
        grace_s=float(_positive(doc.get("grace_s", 60), "grace_s", err, number=True)),
    )
    if set(train) - {"timesteps", "eval_seeds", "eval_scenario", "hyperparams"}:
        raise err("train", "takes timesteps, eval_seeds, eval_scenario, hyperparams")
    if spec.grace_s <= spec.heartbeat_s:
        raise err("grace_s", f"must exceed heartbeat_s ({spec.heartbeat_s:g}): a live trial would look dead")
    if spec.search is not None and len(grid_points(spec)) != 1:
        raise err(
            "grid",
            "must name one value per dimension with a search (a search tunes one board, scenario, objective, algorithm and seed)",
        )
    return spec


def _hyperparams_path(v: Any, sweep_file: Path, err) -> str | None:
    """``train.hyperparams``: an rl-zoo YAML, relative to the sweep file; stored absolute."""
    if v is None:
        return None
    p = (sweep_file.parent / str(v)).resolve()
    if not p.is_file():
        raise err("train.hyperparams", f"{v!r}: no such file (relative to {sweep_file.parent})")
    return str(p)


def _mapping(d: Any, where: str, err) -> dict:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise err(where, "must be a mapping")
    return d


def _positive(v: Any, where: str, err, number: bool = False) -> Any:
    if v is None:
        return None
    ok = isinstance(v, (int, float)) if number else isinstance(v, int)
    if isinstance(v, bool) or not ok or not v > 0:
        raise err(where, f"must be a {'number' if number else 'whole number'} > 0, got {v!r}")
    return v


def _seeds(v: Any, err) -> list[int] | None:
    from envs.cli import parse_seeds

    if v is None:
        return None
    try:
        return parse_seeds(str(v)) if not isinstance(v, list) else parse_seeds(",".join(str(int(x)) for x in v))
    except Exception as exc:  # argparse's error type carries the message
        raise err("train.eval_seeds", str(exc)) from None


def _parse_grid(d: Any, err) -> dict[str, list[Any]]:
    d = _mapping(d, "grid", err)
    bad = set(d) - set(GRID_DEFAULTS)
    if bad:
        raise err("grid", f"has unknown dimension(s) {', '.join(sorted(bad))}; valid: {', '.join(GRID_DEFAULTS)}")
    grid = {}
    for k, default in GRID_DEFAULTS.items():
        v = d.get(k, default)
        v = v if isinstance(v, list) else [v]
        if not v or len(set(map(str, v))) != len(v):
            raise err(f"grid.{k}", f"must be a non-empty list without repeats, got {v!r}")
        if k == "seed" and not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v):
            raise err("grid.seed", f"must list whole numbers >= 0, got {v!r}")
        if k == "algo":
            from agents.algos import ALGOS

            for a in v:
                if a not in ALGOS:
                    raise err("grid.algo", f"{a!r} is none of {', '.join(ALGOS)}")
        grid[k] = v if k == "seed" else [str(x) for x in v]
    return grid


def _parse_metric(d: Any, err) -> Metric:
    d = _mapping(d, "metric", err)
    if set(d) - {"name", "direction", "min_accuracy"}:
        raise err("metric", "takes name, direction, min_accuracy")
    name = d.get("name", "mean_reward")
    if name not in METRICS:
        raise err("metric.name", f"{name!r} is none of {', '.join(METRICS)}")
    direction = d.get("direction", METRICS[name])
    if direction not in ("maximize", "minimize"):
        raise err("metric.direction", f"must be maximize or minimize, got {direction!r}")
    floor = d.get("min_accuracy")
    if floor is not None and (not isinstance(floor, (int, float)) or not 0 < floor <= 1):
        raise err("metric.min_accuracy", f"must be a fraction in (0, 1], got {floor!r}")
    return Metric(name, direction, floor)


def _parse_search(d: Any, err) -> Search | None:
    if d is None:
        return None
    d = _mapping(d, "search", err)
    if set(d) != {"n_trials", "space"}:
        raise err("search", "needs exactly n_trials, space")
    space = _mapping(d["space"], "search.space", err)
    for algo, params in space.items():
        for name, rng in _mapping(params, f"search.space.{algo}", err).items():
            where = f"search.space.{algo}.{name}"
            rng = _mapping(rng, where, err)
            if "choices" in rng:
                if set(rng) != {"choices"} or not isinstance(rng["choices"], list) or not rng["choices"]:
                    raise err(where, "with choices takes only a non-empty list")
            elif not {"low", "high"} <= set(rng) <= {"low", "high", "log"} or not rng["low"] < rng["high"]:
                raise err(where, f"needs low < high (and optionally log), or choices; got {rng!r}")
    return Search(_positive(d["n_trials"], "search.n_trials", err), space)


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a fixed order."""
    keys = list(spec.grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in keys))]


def trial_key(number: int, point: dict[str, Any]) -> str:
    """A trial's folder name: its (first attempt's) number and its grid point."""
    stem = lambda x: Path(str(x)).stem  # noqa: E731  (a platform or scenario may be a file)
    return f"{number:04d}-{stem(point['platform'])}-{stem(point['scenario'])}-{stem(point['objective'])}-{point['algo']}-s{point['seed']}"


def default_storage(sweep_dir: str | os.PathLike) -> str:
    """The embedded storage: a SQLite file in the sweep folder (no server needed)."""
    return f"sqlite:///{Path(sweep_dir).resolve() / 'optuna.db'}"


def _storage(url: str, spec: SweepSpec):
    """An Optuna storage with heartbeats and retry of trials whose worker died."""
    import warnings

    import optuna
    import sqlalchemy.exc
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    # heartbeats have been Optuna's way to recover from killed workers since 2.8; still marked experimental
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise SweepError(f"--storage {url}: expected an SQLAlchemy URL (sqlite:///FILE, postgresql://..., mysql://...)")
    sqlite = url.startswith("sqlite:")
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return (_locked_sqlite_storage if sqlite else _sweep_storage_class())(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None,  # wait for the write lock
                heartbeat_interval=max(int(spec.heartbeat_s), 1),
                grace_period=max(int(spec.grace_s), 2),
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as exc:
            # workers started at once on an empty database race to create Optuna's tables: one
            # wins, the others find them on the next attempt (SQLite says so as an OperationalError)
            if isinstance(exc, sqlalchemy.exc.OperationalError) and not any(
                m in str(exc) for m in ("already exists", "database is locked")
            ):
                raise SweepError(f"--storage {url}: cannot open ({' '.join(str(exc).split())[:200]})") from None
            if attempt == STORAGE_ATTEMPTS - 1:
                raise SweepError(f"--storage {url}: could not create or open Optuna's tables") from None
            time.sleep(0.5 * (attempt + 1))
        except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            raise SweepError(f"--storage {url}: cannot open ({' '.join(str(exc).split())[:200]})") from None
    raise AssertionError("unreachable")


@functools.cache
def _sweep_storage_class():
    """Optuna's ``RDBStorage``, also calling stale a running trial that never sent a heartbeat.

    A worker killed between claiming a trial and its first heartbeat leaves the trial running
    with no heartbeat row, which Optuna never calls stale: every other worker would wait for it
    forever. Such a trial counts as stale once it started longer than the grace period ago.
    """
    from datetime import datetime, timedelta

    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    class SweepStorage(RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = super()._get_stale_trial_ids(study_id)
            grace = timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 60))
            now = datetime.now()  # Optuna stamps datetime_start with the local datetime.now()
            candidates = [
                t._trial_id
                for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if t._trial_id not in stale and t.datetime_start is not None and now - t.datetime_start > grace
            ]
            if candidates:
                with _create_scoped_session(self.scoped_session) as session:
                    beating = {
                        h.trial_id
                        for h in session.query(models.TrialHeartbeatModel).filter(
                            models.TrialHeartbeatModel.trial_id.in_(candidates)
                        )
                    }
                stale += [t for t in candidates if t not in beating]
            return stale

    return SweepStorage


def _locked_sqlite_storage(url: str, **kwargs):
    """A sweep storage (:func:`_sweep_storage_class`) on SQLite whose trial state changes hold
    a file lock beside the database.

    Optuna claims a waiting trial by reading it ``FOR UPDATE`` and writing it running in one
    session; SQLite ignores ``FOR UPDATE`` and Python's sqlite3 driver reads outside the
    transaction, so two workers could both read a trial as waiting and both run it. Workers that
    share an SQLite file share a machine, so a lock file (``flock``) serialises the claims.
    """
    import fcntl

    lock_path = url.split("sqlite:///", 1)[-1] + ".lock"

    class LockedSQLiteStorage(_sweep_storage_class()):
        def set_trial_state_values(self, trial_id, state, values=None):
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                return super().set_trial_state_values(trial_id, state, values)

    return LockedSQLiteStorage(url, **kwargs)


def open_study(spec: SweepSpec, storage_url: str) -> optuna.Study:
    """Create the sweep's study (enqueueing the grid once) or join it; refuse a study of the
    same name made from a different sweep file."""
    import optuna

    storage = _storage(storage_url, spec)
    sampler = optuna.samplers.TPESampler() if spec.search else None  # unseeded: parallel workers must not draw alike
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if spec.search else optuna.pruners.NopPruner()
    direction = spec.metric.direction
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=spec.name, storage=storage, direction=direction, sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
        _check_same_sweep(study, spec, storage_url)
        return study
    study.set_user_attr("sweep", spec.to_dict())
    if spec.search is None:
        for point in grid_points(spec):
            study.enqueue_trial(point, user_attrs={GRID_ATTR: point})
    study.set_user_attr("enqueued", True)
    return study


def _check_same_sweep(study: optuna.Study, spec: SweepSpec, url: str) -> None:
    """Wait (briefly) for the creator to finish enqueueing; refuse a different sweep."""
    for _ in range(300):
        if study.user_attrs.get("enqueued"):
            break
        time.sleep(0.2)
    stored = study.user_attrs.get("sweep")
    if stored is not None and stored != json.loads(json_text(spec.to_dict())):
        raise SweepError(f"--storage {url}: study '{spec.name}' was made from a different sweep file; rename the sweep (name:)")


@dataclass
class WorkerSummary:
    """What one worker did (trial folder names)."""

    completed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def run_worker(
    spec: SweepSpec, sweep_dir: str | os.PathLike, storage_url: str | None = None, log: Callable[[str], None] = print
) -> WorkerSummary:
    """Claim and run trials until none is left (waiting while others run: one may come back).

    Each trial runs through ``study.optimize(n_trials=1)``, which claims a waiting trial
    atomically, keeps its heartbeat and first marks stale trials failed (and so retried). A
    worker stopped by SIGINT or SIGTERM marks its trial failed and enqueues it again itself.

    :param sweep_dir: where trial run folders go (``runs/KEY``)
    :param storage_url: the study's storage (default: :func:`default_storage`)
    :param log: one line per trial started and ended
    """
    import optuna
    from optuna.storages import fail_stale_trials

    sweep_dir = Path(sweep_dir)
    (sweep_dir / "runs" / ".partial").mkdir(parents=True, exist_ok=True)
    study = open_study(spec, storage_url or default_storage(sweep_dir))
    summary = WorkerSummary()
    current: list[int] = []
    objective = _objective(spec, sweep_dir, summary, log, current)
    while True:
        fail_stale_trials(study)
        if not _work_left(study, spec):
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                return summary
            time.sleep(min(spec.heartbeat_s, 2.0))  # a running trial may die and come back
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(UserError,))
        except BaseException:
            if current:  # stopped mid-trial (SIGINT, SIGTERM): failed, and queued again for the next worker
                _fail_and_retry(study, current[0])
            raise
        current.clear()


def _fail_and_retry(study: optuna.Study, number: int) -> None:
    """Mark the trial ``number`` failed (``optimize`` does for SIGINT, not for SIGTERM) and
    enqueue its retry."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    states = optuna.trial.TrialState
    if study.get_trials(deepcopy=False)[number].state == states.RUNNING:
        study.tell(number, state=states.FAIL)
    trials = study.get_trials(deepcopy=False)
    # a trial another worker failed as stale already has its retry (one names it in retry_history)
    if trials[number].state == states.FAIL and not any(number in t.system_attrs.get("retry_history", ()) for t in trials):
        RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trials[number])


def _work_left(study: optuna.Study, spec: SweepSpec) -> bool:
    """A waiting trial (a grid point or a retry), or a search with trials to go."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        return True
    if spec.search is None:
        return False
    first_attempts = [
        t for t in trials if t.user_attrs.get("first_number", t.number) == t.number and "discarded" not in t.user_attrs
    ]
    return len(first_attempts) < spec.search.n_trials


def _objective(spec: SweepSpec, sweep_dir: Path, summary: WorkerSummary, log, current: list[int]):
    """The function ``study.optimize`` runs for one trial: train, evaluate, return the metric."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        current[:] = [trial.number]
        if spec.search is None and GRID_ATTR not in trial.user_attrs:
            # another worker claimed the last waiting trial between our look and our ask
            trial.set_user_attr("discarded", "raced for the last waiting trial; nothing ran")
            raise optuna.TrialPruned("nothing to run")
        point = _point_of(trial, spec)
        if "first_number" not in trial.user_attrs:
            trial.set_user_attr("first_number", trial.number)
            trial.set_user_attr(GRID_ATTR, point)
        key = trial_key(trial.user_attrs["first_number"], point)
        log(f"trial {trial.number} ({key}): started")
        try:
            evaluation = _train_trial(trial, spec, point, sweep_dir, key)
        except optuna.TrialPruned:
            summary.pruned.append(key)
            log(f"trial {trial.number} ({key}): pruned")
            raise
        except UserError as exc:
            summary.failed.append(key)
            log(f"trial {trial.number} ({key}): failed: {exc}")
            raise
        agent = next(v for k, v in evaluation["controllers"].items() if k.startswith("agent:"))
        trial.set_user_attr(EVALUATION_ATTR, evaluation)
        trial.set_user_attr("run_folder", key)
        value = spec.metric.value(agent)
        summary.completed.append(key)
        log(f"trial {trial.number} ({key}): {spec.metric.name} {agent[spec.metric.name]:.4g} -> value {value:.4g}")
        return value

    return objective


def _point_of(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    """The trial's grid point (enqueued values, or the one point of a search) through
    ``suggest_categorical``, so a retried copy carries the same parameters."""
    if spec.search is not None:
        return grid_points(spec)[0]
    return {k: trial.suggest_categorical(k, spec.grid[k]) for k in spec.grid}


def _suggested_hyperparams(trial: optuna.Trial, spec: SweepSpec, algo: str) -> dict[str, Any]:
    """The search space's values for this trial (none without a search)."""
    if spec.search is None:
        return {}
    out = {}
    for name, rng in spec.search.space.get(algo, {}).items():
        if "choices" in rng:
            out[name] = trial.suggest_categorical(name, rng["choices"])
        elif all(isinstance(rng[b], int) and not isinstance(rng[b], bool) for b in ("low", "high")):
            out[name] = trial.suggest_int(name, rng["low"], rng["high"], log=bool(rng.get("log")))
        else:
            out[name] = trial.suggest_float(name, float(rng["low"]), float(rng["high"]), log=bool(rng.get("log")))
    return out


def _train_trial(trial: optuna.Trial, spec: SweepSpec, point: dict, sweep_dir: Path, key: str) -> dict:
    """Train the trial's agent in ``runs/.partial/KEY``, then move it to ``runs/KEY``."""
    from agents.train import RunConfig, train

    final, partial = sweep_dir / "runs" / key, sweep_dir / "runs" / ".partial" / key
    if final.is_dir() and incomplete_reason(final) is None and (final / "evaluation.json").is_file():
        return read_yaml(final / "evaluation.json", SweepError, "evaluation")  # renamed, but its worker died before telling
    shutil.rmtree(partial, ignore_errors=True)  # a killed attempt's leftovers: only one attempt holds the trial
    cfg = RunConfig(
        platform=point["platform"],
        algo=point["algo"],
        scenario=point["scenario"],
        objective=point["objective"],
        seed=int(point["seed"]),
        timesteps=spec.timesteps,
        **({"eval_seeds": list(spec.eval_seeds)} if spec.eval_seeds else {}),
        eval_scenario=spec.eval_scenario,
        hyperparam_overrides=_suggested_hyperparams(trial, spec, point["algo"]),
        threads=1,  # one trial per worker, one worker per core
    )

    def prune(steps: int, mean_reward: float) -> None:
        trial.report(mean_reward, steps)
        if spec.search is not None and trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"validation reward {mean_reward:.3f} at {steps} steps")

    try:
        report = train(cfg, partial, hyperparams_path=spec.hyperparams, progress=False, force=True, on_validation=prune)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return report.to_dict()


def write_spec(spec: SweepSpec, sweep_dir: str | os.PathLike) -> None:
    """Keep the resolved sweep beside its trials (``sweep.yaml``)."""
    import yaml

    with atomic_write(Path(sweep_dir) / "sweep.yaml") as f:
        yaml.safe_dump(spec.to_dict(), f, sort_keys=False)


def run_workers(
    spec: SweepSpec, sweep_dir: str | os.PathLike, storage_url: str | None, workers: int, log: Callable[[str], None] = print
) -> WorkerSummary:
    """Run ``workers`` worker processes on this machine (one trial per core by default) and
    merge what they did. Each process trains with one torch thread."""
    if workers == 1:
        return run_worker(spec, sweep_dir, storage_url, log)
    import multiprocessing as mp

    # create the study (tables, grid) here, once, so the workers only join it
    open_study(spec, storage_url or default_storage(sweep_dir))

    ctx = mp.get_context("spawn")  # no forked copy of a parent's threads or open storage
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_process, args=(spec, str(sweep_dir), storage_url, i, queue)) for i in range(workers)]
    for p in procs:
        p.start()
    summary, done = WorkerSummary(), set()
    try:
        while len(done) < workers:
            try:
                kind, payload = queue.get(timeout=1.0)
            except queues.Empty:  # a worker killed outside Python (SIGKILL, OOM) never says it is done
                for i, p in enumerate(procs):
                    if p.exitcode is not None and i not in done and p.exitcode != 0:
                        done.add(i)
                        summary.failed.append(f"worker {i}: exited with code {p.exitcode}")
                continue
            if kind == "log":
                log(payload)
            else:
                index, result = payload
                done.add(index)
                for name in ("completed", "pruned", "failed"):
                    getattr(summary, name).extend(result.get(name, []))
    finally:
        for i, p in enumerate(procs):
            if i in done:  # it said it is done: let it exit on its own (a SIGTERM now would land in its atexit hooks)
                p.join(timeout=60)
            if p.is_alive():
                p.terminate()  # SIGTERM: each marks its trial failed and queues it again
            p.join()
    return summary


def _worker_process(spec: SweepSpec, sweep_dir: str, storage_url: str | None, index: int, queue) -> None:
    """One worker process of :func:`run_workers`: its log lines and summary go to ``queue``."""
    import signal

    from dnn.errors import Terminated

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    result: dict[str, list[str]] = {}
    try:
        s = run_worker(spec, sweep_dir, storage_url, lambda line: queue.put(("log", f"[worker {index}] {line}")))
        result = asdict(s)
    except UserError as exc:
        queue.put(("log", f"[worker {index}] error: {exc}"))
        result = {"failed": [f"worker {index}: {exc}"]}
    except (KeyboardInterrupt, Terminated):
        queue.put(("log", f"[worker {index}] stopped; its trial goes back to the queue"))
    except Exception as exc:  # a bug: say so, and count the worker as failed
        import traceback

        queue.put(("log", f"[worker {index}] crashed:\n{traceback.format_exc()}"))
        result = {"failed": [f"worker {index}: {type(exc).__name__}: {exc}"]}
    finally:
        queue.put(("done", (index, result)))


def completed_evaluations(spec: SweepSpec, storage_url: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(grid point, evaluation) of every completed trial of the sweep's study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=spec.name, storage=_storage(storage_url, spec))
    except KeyError:
        raise SweepError(f"--storage {storage_url}: has no study '{spec.name}' (has the sweep run?)") from None
    return [
        (t.user_attrs[GRID_ATTR], t.user_attrs[EVALUATION_ATTR])
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if EVALUATION_ATTR in t.user_attrs
    ]


def load_written_spec(sweep_dir: str | os.PathLike) -> SweepSpec:
    """The sweep a folder holds (its ``sweep.yaml``, as :func:`write_spec` wrote it)."""
    p = Path(sweep_dir) / "sweep.yaml"
    if not p.is_file():
        raise SweepError(f"{sweep_dir}: no sweep.yaml (not a folder made by dynscale sweep)")
    d = read_yaml(p, SweepError, "sweep")
    try:
        search = Search(**d["search"]) if d.get("search") else None
        return SweepSpec(**{**d, "metric": Metric(**d["metric"]), "search": search})
    except (TypeError, KeyError) as exc:
        raise SweepError(f"{p}: not a sweep written by dynscale sweep ({exc})") from None
