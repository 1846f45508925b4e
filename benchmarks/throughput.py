"""Throughput of preference-based PPO against PPO on the true reward, measured in one process.

    python benchmarks/throughput.py                       # Hopper-v5, 2 x 100k steps per mode, ~8 min
    python benchmarks/throughput.py --env prefrl/PointMass-v0 --steps 20000 --labels 50 --repeats 1

Prints one JSON line and writes benchmarks/results/throughput.json:
- learned_vs_true_fps_ratio: PPO env-steps/s with the whole preference loop (learned-reward
  wrapper with the default 3-member ensemble, label queries, reward refits) over env-steps/s of
  the same PPO on the true reward through the same wrapper stack. Modes alternate, repeats are
  aggregated by the median, so drift on the machine hits both alike.
- inference_only_fps_ratio: the same, with the learned reward computed every step but no labels
  or refits (the wrapper's own cost).
- reward_pair_updates_per_s: Bradley-Terry training speed of the batched ensemble, counted as
  (labelled pair, member) gradient evaluations per second, 50-step segments; and the speed-up of
  the batched ensemble over the same members held as a Python list and looped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefrl.callbacks import PreferenceCallback  # noqa: E402
from prefrl.data import ComparisonDataset, Segments, TrajectoryBuffer  # noqa: E402
from prefrl.reward import RewardModel, RewardTrainer  # noqa: E402
from prefrl.teachers import make_teacher  # noqa: E402
from prefrl.train import make_vec_env  # noqa: E402
from prefrl.wrappers import LearnedRewardVecEnv  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def ppo_fps(env_id: str, steps: int, mode: str, seed: int, labels: int) -> float:
    """Env steps per second of PPO (default settings, VecNormalize as in `prefrl train`) in one mode."""
    venv = make_vec_env(env_id, 1, seed)
    model = None if mode == "true" else RewardModel(venv.observation_space, venv.action_space, seed=seed)
    wrapped = VecNormalize(LearnedRewardVecEnv(venv, model, TrajectoryBuffer(1)))
    ppo = PPO("MlpPolicy", wrapped, seed=seed, verbose=0)
    callback = None
    if mode == "learned":
        callback = PreferenceCallback(model, make_teacher("oracle"), total_labels=labels, total_steps=steps,
                                      segment_len=50, seed=seed)
    t0 = time.perf_counter()
    ppo.learn(steps, callback=callback)
    elapsed = time.perf_counter() - t0
    warmup = callback.warmup_done if callback is not None else 0
    return (steps + warmup) / elapsed


def _random_dataset(obs_dim: int, act_dim: int, pairs: int, horizon: int, rng: np.random.Generator) -> ComparisonDataset:
    def segs():
        obs = rng.normal(size=(pairs, horizon, obs_dim)).astype(np.float32)
        return Segments(obs=obs, acts=rng.uniform(-1, 1, (pairs, horizon, act_dim)).astype(np.float32), next_obs=obs,
                        mask=np.ones((pairs, horizon), np.float32), true_rewards=obs[..., 0])
    a, b = segs(), segs()
    ds = ComparisonDataset()
    ds.add(a, b, (a.true_returns() > b.true_returns()).astype(np.float32), "oracle", 0)
    return ds


class LoopedMLP(torch.nn.Module):
    """The same K members as a Python list of nn.Sequential, looped: what the batched module replaces."""

    def __init__(self, members: int, in_dim: int, hidden: int = 64):
        super().__init__()
        self.members = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(in_dim, hidden), torch.nn.LeakyReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.LeakyReLU(), torch.nn.Linear(hidden, 1))
            for _ in range(members)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.stack([m(x).squeeze(-1) for m in self.members])
        return torch.stack([m(x[k]).squeeze(-1) for k, m in enumerate(self.members)])


def reward_training_speed(env_id: str, pairs: int = 700, horizon: int = 50, updates: int = 300) -> dict[str, float]:
    """(pair, member) gradient evaluations per second of RewardTrainer, batched vs looped members."""
    env = gym.make(env_id)
    speeds = {}
    for kind in ("batched", "looped"):
        model = RewardModel(env.observation_space, env.action_space, seed=0)
        if kind == "looped":
            model.net = LoopedMLP(model.ensemble_size, model.in_dim)
        ds = _random_dataset(model.obs_dim, model.act_dim, pairs, horizon, np.random.default_rng(0))
        report = RewardTrainer(model, max_updates=updates, patience=10**9, seed=0).fit(ds)
        speeds[kind] = report.pair_updates / report.seconds  # seconds include held-out evaluation, as in real use
    return {
        "reward_pair_updates_per_s": speeds["batched"],
        "reward_pair_updates_per_s_looped_members": speeds["looped"],
        "batched_vs_looped_speedup": speeds["batched"] / speeds["looped"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=100_000, help="PPO env steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--labels", type=int, default=250, help="label budget of the full-loop runs (700 per 300k, scaled)")
    parser.add_argument("--out", default=str(RESULTS / "throughput.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `prefrl train` does

    fps: dict[str, list[float]] = {"true": [], "inference": [], "learned": []}
    for r in range(args.repeats):
        for mode in fps:  # alternate modes so slow drift affects all of them
            fps[mode].append(ppo_fps(args.env, args.steps, mode, seed=r, labels=args.labels))
            print(f"repeat {r} {mode:9s} {fps[mode][-1]:8.1f} steps/s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in fps.items()}
    result = {
        "env": args.env,
        "steps": args.steps,
        "repeats": args.repeats,
        "labels": args.labels,
        "true_fps": med["true"],
        "learned_fps": med["learned"],
        "inference_only_fps": med["inference"],
        "learned_vs_true_fps_ratio": med["learned"] / med["true"],
        "inference_only_fps_ratio": med["inference"] / med["true"],
        **reward_training_speed(args.env),
        "fps_runs": fps,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "fps_runs"}))


if __name__ == "__main__":
    main()
