"""Small MuJoCo tasks for preference-based RL, registered with Gymnasium on import."""

from __future__ import annotations

from typing import Final

import gymnasium

ENV_IDS: Final[tuple[str, ...]] = ("prefrl/PointMass-v0", "prefrl/PointMassFall-v0")
"""Gymnasium ids registered by importing this package."""

# id -> (entry point, episode limit in steps).
_SPECS: Final[dict[str, tuple[str, int]]] = {
    "prefrl/PointMass-v0": ("prefrl_envs.point_mass:PointMassEnv", 100),
    "prefrl/PointMassFall-v0": ("prefrl_envs.point_mass:PointMassFallEnv", 200),
}


def register_envs() -> None:
    """Register every id in ENV_IDS with Gymnasium, skipping ids already registered."""
    for env_id in ENV_IDS:
        # gymnasium.register warns on overriding an id; re-imports and reloads must stay quiet.
        if env_id in gymnasium.registry:
            continue
        entry_point, max_episode_steps = _SPECS[env_id]
        gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)


register_envs()

__all__ = ["ENV_IDS", "register_envs"]
