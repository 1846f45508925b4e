"""Varied behaviour before the first queries: random-action warm-up (on-policy learners) and PEBBLE's
state-entropy pre-training reward (any learner; on-policy ones after their warm-up), also before the true reward
(`StateEntropyPretraining`, the control that tells the pre-trained policy's share of a gain from the labels')."""

from __future__ import annotations

import math

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from prefrl.core.data import TrajectoryBuffer
from prefrl.sb3.wrappers import LearnedRewardVecEnv, RewardFn, find_wrapper


def random_warmup(model: BaseAlgorithm, steps: int, seed: int) -> int:
    """Step `model`'s training env with uniformly random actions; returns the env steps taken."""
    env = model.get_env()
    space = env.action_space
    space.seed(seed)
    taken = 0
    for _ in range(math.ceil(steps / env.num_envs)):
        env.step(np.stack([space.sample() for _ in range(env.num_envs)]))
        taken += env.num_envs
    # SB3 reset the env before the callbacks started and has no public way to restart a rollout:
    # its next step must act on the observation after the warm-up, so it gets a fresh one.
    model._last_obs = env.reset()
    model._last_episode_starts = np.ones(env.num_envs, dtype=bool)
    return taken


class StateEntropyReward:
    """Intrinsic reward: distance from next_obs to its k-th nearest recorded state, over its running std."""

    def __init__(self, buffer: TrajectoryBuffer, k: int = 5, reference_size: int = 10_000):
        self.buffer, self.k, self.reference_size = buffer, k, reference_size
        self._count, self._mean, self._m2 = 0, 0.0, 0.0
        self._ref_episodes, self._ref = -1, None

    def _reference(self) -> torch.Tensor | None:
        """Recent recorded states, rebuilt only when an episode has closed since the last call."""
        if self._ref_episodes != len(self.buffer.episodes):
            self._ref_episodes = len(self.buffer.episodes)
            eps = list(self.buffer.iter_recent(self.reference_size))
            self._ref = torch.as_tensor(np.concatenate([e.next_obs for e in eps])[-self.reference_size :]) if eps else None
        return self._ref

    def __call__(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        ref = self._reference()
        if ref is None:
            return np.zeros(len(next_obs))
        k = min(self.k, len(ref))
        dist = torch.cdist(torch.as_tensor(next_obs, dtype=torch.float32), ref).kthvalue(k, dim=1).values.numpy()
        for d in dist:  # Welford running variance, so the scale stays stable as states spread out
            self._count += 1
            delta = d - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (d - self._mean)
        std = math.sqrt(self._m2 / self._count) if self._count > 1 else 1.0
        return dist / max(std, 1e-8)


def switch_reward(training_env: VecEnv, wrapper: LearnedRewardVecEnv, source: str | RewardFn) -> None:
    """End PEBBLE's pre-training: `wrapper` gives `source`'s rewards from now on, and reward normalization's
    statistics of the state-entropy reward are dropped rather than left to scale the new one. Nothing changes when
    `source` is already on."""
    if wrapper.relabel.source == source:
        return
    wrapper.set_reward_source(source)
    try:
        norm = find_wrapper(training_env, VecNormalize)
    except ValueError:
        return
    norm.ret_rms, norm.returns = RunningMeanStd(shape=()), np.zeros(norm.num_envs)


class StateEntropyPretraining(BaseCallback):
    """PEBBLE's pre-training before the env's own reward: the first `steps` env steps train on the state-entropy
    reward, then the learner gets the true reward, switched at the first rollout end at or past `steps`."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def _init_callback(self) -> None:
        self.wrapper: LearnedRewardVecEnv = find_wrapper(self.training_env, LearnedRewardVecEnv)
        if self.wrapper.buffer is None:
            raise ValueError("state-entropy pre-training needs a LearnedRewardVecEnv that records into a "
                             "TrajectoryBuffer (its states are the reward's reference)")

    def _on_training_start(self) -> None:
        if self.num_timesteps < self.steps:  # a run resumed after its pre-training goes on with the true reward
            self.wrapper.set_reward_source(StateEntropyReward(self.wrapper.buffer))

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.steps:
            switch_reward(self.training_env, self.wrapper, "true")
