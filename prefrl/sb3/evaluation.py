"""Judging a run against the true reward: policy returns and held-out reward-model quality."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from prefrl.core.data import TrajectoryBuffer
from prefrl.reward.model import RewardModel
from prefrl.reward.trainer import evaluate_preferences


def evaluate_policy(model: BaseAlgorithm, env: VecEnv, n_episodes: int, deterministic: bool = True) -> dict[str, Any]:
    """Run n_episodes; true returns come from SB3's Monitor, learned ones from LearnedRewardVecEnv.

    `env` must be a VecEnv of Monitor-wrapped envs with a LearnedRewardVecEnv on top (with no
    reward model the learned returns are None); envs inside RewardTerms also give each reward term's return.
    With several envs the episodes run side by side, each env a fixed share of them (as SB3's evaluate_policy
    does): counting the first n_episodes to end would favour short episodes.
    """
    true_returns: list[float] = []
    learned_returns: list[float] = []
    lengths: list[int] = []
    terms: list[dict[str, float]] = []
    quota = np.array([(n_episodes + i) // env.num_envs for i in range(env.num_envs)])
    obs = env.reset()
    while quota.any():
        actions, _ = model.predict(obs, deterministic=deterministic)
        obs, _, dones, infos = env.step(actions)
        for i in np.flatnonzero(dones & (quota > 0)):
            quota[i] -= 1
            info = infos[i]
            true_returns.append(float(info["episode"]["r"]))
            lengths.append(int(info["episode"]["l"]))
            learned_returns.append(float(info.get("learned_return", math.nan)))
            terms.append(info.get("reward_terms", {}))
    has_learned = not all(math.isnan(x) for x in learned_returns)
    return {
        "true_return": float(np.mean(true_returns)),
        "true_return_std": float(np.std(true_returns)),
        "learned_return": float(np.nanmean(learned_returns)) if has_learned else None,
        "episode_length": float(np.mean(lengths)),
        "true_returns": true_returns,
        # Each reward term summed over an episode (envs wrapped in RewardTerms), mean over the episodes.
        "term_returns": {k: float(np.mean([t[k] for t in terms])) for k in terms[0] if all(k in t for t in terms)},
        "episode_terms": terms,
    }


def reward_model_report(
    reward_model: RewardModel, buffer: TrajectoryBuffer, segment_len: int, rng: np.random.Generator, n_pairs: int = 1000
) -> dict[str, float]:
    """Held-out quality of a reward model on fresh segments from the run's own data.

    `pref_accuracy_heldout`: agreement of the ensemble with a perfect teacher on new pairs;
    `reward_correlation`: Pearson r of the policy-facing learned return vs the true return.
    """
    segs = buffer.sample_segments(2 * n_pairs, segment_len, rng)
    a, b = segs[:n_pairs], segs[n_pairs:]
    true_a, true_b = a.true_returns(), b.true_returns()
    labels = np.where(true_a > true_b, 1.0, np.where(true_a < true_b, 0.0, 0.5))
    _, accuracy = evaluate_preferences(reward_model, a, b, labels)
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    learned = reward_model.predict(flat(segs.obs), flat(segs.acts), flat(segs.next_obs)).reshape(segs.mask.shape)
    learned_returns = (learned * segs.mask).sum(axis=1)  # absorbing steps are worth 0 to the policy
    true_returns = segs.true_returns()
    corr = float(np.corrcoef(learned_returns, true_returns)[0, 1]) if np.std(true_returns) > 0 else math.nan
    return {"pref_accuracy_heldout": accuracy, "reward_correlation": corr}
