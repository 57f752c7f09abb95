"""Train an SB3 agent on a platform model, evaluate it against the baselines, write a run folder.

Hyperparameters come from ``agents/hyperparams/<algo>.yml`` (rl-baselines3-zoo format: one
entry per env id with ``n_timesteps``, ``n_envs``, ``policy``, ``policy_kwargs``, schedules such
as ``lin_3e-4``, and ``env_kwargs``), or from a file given with ``--hyperparams``.

Seeds: training envs draw episodes from ``seed`` onwards (each env its own stream), the
evaluation callback uses the validation seeds ``VALIDATION_SEEDS`` and the final comparison the
test seeds ``TEST_SEEDS``; the three never overlap. Scenarios: agents train on the
domain-randomised ``train`` preset; the final comparison runs on ``eval_scenario`` (default:
the ``default`` evaluation preset).

The run folder holds ``model.zip`` (the best model on the validation seeds), ``config.yaml``
(everything that describes the run, resolved), ``policy.npz`` + ``policy.json`` (the exported
policy for the board), ``evaluation.json`` and ``evaluation.txt`` (the comparison), ``tradeoff.png`` and
``episode.png``, and ``logs/progress.csv`` (SB3's training log; TensorBoard with
``--tensorboard DIR``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agents.algos import ALGOS
from dnn.errors import Terminated, UsageError, UserError
from dnn.fileio import atomic_write, incomplete_reason, json_text, mark_complete, mark_incomplete, read_yaml
from dnn.progress import progress as progress_bar

VALIDATION_SEEDS = list(range(500, 505))
TEST_SEEDS = list(range(1000, 1020))
TRAIN_SEED_OFFSET = 10_000_000
#: the domain-randomised preset agents train on; its runs are evaluated on ``default``
TRAINING_SCENARIO = "train"

if TYPE_CHECKING:
    from agents.report import Report


class HyperparamsError(UserError, ValueError):
    """A hyperparameter file or entry that cannot be used (the message names file and key)."""


@dataclass
class RunConfig:
    """Everything that describes a training run (written resolved to ``config.yaml``)."""

    platform: str
    algo: str = "ppo"
    env_id: str = ""
    scenario: str | None = None
    objective: str | None = None
    min_accuracy: float | None = None
    timesteps: int | None = None
    n_envs: int | None = None
    seed: int = 0
    hyperparams_file: str = ""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_seeds: list[int] = field(default_factory=lambda: list(TEST_SEEDS))
    eval_scenario: str | None = None
    pretrain: dict[str, Any] | None = None
    eval_freq: int = 20_000
    #: hyperparameters that replace the file's (a sweep's sampled values), applied by :func:`resolve`
    hyperparam_overrides: dict[str, Any] = field(default_factory=dict)
    #: torch threads for the network updates and processes for the warm start's teacher (default:
    #: one per core; a sweep runs one per trial).
    #: A run is reproducible for a given seed and thread count.
    threads: int | None = None


def load_hyperparams(algo: str, env_id: str, path: str | os.PathLike | None = None) -> tuple[dict, str]:
    """The hyperparameter entry for ``env_id`` (rl-zoo format) and the file it came from."""
    if algo not in ALGOS:
        raise HyperparamsError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    p = Path(path) if path else ALGOS[algo].hyperparams_file
    doc = read_yaml(p, HyperparamsError, "hyperparameter file")
    if not isinstance(doc, dict) or env_id not in doc:
        raise HyperparamsError(
            f"{p}: no entry for env id {env_id!r}; entries: {', '.join(sorted(k for k in doc or {} if not str(k).startswith('_')))}"
        )
    entry = dict(doc[env_id])
    for key in ("n_timesteps", "policy"):
        if key not in entry:
            raise HyperparamsError(f"{p}: {env_id}.{key} is missing")
    return entry, str(p)


def _schedule(key: str, value: Any, where: str) -> Any:
    """A hyperparameter's value: rl-zoo schedules (``lin_3e-4`` is a linear decay from 3e-4 to
    0 over training) become functions; any other string is refused (none of the algorithms of
    :data:`agents.algos.ALGOS` takes one)."""
    if isinstance(value, str):
        try:
            if not value.startswith("lin_"):
                raise ValueError
            start = float(value[4:])
        except ValueError:
            raise HyperparamsError(f"{where}.{key}: {value!r} is not a number or lin_<number>") from None
        return lambda progress_remaining: progress_remaining * start
    return value


def _policy_kwargs(value: Any, where: str) -> dict:
    """rl-zoo writes policy_kwargs as a Python expression string such as ``dict(net_arch=[64, 64])``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    import torch

    try:
        out = eval(value, {"__builtins__": {}}, {"dict": dict, "nn": torch.nn})
    except (SyntaxError, NameError, TypeError, ValueError, AttributeError) as exc:
        raise HyperparamsError(f"{where}: policy_kwargs {value!r} is not a dict(...) expression ({exc})") from None
    if not isinstance(out, dict):
        raise HyperparamsError(f"{where}: policy_kwargs must evaluate to a dict")
    return out


