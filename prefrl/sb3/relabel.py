"""Off-policy learners keep old transitions: after every reward update their stored rewards are recomputed."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from prefrl.core.spaces import flatten_batch
from prefrl.reward.model import RewardModel

CHUNK = 65_536


def check_relabellable(model: BaseAlgorithm) -> None:
    """Refuse replay buffers whose rewards cannot be recomputed."""
    rb = getattr(model, "replay_buffer", None)
    if rb is not None and rb.optimize_memory_usage:
        raise ValueError("replay buffers with optimize_memory_usage=True cannot be relabelled; set it to False")


@torch.no_grad()
def relabel_replay_buffer(model: BaseAlgorithm, reward_model: RewardModel, observation_space: gym_spaces.Space,
                          action_space: gym_spaces.Space) -> int:
    """Recompute every stored reward of `model`'s replay buffer (if it has one); returns transitions relabelled."""
    rb = getattr(model, "replay_buffer", None)
    if rb is None:
        return 0
    size = rb.buffer_size if rb.full else rb.pos
    if size == 0:
        return 0
    n_envs = rb.n_envs

    def flat(store, space):
        if isinstance(store, dict):
            return flatten_batch(space, {k: v[:size].reshape(size * n_envs, *v.shape[2:]) for k, v in store.items()})
        return flatten_batch(space, store[:size].reshape(size * n_envs, *store.shape[2:]))

    obs, next_obs = flat(rb.observations, observation_space), flat(rb.next_observations, observation_space)
    acts = rb.actions[:size].reshape(size * n_envs, *rb.actions.shape[2:])
    if isinstance(action_space, gym_spaces.Box):  # SAC stores actions squashed to [-1, 1]
        acts = model.policy.unscale_action(acts)
    acts = flatten_batch(action_space, acts)  # e.g. DQN stores Discrete actions as indices
    rewards = np.concatenate([reward_model.predict(obs[s : s + CHUNK], acts[s : s + CHUNK], next_obs[s : s + CHUNK])
                              for s in range(0, len(obs), CHUNK)])
    rb.rewards[:size] = rewards.reshape(size, n_envs).astype(rb.rewards.dtype)
    return size * n_envs
