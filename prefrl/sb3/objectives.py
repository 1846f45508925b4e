"""Objectives: which of an env's reward terms a run's true reward (and so its synthetic teacher) counts.

Gymnasium's MuJoCo envs (v5) report their reward's terms in `info` as `reward_<term>`: Hopper-v5 gives
`reward_forward`, `reward_ctrl` (minus the control cost) and `reward_survive`, HalfCheetah-v5 forward and ctrl;
a custom env names its own terms the same way. An objective is a weighted sum of terms, written as text:

    forward                  the speed term alone
    energy                   ctrl plus the healthy / survive bonus where the env has one (spend little, stay up)
    0.7*forward+0.3*energy   a linear scalarization of two objectives (MORL's baseline)

`ObjectiveReward` makes the env's reward the objective's, so the teacher, Monitor's episode returns, the
evaluations and the plots all judge the run by it, and keeps the env's own reward in `info["env_reward"]`.
`RewardTerms` sums every term over an episode into `info["reward_terms"]` at its end, so one evaluation
scores a policy on any objective afterwards (`Objective.value`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from prefrl.core.objectives import COMPOUND_TERMS, Objective, parse_objective
from prefrl.sb3.envs import make_env

__all__ = ["COMPOUND_TERMS", "Objective", "ObjectiveReward", "RewardTerms", "env_reward_terms", "objective_wrapper",
           "parse_objective"]

TERM_PREFIX = "reward_"


def _terms_of(info: dict[str, Any]) -> dict[str, float]:
    return {k[len(TERM_PREFIX):]: float(v) for k, v in info.items() if k.startswith(TERM_PREFIX) and np.isscalar(v)}


def env_reward_terms(env_id: str, env_kwargs: dict[str, Any] | None = None, seed: int = 0) -> list[str]:
    """The reward terms an env reports in its step info (one random step of a fresh env)."""
    env = make_env(env_id, env_kwargs)
    try:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        info = env.step(env.action_space.sample())[4]
        return sorted(_terms_of(info))
    finally:
        env.close()


class ObjectiveReward(gym.Wrapper):
    """The env's reward replaced by an objective of its reward terms; the env's own stays in info["env_reward"]."""

    def __init__(self, env: gym.Env, objective: Objective | str):
        super().__init__(env)
        self.objective = parse_objective(objective) if isinstance(objective, str) else objective
        self._weights: dict[str, float] | None = None

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        terms = _terms_of(info)
        if self._weights is None:
            self._weights = self.objective.resolve(sorted(terms), self.env.spec.id if self.env.spec else "the env")
        missing = [t for t in self._weights if t not in terms]
        if missing:
            raise ValueError(f"objective {self.objective.text!r}: this step's info lacks reward term(s) {missing}; "
                             f"expected the env to report reward_<term> on every step")
        info["env_reward"] = float(reward)
        return obs, float(sum(w * terms[t] for t, w in self._weights.items())), terminated, truncated, info


class RewardTerms(gym.Wrapper):
    """Sums each `reward_<term>` of the info over an episode into info["reward_terms"] at its last step."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._sums: dict[str, float] = {}

    def reset(self, **kwargs):
        self._sums = {}
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        for name, value in _terms_of(info).items():
            self._sums[name] = self._sums.get(name, 0.0) + value
        if terminated or truncated:
            info["reward_terms"] = dict(self._sums)
        return obs, reward, terminated, truncated, info


def objective_wrapper(objective: str | None) -> Callable[[gym.Env], gym.Env]:
    """What goes around each env of a run: RewardTerms, then ObjectiveReward when the run has an objective."""
    if objective is None:
        return RewardTerms
    parsed = parse_objective(objective)
    return lambda env: ObjectiveReward(RewardTerms(env), parsed)
