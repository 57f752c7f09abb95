"""A trained policy as numpy arrays: what the board runs (no torch, no stable-baselines3).

File format: ``NAME.npz`` holds ``layer{i}_w`` (out x in) and ``layer{i}_b`` for each linear
layer; ``NAME.json`` beside it holds the metadata: ``format``, ``algo``, ``platform``,
``activations`` (one per hidden layer: ``tanh``, ``relu`` or ``identity``), ``observation``
(:class:`envs.observation.ObservationSpec` fields and ``names``), ``actions`` (the configuration
of every action index, in order) and ``masked`` (whether masks apply at decision time).
The decision is ``argmax`` of the last layer's output (logits or Q-values), over available
actions when a mask is given: the same action as SB3's deterministic ``predict``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from agents.controllers import Controller

POLICY_FORMAT = "dynscale-numpy-policy"
_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0), "identity": lambda x: x}


class PolicyFileError(ValueError):
    """A policy file that cannot be used; the message names the file and what is wrong."""


def policy_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(``.npz``, ``.json``) of a policy given either path (or the stem)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


class NumpyPolicy(Controller):
    """Loads an exported policy and decides with numpy only.

    :param path: the ``.npz`` (or ``.json``, or their common stem)
    """

    name = "policy"

    def __init__(self, path: str | os.PathLike) -> None:
        npz, meta_path = policy_paths(path)
        for f in (npz, meta_path):
            if not f.is_file():
                raise PolicyFileError(f"{f}: no such policy file (a policy is NAME.npz + NAME.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise PolicyFileError(f"{meta_path}: not valid JSON ({exc})") from exc
        if meta.get("format") != POLICY_FORMAT:
            raise PolicyFileError(f"{meta_path}: field 'format' is not {POLICY_FORMAT!r}")
        for key in ("platform", "activations", "observation", "actions"):
            if key not in meta:
                raise PolicyFileError(f"{meta_path}: field {key!r} missing")
        try:
            arrays = dict(np.load(npz))
        except (OSError, ValueError) as exc:
            raise PolicyFileError(f"{npz}: not a readable .npz ({exc})") from exc
        n_layers = len(meta["activations"]) + 1
        self.weights, self.biases = [], []
        for i in range(n_layers):
            for kind in ("w", "b"):
                if f"layer{i}_{kind}" not in arrays:
                    raise PolicyFileError(
                        f"{npz}: array 'layer{i}_{kind}' missing ({n_layers} layers expected from {meta_path.name})"
                    )
            self.weights.append(arrays[f"layer{i}_w"].astype(np.float32))
            self.biases.append(arrays[f"layer{i}_b"].astype(np.float32))
        for i in range(1, n_layers):
            if self.weights[i].shape[1] != self.weights[i - 1].shape[0]:
                raise PolicyFileError(
                    f"{npz}: layer{i}_w has {self.weights[i].shape[1]} inputs, layer{i - 1} gives {self.weights[i - 1].shape[0]}"
                )
        unknown = [a for a in meta["activations"] if a not in _ACTIVATIONS]
        if unknown:
            raise PolicyFileError(f"{meta_path}: unknown activation {unknown[0]!r}; valid: {', '.join(_ACTIVATIONS)}")
        self.activations = [_ACTIVATIONS[a] for a in meta["activations"]]
        self.meta = meta
        self.platform = meta["platform"]
        self.observation_names = tuple(meta["observation"]["names"])
        if self.weights[0].shape[1] != len(self.observation_names):
            raise PolicyFileError(
                f"{npz}: layer0_w takes {self.weights[0].shape[1]} inputs, the observation has {len(self.observation_names)}"
            )
        if self.weights[-1].shape[0] != len(meta["actions"]):
            raise PolicyFileError(
                f"{npz}: the last layer has {self.weights[-1].shape[0]} outputs for {len(meta['actions'])} actions"
            )
        self.name = meta.get("name", "policy")

    def check_compatible(self, platform: str, observation_names: tuple[str, ...], actions: list) -> None:
        """Raise :class:`PolicyFileError` unless the policy was trained for this platform's spaces."""
        if platform != self.platform:
            raise PolicyFileError(f"policy was trained for platform {self.platform!r}, not {platform!r}")
        if tuple(observation_names) != self.observation_names:
            raise PolicyFileError(
                f"policy observation {list(self.observation_names)} differs from the platform's {list(observation_names)}"
            )
        if [list(a) for a in actions] != [list(a) for a in self.meta["actions"]]:
            raise PolicyFileError(f"policy action order differs from platform {platform!r}'s configurations")

    def scores(self, observation: np.ndarray) -> np.ndarray:
        """Output of the network (logits or Q-values) for one observation."""
        x = np.asarray(observation, dtype=np.float32)
        for w, b, act in zip(self.weights, self.biases, self.activations):
            x = act(w @ x + b)
        return self.weights[-1] @ x + self.biases[-1]

    def act(self, observation: np.ndarray, mask: np.ndarray | None = None, request: dict | None = None) -> int:
        s = self.scores(observation)
        if mask is not None and self.meta.get("masked", False):
            s = np.where(mask, s, -np.inf)
        return int(np.argmax(s))


def load_policy(path: str | os.PathLike, model, observation_names: tuple[str, ...]) -> NumpyPolicy:
    """An exported policy (a ``.npz``/``.json`` or a run folder holding ``policy.npz``), checked
    against a platform model's name and action order and the observation's names.

    :param model: the :class:`hwmodels.model.PlatformModel` the policy will decide for
    :param observation_names: names of the observation vector it will be given
    """
    p = Path(path)
    if p.is_dir():
        p = p / "policy.npz"
        if not p.is_file():
            raise PolicyFileError(f"{path}: a run folder holds policy.npz; none there (dynscale export RUN_DIR)")
    policy = NumpyPolicy(policy_paths(p)[0])
    actions = [[c.groups, c.unit, c.cores, c.freq_mhz] for c in (model.space.decode(i) for i in range(len(model.space)))]
    policy.check_compatible(model.spec.name, observation_names, actions)
    return policy
