"""Environment side: swap the true reward for the learned one, keep the true one in `info`.

`LearnedRewardVecEnv` (an SB3 VecEnvWrapper) computes the learned reward with one batched
forward per vector step; `LearnedRewardWrapper` is the single-env Gymnasium version. Both record
transitions (and MuJoCo qpos/qvel, so clips can be rendered later without rendering every step)
into a TrajectoryBuffer, handle early termination and any episode length, and refuse NaN/inf. Both can switch
mid-run what the policy is paid (`set_reward_source`: the learned, the true or any reward function) and add RUNE's
exploration bonus to the learned reward (`set_exploration_bonus`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces as gym_spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from prefrl.core.data import TrajectoryBuffer
from prefrl.core.spaces import check_space, flatten_batch
from prefrl.reward.model import RewardModel
from prefrl.sb3.envs import check_env_id, make_vec_env  # noqa: F401  (their home since the sb3 package split)

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _batch_of_one(space: gym_spaces.Space, x: Any) -> Any:
    """Add a leading batch dimension to one element of `space` (dicts/tuples recursively)."""
    if isinstance(space, gym_spaces.Dict):
        return {k: _batch_of_one(s, x[k]) for k, s in space.spaces.items()}
    if isinstance(space, gym_spaces.Tuple):
        return tuple(_batch_of_one(s, x[i]) for i, s in enumerate(space.spaces))
    return np.asarray(x)[None]


def render_state(env: gym.Env) -> np.ndarray | None:
    """What a clip of this step is rendered from: qpos+qvel of a MuJoCo env, or the id of the
    current frame of an env wrapped in prefrl.clips.FrameRecorder; None for other envs."""
    data = getattr(env.unwrapped, "data", None)
    if data is not None and hasattr(data, "qpos"):
        return np.concatenate([data.qpos, data.qvel]).astype(np.float32)
    try:
        return np.array([env.get_wrapper_attr("frame_id")], dtype=np.float32)
    except AttributeError:
        return None


def find_wrapper(venv: VecEnv, cls: type) -> Any:
    """The first wrapper of type `cls` in a stack of VecEnvWrappers."""
    env = venv
    while True:
        if isinstance(env, cls):
            return env
        if not isinstance(env, VecEnvWrapper):
            raise ValueError(f"the training env has no {cls.__name__} in its wrapper stack ({type(venv).__name__})")
        env = env.venv


@dataclass
class UncertaintyBonus:
    """RUNE's exploration bonus (Liang et al. 2022): the policy's reward is the ensemble's mean reward plus
    beta_t times the std of its members' rewards, beta_t = beta (1 - decay)^t after t env steps. The members
    disagree where the labels have not told them apart, often behaviour no query has shown yet; the bonus fades
    as training goes on. The authors' PEBBLE setting is beta 0.05, decay 1e-5."""

    beta: float
    decay: float = 1e-5
    steps: int = 0
    """Env steps the bonus has been given so far (a resumed run starts it at the learner's step count)."""

    def __post_init__(self) -> None:
        number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)  # noqa: E731
        if not (number(self.beta) and np.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"exploration bonus weight {self.beta!r}: expected a finite number >= 0")
        if not (number(self.decay) and 0 <= self.decay < 1):
            raise ValueError(f"exploration bonus decay {self.decay!r}: expected a share in [0, 1)")

    @property
    def weight(self) -> float:
        """beta_t, the weight of the members' std now."""
        return self.beta * (1.0 - self.decay) ** self.steps

    def __call__(self, reward_model: RewardModel, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """The mean reward plus the weighted std of the members' rewards for a batch of flat transitions."""
        members = reward_model.predict_members(obs, acts, next_obs)
        rewards = members.mean(axis=0) + self.weight * members.std(axis=0)
        self.steps += len(rewards)
        return rewards


class _Relabeller:
    """The shared step logic of both wrappers: flatten, check, compute reward, record."""

    def __init__(
        self,
        observation_space: gym_spaces.Space,
        action_space: gym_spaces.Space,
        reward_model: RewardModel | None,
        buffer: TrajectoryBuffer | None,
    ):
        check_space(observation_space, "observation")
        check_space(action_space, "action")
        if reward_model is not None:
            reward_model.check_spaces(observation_space, action_space)
        self.observation_space, self.action_space = observation_space, action_space
        self.reward_model, self.buffer = reward_model, buffer
        # "learned" (default), "true" (the baseline: same path, true reward), or a callable override.
        self.source: str | RewardFn = "learned" if reward_model is not None else "true"
        self.bonus: UncertaintyBonus | None = None  # added to the learned reward where set

    def flatten_obs(self, obs: Any) -> np.ndarray:
        """Flatten a batch of observations and refuse NaN/inf in it."""
        flat = flatten_batch(self.observation_space, obs)
        if isinstance(obs, np.ndarray) and np.shares_memory(flat, obs):
            flat = flat.copy()  # an env may reuse its observation array; the buffer keeps what it saw
        if not np.all(np.isfinite(flat)):
            bad = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
            raise ValueError(f"env {bad} returned observation {flat[bad]} with NaN/inf: expected finite values")
        return flat

    def __call__(self, flat_prev, actions, flat_next, true_rewards, terminated, truncated, states=None) -> np.ndarray:
        """Rewards for one batch of flat transitions (one forward), recorded into the buffer."""
        true_rewards = np.asarray(true_rewards, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(true_rewards)):
            bad = np.flatnonzero(~np.isfinite(true_rewards))
            raise ValueError(f"env {int(bad[0])} returned reward {true_rewards[bad[0]]}: expected a finite number")
        flat_act = flatten_batch(self.action_space, actions)
        if self.source == "true":
            rewards = true_rewards
        elif callable(self.source):
            rewards = np.asarray(self.source(flat_prev, flat_act, flat_next), dtype=np.float64)
        elif self.bonus is not None:
            rewards = self.bonus(self.reward_model, flat_prev, flat_act, flat_next)
        else:
            rewards = self.reward_model.predict(flat_prev, flat_act, flat_next)
        if self.buffer is not None:
            self.buffer.add(flat_prev, flat_act, flat_next, true_rewards, terminated, truncated, states)
        return rewards


class _RewardControls:
    """What the policy is paid, switchable mid-run; shared by both wrappers (each holds a `_Relabeller`)."""

    relabel: _Relabeller

    def set_reward_source(self, source: str | RewardFn) -> None:
        """'learned', 'true', or a callable (obs, act, next_obs) -> rewards (e.g. an intrinsic reward)."""
        if source not in ("learned", "true") and not callable(source):
            raise ValueError(f"reward source {source!r} invalid: expected 'learned', 'true' or a callable")
        if source == "learned" and self.relabel.reward_model is None:
            raise ValueError("reward source 'learned' needs a reward model")
        self.relabel.source = source

    def set_exploration_bonus(self, bonus: UncertaintyBonus | None) -> None:
        """Add RUNE's bonus to the learned reward from now on (None: the learned reward alone)."""
        if bonus is not None and self.relabel.reward_model is None:
            raise ValueError("an exploration bonus on the learned reward needs a reward model")
        self.relabel.bonus = bonus


class LearnedRewardVecEnv(_RewardControls, VecEnvWrapper):
    """SB3 VecEnv wrapper: reward = learned ensemble's, info['true_reward'] = the env's own.

    Also sets info['learned_return'] at episode end (the learned reward summed over the episode),
    beside SB3 Monitor's info['episode'] which keeps the true return.
    """

    def __init__(
        self,
        venv: VecEnv,
        reward_model: RewardModel | None = None,
        buffer: TrajectoryBuffer | None = None,
        record_states: bool = True,
    ):
        super().__init__(venv)
        self.relabel = _Relabeller(venv.observation_space, venv.action_space, reward_model, buffer)
        # Reading qpos/qvel needs the env objects in this process (DummyVecEnv).
        self._envs = getattr(venv, "envs", None) if record_states else None
        if self._envs is not None and any(render_state(e) is None for e in self._envs):
            self._envs = None
        self._last_flat: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._states: np.ndarray | None = None
        self._learned_returns = np.zeros(self.num_envs)

    @property
    def reward_model(self) -> RewardModel | None:
        """The reward model in use (shared with the callback that trains it)."""
        return self.relabel.reward_model

    @property
    def buffer(self) -> TrajectoryBuffer | None:
        """Where transitions are recorded."""
        return self.relabel.buffer

    def reset(self):
        """Reset all envs; episodes in progress are recorded as cut off (truncated)."""
        obs = self.venv.reset()
        if self.relabel.buffer is not None:
            self.relabel.buffer.cut_open_episodes()
        self._last_flat = self.relabel.flatten_obs(obs)
        self._learned_returns[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions and the pre-step MuJoCo states, then step."""
        self._actions = actions
        if self._envs is not None and self.relabel.buffer is not None:
            self._states = np.stack([render_state(e) for e in self._envs])
        self.venv.step_async(actions)

    def step_wait(self):
        """One batched reward forward for all envs."""
        obs, true_rewards, dones, infos = self.venv.step_wait()
        truncated = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        terminated = dones & ~truncated
        flat_obs = self.relabel.flatten_obs(obs)
        flat_next = flat_obs
        if dones.any():  # SB3 auto-resets: the real last observation is in the info
            flat_next = flat_obs.copy()
            for i in np.flatnonzero(dones):
                term_obs = infos[i].get("terminal_observation")
                if term_obs is not None:
                    flat_next[i] = self.relabel.flatten_obs(_batch_of_one(self.observation_space, term_obs))[0]
        rewards = self.relabel(self._last_flat, self._actions, flat_next, true_rewards, terminated, truncated, self._states)
        self._learned_returns += rewards
        for i, info in enumerate(infos):
            info["true_reward"] = float(true_rewards[i])
            if dones[i] and self.relabel.source != "true":
                info["learned_return"] = float(self._learned_returns[i])
                self._learned_returns[i] = 0.0
        self._last_flat = flat_obs
        return obs, rewards.astype(np.float32), dones, infos


class LearnedRewardWrapper(_RewardControls, gym.Wrapper):
    """Gymnasium wrapper for a single env: reward = learned, info['true_reward'] = the env's own."""

    def __init__(self, env: gym.Env, reward_model: RewardModel | None, buffer: TrajectoryBuffer | None = None):
        super().__init__(env)
        if buffer is not None and buffer.n_envs != 1:
            raise ValueError(f"a single-env wrapper needs a TrajectoryBuffer with n_envs=1, got {buffer.n_envs}")
        self.relabel = _Relabeller(env.observation_space, env.action_space, reward_model, buffer)
        # Decided once: a non-MuJoCo env without a FrameRecorder has nothing to record per step.
        self._record_states = buffer is not None and render_state(env) is not None
        self._last_flat: np.ndarray | None = None
        self._learned_return = 0.0

    def reset(self, **kwargs):
        """Reset; an episode in progress is recorded as cut off."""
        obs, info = self.env.reset(**kwargs)
        if self.relabel.buffer is not None:
            self.relabel.buffer.cut_open_episodes()
        self._last_flat, self._learned_return = self.relabel.flatten_obs(_batch_of_one(self.observation_space, obs)), 0.0
        return obs, info

    def step(self, action):
        """Step the env and replace its reward with the learned one."""
        state = render_state(self.env) if self._record_states else None
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        flat_obs = self.relabel.flatten_obs(_batch_of_one(self.observation_space, obs))
        reward = self.relabel(
            self._last_flat,
            _batch_of_one(self.action_space, action),
            flat_obs,
            [true_reward],
            [terminated],
            [truncated],
            None if state is None else state[None],
        )[0]
        self._last_flat = flat_obs
        self._learned_return += reward
        info["true_reward"] = float(true_reward)
        if (terminated or truncated) and self.relabel.source != "true":
            info["learned_return"] = self._learned_return
        return obs, float(reward), terminated, truncated, info
