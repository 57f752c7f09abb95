"""Gymnasium environment of runtime DNN performance scaling; importing it registers the ids.

``dynscale/DynDNN-XU3-v0`` and ``dynscale/DynDNN-Nano-v0`` are the shipped boards;
``dynscale/DynDNN-v0`` takes any profile through ``platform=PATH``. Variants (scenario,
reward weights, episode length, noise) are keyword arguments of ``gymnasium.make``.
"""

ENV_IDS = {"xu3": "dynscale/DynDNN-XU3-v0", "nano": "dynscale/DynDNN-Nano-v0"}
GENERIC_ID = "dynscale/DynDNN-v0"


def env_id(platform: str) -> str:
    """The registered id of a shipped platform, or the generic id for a profile path."""
    return ENV_IDS.get(platform, GENERIC_ID)


def __getattr__(name: str):
    # the env (and gymnasium) load on first use: the live runtime shares envs' step, observation
    # and slow-down modules and runs on a board without gymnasium (a bundle, issue 15)
    if name == "DynDNNEnv":
        from envs.dyndnn_env import DynDNNEnv

        return DynDNNEnv
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


try:
    from gymnasium.envs.registration import register, registry
except ImportError:  # no gymnasium (a board's runtime): nothing to register with
    pass
else:
    for _platform, _id in ENV_IDS.items():
        if _id not in registry:
            register(id=_id, entry_point="envs.dyndnn_env:DynDNNEnv", kwargs={"platform": _platform}, max_episode_steps=None)
    if GENERIC_ID not in registry:
        register(id=GENERIC_ID, entry_point="envs.dyndnn_env:DynDNNEnv")

__all__ = ["ENV_IDS", "GENERIC_ID", "DynDNNEnv", "env_id"]