def resolve(cfg: RunConfig, hyperparams_path: str | None = None) -> RunConfig:
    """Fill ``cfg`` from the hyperparameter file: env id, timesteps, n_envs, env kwargs."""
    from envs import env_id

    cfg.env_id = cfg.env_id or env_id(cfg.platform)
    entry, cfg.hyperparams_file = load_hyperparams(cfg.algo, cfg.env_id, hyperparams_path)
    where = f"{cfg.hyperparams_file}: {cfg.env_id}"
    for key in cfg.hyperparam_overrides:
        if key in ("n_timesteps", "n_envs", "env_kwargs", "pretrain", "policy"):
            raise HyperparamsError(f"hyperparameter override {key!r}: not tunable this way (use the run's own fields)")
    entry.update(cfg.hyperparam_overrides)
    n_timesteps, n_envs = entry.pop("n_timesteps"), entry.pop("n_envs", 1)
    cfg.timesteps = _count(
        cfg.timesteps if cfg.timesteps is not None else n_timesteps,
        "--timesteps" if cfg.timesteps is not None else f"{where}.n_timesteps",
    )
    cfg.n_envs = _count(
        cfg.n_envs if cfg.n_envs is not None else n_envs, "--n-envs" if cfg.n_envs is not None else f"{where}.n_envs"
    )
    cfg.pretrain = _pretrain_entry(cfg, entry.pop("pretrain", None), where)
    cfg.threads = _count(cfg.threads if cfg.threads is not None else (os.cpu_count() or 1), "--threads")
    env_kwargs = dict(entry.pop("env_kwargs", None) or {})
    if cfg.scenario:
        env_kwargs["scenario"] = cfg.scenario
    cfg.scenario = env_kwargs.get("scenario", "default")
    # the training preset randomises everything; the final comparison runs on an evaluation set
    cfg.eval_scenario = cfg.eval_scenario or ("default" if cfg.scenario == TRAINING_SCENARIO else cfg.scenario)
    env_kwargs["reward"] = _resolve_objective(cfg, env_kwargs.pop("objective", None)).to_dict()
    cfg.objective = env_kwargs["reward"]["objective"]
    cfg.env_kwargs = env_kwargs
    cfg.hyperparams = entry
    return cfg


def _pretrain_entry(cfg: RunConfig, entry: Any, where: str) -> dict | None:
    """The hyperparameter file's ``pretrain:`` (a warm start by behaviour cloning), checked;
    ``None`` when absent or switched off (``cfg.pretrain == {}``: ``--no-pretrain``)."""
    from dataclasses import asdict, fields

    from agents.controllers import CONTROLLERS
    from agents.pretrain import PretrainConfig

    if entry is None or cfg.pretrain == {}:
        return None
    names = [f.name for f in fields(PretrainConfig)]
    if not isinstance(entry, dict) or set(entry) - set(names):
        raise HyperparamsError(f"{where}.pretrain: takes {', '.join(names)}, got {entry!r}")
    if not ALGOS[cfg.algo].actor_critic:
        raise HyperparamsError(f"{where}.pretrain: {cfg.algo} has no actor to clone into; drop pretrain or use ppo, a2c")
    teacher = entry.get("teacher", PretrainConfig.teacher)
    if teacher not in CONTROLLERS or CONTROLLERS[teacher].simulation_only:
        live = [n for n, c in CONTROLLERS.items() if not c.simulation_only]
        raise HyperparamsError(f"{where}.pretrain.teacher: {teacher!r} is none of {', '.join(live)}")
    out = asdict(PretrainConfig(**entry))
    for key in ("timesteps", "epochs", "batch_size"):
        out[key] = _count(out[key], f"{where}.pretrain.{key}")
    if not isinstance(out["learning_rate"], (int, float)) or not out["learning_rate"] > 0:
        raise HyperparamsError(f"{where}.pretrain.learning_rate: must be a number > 0, got {out['learning_rate']!r}")
    if not isinstance(out["temperature"], (int, float)) or not out["temperature"] >= 0:
        raise HyperparamsError(f"{where}.pretrain.temperature: must be a number >= 0, got {out['temperature']!r}")
    if out["temperature"] > 0 and teacher != "model-predictive":
        raise HyperparamsError(
            f"{where}.pretrain.temperature: > 0 needs a teacher that scores every configuration (model-predictive)"
        )
    return out


