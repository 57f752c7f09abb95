"""Export a trained SB3 policy to the numpy format of :mod:`agents.numpy_policy`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import nn

from agents.numpy_policy import POLICY_FORMAT, PolicyFileError, actions_of, policy_paths
from dnn.fileio import atomic_write, json_text

_ACT_NAMES = {nn.Tanh: "tanh", nn.ReLU: "relu"}


def _linear_stack(modules: list[nn.Module]) -> tuple[list[nn.Linear], list[str]]:
    """Linear layers and the activation after each (all but the last), from a flat module list."""
    linears, acts = [], []
    for m in modules:
        if isinstance(m, nn.Linear):
            if len(linears) > len(acts):
                acts.append("identity")
            linears.append(m)
        elif type(m) in _ACT_NAMES:
            if len(acts) >= len(linears):
                raise ValueError("two activations in a row: not a plain MLP")
            acts.append(_ACT_NAMES[type(m)])
        elif isinstance(m, (nn.Flatten, nn.Identity)):
            continue
        else:
            raise ValueError(f"cannot export layer {type(m).__name__}: only Linear, Tanh, ReLU MLPs are supported")
    return linears, acts


def policy_layers(model) -> tuple[list[nn.Linear], list[str], bool]:
    """The decision network of an SB3 model as (linear layers, hidden activations, masked)."""
    policy = model.policy
    if hasattr(policy, "q_net"):  # DQN
        mods = list(policy.q_net.q_net.modules())[1:]
        masked = False
    elif hasattr(policy, "mlp_extractor") and hasattr(policy, "action_net"):  # PPO, A2C, MaskablePPO
        if (
            not isinstance(policy.features_extractor, nn.Flatten)
            and type(policy.features_extractor).__name__ != "FlattenExtractor"
        ):
            raise ValueError(f"cannot export features extractor {type(policy.features_extractor).__name__}")
        mods = list(policy.mlp_extractor.policy_net.modules())[1:] + [policy.action_net]
        masked = type(model).__name__ == "MaskablePPO"
    else:
        raise ValueError(f"cannot export a {type(model).__name__} policy")
    mods = [m for m in mods if not isinstance(m, nn.Sequential)]
    linears, acts = _linear_stack(mods)
    return linears, acts[: len(linears) - 1], masked


def export_policy(model, env, out: str | os.PathLike, name: str = "policy") -> tuple[Path, Path]:
    """Write ``out``.npz and ``out``.json for the SB3 ``model`` trained on ``env`` (a DynDNNEnv).

    :return: the two paths written
    """
    from envs.dyndnn_env import DynDNNEnv

    if not isinstance(env, DynDNNEnv):
        raise TypeError("export_policy needs the DynDNNEnv the model was trained on")
    linears, acts, masked = policy_layers(model)
    inputs, size = linears[0].in_features, len(env.observation_names)
    if inputs != size:  # a run trained before the env's observation grew (a feature added since)
        raise PolicyFileError(
            f"the policy takes {inputs} inputs and the env observes {size} ({', '.join(env.observation_names[inputs:])} "
            "added since it was trained?): train it again"
            if inputs < size
            else f"the policy takes {inputs} inputs and the env observes {size}: not the env it was trained on"
        )
    npz, meta_path = policy_paths(out)
    arrays = {}
    for i, lin in enumerate(linears):
        arrays[f"layer{i}_w"] = lin.weight.detach().cpu().numpy().astype(np.float32)
        arrays[f"layer{i}_b"] = lin.bias.detach().cpu().numpy().astype(np.float32)
    meta = {
        "format": POLICY_FORMAT,
        "name": name,
        "algo": type(model).__name__,
        "platform": env.model.spec.name,
        "platform_digest": env.model.spec.digest,
        "activations": acts,
        "masked": masked,
        "observation": {**env.obs_spec.to_dict(), "names": list(env.observation_names)},
        "actions": actions_of(env.space),
        "reward": env.reward_config.to_dict(),
        "dnn_profile": env.model.dnn.source,
    }
    with atomic_write(npz, "wb") as f:
        np.savez(f, **arrays)
    with atomic_write(meta_path) as f:
        f.write(json_text(meta))
    return npz, meta_path
