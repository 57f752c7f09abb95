#!/usr/bin/env python3
"""Train an RL agent on a platform model, then compare it with the baselines.

    python train_agent.py --platform xu3|nano|PROFILE.yaml --algo ppo|maskable_ppo|a2c|dqn \\
        [--scenario NAME] [--timesteps N] [--n-envs K] [--seed S] [--hyperparams FILE] \\
        [--out DIR] [--tensorboard DIR]

A thin command line over ``agents.train``; ``dynscale train`` is the same command.
"""

import sys

from agents.cli import train_agent_main

if __name__ == "__main__":
    sys.exit(train_agent_main())