def _resolve_objective(cfg: RunConfig, from_hyperparams: str | None):
    """The run's reward: ``--objective`` (else the hyperparameter file's ``env_kwargs.objective``,
    else the default), with ``--min-accuracy`` applied; stored resolved so the run never depends
    on a later edit of the objectives file."""
    from dnn.profile import load_dnn_profile
    from envs.reward import load_objective

    overrides = {} if cfg.min_accuracy is None else {"min_accuracy": cfg.min_accuracy}
    return load_objective(cfg.objective or from_hyperparams, load_dnn_profile().column("top1").tolist(), **overrides)


def make_env_kwargs(cfg: RunConfig) -> dict:
    """Keyword arguments of :class:`envs.DynDNNEnv` for this run (picklable)."""
    return {"platform": cfg.platform, **cfg.env_kwargs}


def build_model(cfg: RunConfig, tensorboard: str | None = None, vec_env_cls: type | None = None):
    """The SB3 algorithm object for ``cfg`` on a vectorised env.

    :param vec_env_cls: SB3's ``DummyVecEnv`` (default: every env in this process) or
        ``SubprocVecEnv`` (one process per env)
    """
    from stable_baselines3.common.env_util import make_vec_env

    from envs import DynDNNEnv

    where = f"{cfg.hyperparams_file}: {cfg.env_id}"
    hp = dict(cfg.hyperparams)
    policy = hp.pop("policy")
    kwargs = {k: _schedule(k, v, where) for k, v in hp.items() if k != "policy_kwargs"}
    kwargs["policy_kwargs"] = _policy_kwargs(hp.get("policy_kwargs"), where)
    try:
        vec = make_vec_env(
            DynDNNEnv,
            n_envs=cfg.n_envs,
            seed=TRAIN_SEED_OFFSET + cfg.seed * 1000,
            env_kwargs=make_env_kwargs(cfg),
            vec_env_cls=vec_env_cls,
        )
    except TypeError as exc:
        raise HyperparamsError(f"{where}.env_kwargs: {exc}") from None
    cls = ALGOS[cfg.algo].cls
    try:
        return cls(policy, vec, seed=cfg.seed, verbose=0, tensorboard_log=tensorboard, device="cpu", **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise HyperparamsError(f"{where}: {' '.join(str(exc).split())}") from None


def _count(value: Any, where: str) -> int:
    """A count of steps or envs: a whole number >= 1 (zero is not "the default")."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HyperparamsError(f"{where}: must be a whole number >= 1, got {value!r}")
    return value


def train(
    cfg: RunConfig,
    out: str | os.PathLike,
    hyperparams_path: str | None = None,
    tensorboard: str | None = None,
    progress: bool = True,
    force: bool = False,
    on_validation: Callable[[int, float], None] | None = None,
) -> Report:
    """Train, keep the best model on the validation seeds, export, evaluate; return the report.

    :param cfg: the run (``platform`` and ``algo`` at least; the rest from the hyperparameters)
    :param out: the run folder
    :param progress: report progress on stderr (a bar on a terminal, lines in a log)
    :param force: replace an existing run folder (otherwise refused)
    :param on_validation: called after each evaluation on the validation seeds with (training
        steps, mean episode reward); an exception it raises stops training (a sweep's pruning)

    The run folder is marked incomplete (``INCOMPLETE``, saying why) from its creation until
    the evaluation is written; ``compare``, ``deploy`` and ``export`` refuse it meanwhile.
    """
    import torch

    cfg = resolve(cfg, hyperparams_path)
    # benchmarks/bench_training.py: 2 threads update the 256 x 256 networks 1.2-1.3x faster on 2 cores
    torch.set_num_threads(cfg.threads)
    run = Path(out)
    model = build_model(cfg, tensorboard)  # every hyperparameter checked before the folder exists
    _new_run_folder(run, force)
    try:
        report = _train_in(run, cfg, model, tensorboard, progress, on_validation)
    except BaseException as exc:
        mark_incomplete(run, f"training {_how_stopped(exc)} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        raise
    mark_complete(run)
    return report


def _how_stopped(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)"
    return f"failed ({type(exc).__name__}: {' '.join(str(exc).split()) or 'no message'})"


def _new_run_folder(run: Path, force: bool) -> None:
    """Create ``run`` empty, marked incomplete; an existing one is replaced only with ``force``."""
    if run.exists() and not run.is_dir():
        raise UsageError(f"--out {run}: is a file, not a run folder")
    if run.is_dir() and any(run.iterdir()):
        if not force:
            state = "an incomplete run" if incomplete_reason(run) else "a finished run"
            raise UsageError(f"--out {run}: holds {state}; pass --force to replace it, or choose another --out")
        shutil.rmtree(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {run}: cannot create the run folder ({exc.strerror})") from None
    mark_incomplete(run, f"training started {time.strftime('%Y-%m-%d %H:%M:%S')} (pid {os.getpid()}), not finished")


def _train_in(
    run: Path, cfg: RunConfig, model, tensorboard: str | None, progress: bool, on_validation: Callable[[int, float], None] | None
) -> Report:
    """Train ``model`` into the run folder, export, evaluate (see :func:`train`)."""
    from stable_baselines3.common.callbacks import CallbackList

    from agents.export import export_policy
    from envs import DynDNNEnv

    with atomic_write(run / "config.yaml") as f:
        yaml.safe_dump({k: v for k, v in cfg.__dict__.items()}, f, sort_keys=False)
    if tensorboard is None:
        # SB3's default logger would create an empty SB3-<date> folder in /tmp on every run
        from stable_baselines3.common.logger import configure

        model.set_logger(configure(str(run / "logs"), ["csv"]))
    from stable_baselines3.common.monitor import Monitor

    eval_env = Monitor(_seeded_eval_env(DynDNNEnv(**make_env_kwargs(cfg)), VALIDATION_SEEDS))
    callback = ALGOS[cfg.algo].eval_callback(
        eval_env,
        n_eval_episodes=len(VALIDATION_SEEDS),
        eval_freq=max(cfg.eval_freq // cfg.n_envs, 1),
        best_model_save_path=str(run / "best"),
        log_path=str(run / "eval_log"),
        deterministic=True,
        verbose=0,
        callback_after_eval=_validation_hook(on_validation) if on_validation else None,
    )
    t0 = time.perf_counter()
    cloned = _warm_start(cfg, model, progress) if cfg.pretrain else None
    model.learn(total_timesteps=cfg.timesteps, callback=CallbackList([callback, _progress_callback(cfg.timesteps, progress)]))
    train_s = time.perf_counter() - t0
    best = run / "best" / "best_model.zip"
    if best.is_file():
        model = type(model).load(best, device="cpu")
    model.save(run / "model.zip")
    env = DynDNNEnv(**make_env_kwargs(cfg))
    export_policy(model, env, run / "policy", name=f"{cfg.algo}-{env.model.spec.name}")
    from agents.compare import compare_run

    report = compare_run(run, cfg.platform, {**cfg.env_kwargs, "scenario": cfg.eval_scenario}, cfg.eval_seeds, progress=progress)
    report.training = {"seconds": train_s, "timesteps": cfg.timesteps, "algo": cfg.algo, "env_id": cfg.env_id, "pretrain": cloned}
    with atomic_write(run / "evaluation.json") as f:
        f.write(json_text(report.to_dict()))
    return report


def _warm_start(cfg: RunConfig, model, progress: bool) -> dict:
    """Clone the ``pretrain`` teacher into the policy (:mod:`agents.pretrain`); the teacher's
    episodes run in one process per torch thread (``cfg.threads``: every core by default)."""
    from agents.pretrain import PretrainConfig, clone, parallel_teacher_rollouts

    pc = PretrainConfig(**cfg.pretrain)
    gamma = float(cfg.hyperparams.get("gamma", 0.99))
    data = parallel_teacher_rollouts(
        make_env_kwargs(cfg), pc.teacher, pc.timesteps, cfg.seed, gamma, pc.temperature, cfg.threads, progress
    )
    return clone(model, data, pc, cfg.seed, ALGOS[cfg.algo].masked, progress)


def _validation_hook(on_validation: Callable[[int, float], None]):
    """An SB3 callback, run after each validation evaluation, that hands on its mean reward."""
    from stable_baselines3.common.callbacks import BaseCallback

    class AfterValidation(BaseCallback):
        def _on_step(self) -> bool:
            on_validation(self.num_timesteps, float(self.parent.last_mean_reward))
            return True

    return AfterValidation()


def _progress_callback(total: int, enabled: bool):
    """An SB3 callback that reports training steps through :func:`dnn.progress.progress`."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = progress_bar(total, "training", enabled, "step")
            self.seen = 0

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.seen)
            self.seen = self.num_timesteps
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Progress()


def _seeded_eval_env(env, seeds: list[int]):
    """Wrap ``env`` for the evaluation callback: resets cycle through ``seeds`` (held-out
    validation episodes), and the last step's ``is_success`` (which SB3's callback logs) is the
    episode's success rate over all its requests rather than that of its last request."""
    import gymnasium as gym

    class ValidationEpisodes(gym.Wrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self._k = 0
            self._met = self._n = 0

        def reset(self, *, seed=None, options=None):
            s = seeds[self._k % len(seeds)]
            self._k += 1
            self._met = self._n = 0
            return self.env.reset(seed=s, options=options)

        def step(self, action):
            obs, reward, term, trunc, info = self.env.step(action)
            self._met += bool(info["is_success"])
            self._n += 1
            if term or trunc:
                info = {**info, "is_success": self._met / self._n}
            return obs, reward, term, trunc, info

        def action_masks(self):
            return self.env.unwrapped.action_masks()

    return ValidationEpisodes(env)
