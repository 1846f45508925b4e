"""prefrl: preference-based reinforcement learning on Gymnasium + Stable-Baselines3."""

import prefrl_envs  # noqa: F401  (registers the custom MuJoCo tasks as Gymnasium ids)

__version__ = "0.1.0"
