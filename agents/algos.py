"""``ALGOS``: the one registry of RL algorithms (as in rl-baselines3-zoo).

Every place that needs an algorithm goes through it: building and loading models
(:mod:`agents.train`), the ``--algo`` choices, the hyperparameter file's name and the
evaluation callback (masked algorithms evaluate with masks). Classes are imported when first
used, so ``dynscale --help`` does not pay for importing stable-baselines3.
"""

from __future__ import annotations

import importlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"


@dataclass(frozen=True)
class Algo:
    """One algorithm of the registry.

    :param name: the ``--algo`` name (and ``hyperparams/NAME.yml``)
    :param module: the module that defines the class
    :param class_name: the SB3 class
    :param masked: decides with action masks (sb3-contrib's MaskablePPO)
    :param actor_critic: has an actor and a critic (a warm start can clone a controller into it)
    """

    name: str
    module: str
    class_name: str
    masked: bool = False
    actor_critic: bool = True

    @property
    def cls(self) -> type:
        """The stable-baselines3 (or sb3-contrib) class."""
        return getattr(importlib.import_module(self.module), self.class_name)

    @property
    def eval_callback(self) -> type:
        """The evaluation callback class that fits the algorithm (masked ones pass masks)."""
        if self.masked:
            from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

            return MaskableEvalCallback
        from stable_baselines3.common.callbacks import EvalCallback

        return EvalCallback

    @property
    def hyperparams_file(self) -> Path:
        """The shipped hyperparameter file of the algorithm."""
        return HYPERPARAMS_DIR / f"{self.name}.yml"

    def load(self, path: str | Path):
        """A saved model (``model.zip``) of this algorithm, on the CPU.

        :raises PolicyFileError: (one line, naming the file) when the file is not a model SB3 can
            load: truncated, empty, not a zip, or saved by another algorithm
        """
        from agents.numpy_policy import PolicyFileError

        try:
            return self.cls.load(path, device="cpu")
        except (zipfile.BadZipFile, AssertionError, KeyError, ValueError, RuntimeError, EOFError, OSError) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise PolicyFileError(f"{path}: not a {self.class_name} model SB3 can load ({why[:200]})") from None


ALGOS: dict[str, Algo] = {
    a.name: a
    for a in (
        Algo("ppo", "stable_baselines3", "PPO"),
        Algo("maskable_ppo", "sb3_contrib", "MaskablePPO", masked=True),
        Algo("a2c", "stable_baselines3", "A2C"),
        Algo("dqn", "stable_baselines3", "DQN", actor_critic=False),
    )
}
