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

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["COMPOUND_TERMS", "Objective", "ObjectiveReward", "RewardTerms", "env_reward_terms", "objective_wrapper",
           "parse_objective"]

TERM_PREFIX = "reward_"
COMPOUND_TERMS: dict[str, tuple[str, ...]] = {"energy": ("ctrl", "survive", "healthy")}
"""Named groups of terms; each counts the members the env has (energy: the control cost and staying up)."""

_PART = re.compile(r"^\s*(?:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Objective:
    """A weighted sum of named reward terms (names without the `reward_` prefix; compound names allowed)."""

    text: str
    weights: tuple[tuple[str, float], ...]

    def resolve(self, terms: list[str] | tuple[str, ...], env_id: str = "the env") -> dict[str, float]:
        """Weights per term of an env with reward terms `terms`, compound names expanded; ValueError naming an
        unknown term and the env's terms."""
        out: dict[str, float] = {}
        for name, weight in self.weights:
            if name in terms:
                members = (name,)
            elif name in COMPOUND_TERMS and any(m in terms for m in COMPOUND_TERMS[name]):
                members = tuple(m for m in COMPOUND_TERMS[name] if m in terms)
            else:
                compounds = [f"{c} = {' + '.join(m for m in ms if m in terms)}" for c, ms in COMPOUND_TERMS.items()
                             if any(m in terms for m in ms)]
                known = ", ".join(terms) if terms else "none (its info holds no reward_<term> keys)"
                raise ValueError(f"objective {self.text!r}: {env_id} has no reward term {name!r}; its terms are "
                                 f"{known}" + (f" (and {'; '.join(compounds)})" if compounds else ""))
            for m in members:
                out[m] = out.get(m, 0.0) + weight
        return out

    def value(self, term_values: dict[str, float], env_id: str = "the env") -> float:
        """The objective of a step's or an episode's term values (e.g. `info["reward_terms"]`)."""
        return float(sum(w * float(term_values[t]) for t, w in self.resolve(list(term_values), env_id).items()))

    @property
    def names(self) -> list[str]:
        """The term (or compound) names the objective mentions."""
        return [n for n, _ in self.weights]


def parse_objective(text: str) -> Objective:
    """An Objective from `term`, `w*term+w*term...`; ValueError naming a malformed part."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"objective must be a term name or a weighted sum like 0.7*forward+0.3*energy, got {text!r}")
    weights: list[tuple[str, float]] = []
    for part in re.split(r"(?<![0-9][eE])\+", text.replace(" ", "")):
        match = _PART.match(part)
        if not match:
            raise ValueError(f"objective {text!r}: cannot read {part!r}; expected TERM or WEIGHT*TERM joined by +, "
                             f"e.g. 0.7*forward+0.3*energy")
        weight = float(match.group(1)) if match.group(1) is not None else 1.0
        if not math.isfinite(weight):
            raise ValueError(f"objective {text!r}: weight of {match.group(2)!r} must be finite, got {weight}")
        weights.append((match.group(2), weight))
    names = [n for n, _ in weights]
    if len(set(names)) != len(names):
        raise ValueError(f"objective {text!r} names a term twice; expected each term once")
    return Objective(text=text.replace(" ", ""), weights=tuple(weights))


def _terms_of(info: dict[str, Any]) -> dict[str, float]:
    return {k[len(TERM_PREFIX):]: float(v) for k, v in info.items() if k.startswith(TERM_PREFIX) and np.isscalar(v)}


def env_reward_terms(env_id: str, env_kwargs: dict[str, Any] | None = None, seed: int = 0) -> list[str]:
    """The reward terms an env reports in its step info (one random step of a fresh env)."""
    env = gym.make(env_id, **(env_kwargs or {}))
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
