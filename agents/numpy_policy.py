"""A trained policy as numpy arrays: what the board runs (no torch, no stable-baselines3).

File format: ``NAME.npz`` holds ``layer{i}_w`` (out x in) and ``layer{i}_b`` for each linear
layer; ``NAME.json`` beside it describes everything that shapes the policy's inputs and
outputs: ``format``, ``name``, ``algo``, ``platform`` (name) and ``platform_digest`` (hash of the
profile it was trained on), ``activations`` (one per hidden layer: ``tanh``, ``relu`` or
``identity``), ``observation`` (the full :class:`envs.observation.ObservationSpec` and the
feature ``names``), ``actions`` (the configuration of every action index, in order),
``masked`` (whether masks apply at decision time), ``reward`` (the objective's weights it was
trained for) and ``dnn_profile``.

The policy builds its observations from its own stored spec, never from the board's: a board
re-profiled after training gives the policy the inputs it was trained on. The decision is
``argmax`` of the last layer's output (logits or Q-values), over available actions when the
policy was trained with masks: the same action as SB3's deterministic ``predict``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from agents.controllers import Controller
from dnn.errors import UserError
from dnn.fileio import incomplete_reason, read_json_document
from envs.observation import ObservationBuilder, ObservationSpec, ObservationSpecError
from envs.step import Request

POLICY_FORMAT = "dynscale-numpy-policy"
_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0), "identity": lambda x: x}


class PolicyFileError(UserError, ValueError):
    """A policy file that cannot be used; the message names the file and what is wrong."""


def policy_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(``.npz``, ``.json``) of a policy given either path, their stem, or a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "policy"
    stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def actions_of(space) -> list[list]:
    """The action list as a policy file stores it: ``[groups, unit, cores, freq_mhz]`` per action."""
    return [[c.groups, c.unit, c.cores, c.freq_mhz] for c in (space.decode(i) for i in range(len(space)))]


class NumpyPolicy(Controller):
    """Loads an exported policy and decides with numpy only.

    :param path: the ``.npz`` (or ``.json``, their common stem, or a run folder)
    """

    name = "policy"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path, meta_path = policy_paths(path)
        for f in (self.path, meta_path):
            if not f.is_file():
                raise PolicyFileError(f"{f}: no such policy file (a policy is NAME.npz + NAME.json; dynscale export RUN_DIR)")
        self.meta = meta = _read_meta(meta_path)
        self.weights, self.biases = _read_layers(self.path, len(meta["activations"]) + 1, meta_path.name)
        self.activations = [_ACTIVATIONS[a] for a in meta["activations"]]
        try:
            self.obs_spec = ObservationSpec.from_dict(meta["observation"])
        except ObservationSpecError as exc:
            raise PolicyFileError(f"{meta_path}: field 'observation': {exc}") from None
        self.builder = ObservationBuilder(self.obs_spec)
        self.observation_names = self.builder.names
        stored = tuple(meta["observation"].get("names", self.observation_names))
        if stored != self.observation_names:
            raise PolicyFileError(f"{meta_path}: observation names {list(stored)} do not follow from its spec")
        if self.weights[0].shape[1] != len(self.observation_names):
            raise PolicyFileError(
                f"{self.path}: layer0_w takes {self.weights[0].shape[1]} inputs, the observation has {len(self.observation_names)}"
            )
        if self.weights[-1].shape[0] != len(meta["actions"]):
            raise PolicyFileError(
                f"{self.path}: the last layer has {self.weights[-1].shape[0]} outputs for {len(meta['actions'])} actions"
            )
        self.platform = meta["platform"]
        self.platform_digest = meta.get("platform_digest", "")
        self.masked = bool(meta.get("masked", False))
        self.name = meta.get("name", "policy")

    def check_compatible(self, model) -> None:
        """Raise :class:`PolicyFileError` (naming this file and what differs) unless the policy's
        platform, observation structure and action order are those of ``model``; its scales may
        differ (a re-profiled board): the policy's own are used.

        :param model: the :class:`hwmodels.model.PlatformModel` it will decide for
        """
        where = f"{self.path}: trained for platform {self.platform!r}"
        if model.spec.name != self.platform:
            raise PolicyFileError(f"{where}, not {model.spec.name!r} ({model.spec.path})")
        board = ObservationSpec.for_model(model).structure()
        for key, value in self.obs_spec.structure().items():
            if board[key] != value:
                raise PolicyFileError(f"{where}: observation field {key!r} is {value}, the board's profile has {board[key]}")
        actions = actions_of(model.space)
        stored = [list(a) for a in self.meta["actions"]]
        if stored != actions:
            i = next((j for j, (x, y) in enumerate(zip(stored, actions)) if x != y), min(len(stored), len(actions)))
            raise PolicyFileError(
                f"{where}: action order differs from the board's {len(actions)} configurations "
                f"(first at action {i}: policy {stored[i] if i < len(stored) else 'none'}, board {actions[i] if i < len(actions) else 'none'})"
            )

    def profile_note(self, model) -> str | None:
        """A line saying the board's profile is not the one the policy was trained on, if so (and
        where the policy's tick, which its ``tick_free`` is read on, is not the board's)."""
        notes = []
        if self.platform_digest and model.spec.digest and self.platform_digest != model.spec.digest:
            notes.append(
                f"{self.path}: trained on another profile of {self.platform!r} (digest {self.platform_digest}, "
                f"this one {model.spec.digest}); its observations keep the scales it was trained with"
            )
        tick = self.builder.spec.tick_ms
        if tick and abs(tick - model.tick_ms) > 1e-9:
            board = f"a {model.tick_ms:g} ms tick" if model.tick_ms > 0 else "no tick grid"
            notes.append(f"{self.path}: its tick_free is read on a {tick:g} ms tick, and this profile has {board}")
        return "; ".join(notes) or None

    def observe(self, request: Request) -> np.ndarray:
        """The observation of ``request`` under the policy's own spec (the builder's array)."""
        return self.builder.build(request)

    def scores(self, observation: np.ndarray) -> np.ndarray:
        """Output of the network (logits or Q-values) for one observation."""
        x = np.asarray(observation, dtype=np.float32)
        for w, b, act in zip(self.weights, self.biases, self.activations):
            x = act(w @ x + b)
        return self.weights[-1] @ x + self.biases[-1]

    def decide(self, observation: np.ndarray, mask: np.ndarray | None = None) -> int:
        """The action for an observation vector (masked where the policy was trained with masks)."""
        s = self.scores(observation)
        if mask is not None and self.masked:
            s = np.where(mask, s, -np.inf)
        return int(np.argmax(s))

    def act(self, request: Request, mask: np.ndarray | None = None) -> int:
        return self.decide(self.observe(request), mask)


def _read_meta(meta_path: Path) -> dict:
    meta = read_json_document(
        meta_path, PolicyFileError, POLICY_FORMAT, ("platform", "activations", "observation", "actions"), "policy metadata"
    )
    unknown = [a for a in meta["activations"] if a not in _ACTIVATIONS]
    if unknown:
        raise PolicyFileError(f"{meta_path}: unknown activation {unknown[0]!r}; valid: {', '.join(_ACTIVATIONS)}")
    return meta


def _read_layers(npz: Path, n_layers: int, meta_name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    try:
        with np.load(npz) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise PolicyFileError(f"{npz}: not a readable .npz ({exc})") from None
    weights, biases = [], []
    for i in range(n_layers):
        for kind in ("w", "b"):
            if f"layer{i}_{kind}" not in arrays:
                raise PolicyFileError(f"{npz}: array 'layer{i}_{kind}' missing ({n_layers} layers expected from {meta_name})")
        weights.append(arrays[f"layer{i}_w"].astype(np.float32))
        biases.append(arrays[f"layer{i}_b"].astype(np.float32))
    for i in range(1, n_layers):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise PolicyFileError(
                f"{npz}: layer{i}_w has {weights[i].shape[1]} inputs, layer{i - 1} gives {weights[i - 1].shape[0]}"
            )
    return weights, biases


def check_run_complete(path: str | os.PathLike) -> None:
    """Refuse a policy of a run folder marked incomplete (failed, interrupted or still running).

    :param path: a run folder, or a policy file (its folder is checked)
    """
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    why = incomplete_reason(folder)
    if why is not None:
        raise PolicyFileError(f"{folder}: an incomplete run ({why}); train it again with --force")


def load_policy(path: str | os.PathLike, model) -> NumpyPolicy:
    """An exported policy (a ``.npz``/``.json``, or a run folder holding ``policy.npz``), checked
    against the platform model it will decide for.

    :param model: the :class:`hwmodels.model.PlatformModel` of the board or env
    """
    p = Path(path)
    if p.is_dir() and not (p / "policy.npz").is_file():
        raise PolicyFileError(f"{path}: a run folder holds policy.npz; none there (dynscale export RUN_DIR)")
    policy = NumpyPolicy(p)
    policy.check_compatible(model)
    return policy


def stored_reward(path: str | os.PathLike) -> dict | None:
    """The objective's weights a policy was trained for (its ``reward`` field), ``None`` if the
    file does not say.

    :param path: a policy file, its stem, or a run folder
    """
    for f in policy_paths(path):
        if not f.is_file():
            raise PolicyFileError(f"{f}: no such policy file (a policy is NAME.npz + NAME.json; dynscale export RUN_DIR)")
    meta_path = policy_paths(path)[1]
    reward = _read_meta(meta_path).get("reward")
    if reward is not None and not isinstance(reward, dict):
        raise PolicyFileError(f"{meta_path}: field 'reward' is not a mapping of weights")
    return reward
