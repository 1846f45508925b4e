"""Throughput of preference-based PPO against PPO on the true reward, measured in one process.

    python benchmarks/throughput.py                       # Hopper-v5, 2 x 100k steps per mode, ~20 min
    python benchmarks/throughput.py --env prefrl/PointMass-v0 --steps 20000 --labels 50 --repeats 1
    python benchmarks/throughput.py --only loop --steps 300000 --labels 700 --out benchmarks/results/throughput_300k.json
                                                           # the loop's ratios at 300k steps and 700 labels, ~35 min
    python benchmarks/throughput.py --only train          # just the whole-`prefrl train` ratio, ~12 min; merged
    python benchmarks/throughput.py --only train --n-envs 4 --out benchmarks/results/throughput_n_envs4.json
                                                           # the same on four envs each, ~6 min

Prints one JSON line and writes benchmarks/results/throughput.json:
- learned_vs_true_fps_ratio: PPO env-steps/s with the whole preference loop (learned-reward
  wrapper with the default 3-member ensemble, label queries, reward refits) over env-steps/s of
  the same PPO on the true reward through the same wrapper stack. Modes alternate, repeats are
  aggregated by the median, so drift on the machine hits both alike.
- inference_only_fps_ratio: the same, with the learned reward computed every step but no labels
  or refits (the wrapper's own cost).
- learned_fit_share: the share of the whole-loop run's wall time spent in reward fits (RewardTrainer.fit, as the
  fit reports time it), median over repeats: what is left of the gap after inference_only_fps_ratio.
- train_learned_vs_true_fps_ratio: the whole of `prefrl train` as a user runs it (its default learner
  settings, its evaluations, checkpoints, labels and refits) against `prefrl train --reward true` with the same
  settings: the run's --train-steps over wall seconds of `prefrl.train` (what a user waits for a run of that many
  steps; the preference run's random-action warm-up is part of its cost), modes alternating, medians over
  --repeats. The label budget is --labels, as for the loop above.
- reward_pair_updates_per_s: Bradley-Terry training speed of the batched ensemble, counted as
  (labelled pair, member) gradient evaluations per second, 50-step segments; and the speed-up of
  the batched ensemble over the same members held as a Python list and looped (default 3 members).
- ensemble: per ensemble size (3 and 5 by default), training speed (RewardTrainer.fit, batches of
  64 pairs) and inference speed (member rewards of 6400 feature rows, no gradients, per thread
  CPU-second) of the batched ensemble and of the looped members, and batched/looped ratios (> 1:
  the batched module is faster). Both kinds are measured alternately in one process; medians over
  --ensemble-repeats.

    python benchmarks/throughput.py --only ensemble       # just the ensemble part, ~2 min; merged
                                                           # into an existing results file
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefrl.core.data import ComparisonDataset, Segments, TrajectoryBuffer  # noqa: E402
from prefrl.feedback.teachers import make_teacher  # noqa: E402
from prefrl.reward.model import RewardModel  # noqa: E402
from prefrl.reward.trainer import RewardTrainer
from prefrl.runs.config import TrainConfig  # noqa: E402
from prefrl.runs.train import make_vec_env, ppo_n_steps, train  # noqa: E402
from prefrl.sb3.callback import PreferenceCallback  # noqa: E402
from prefrl.sb3.wrappers import LearnedRewardVecEnv  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def ppo_fps(env_id: str, steps: int, mode: str, seed: int, labels: int, n_envs: int = 1) -> tuple[float, float]:
    """Env steps per second of PPO (default settings on `n_envs` envs sharing a 2048-step rollout, VecNormalize as in
    `prefrl train`) in one mode, and the share of the run's wall time its reward fits took."""
    venv = make_vec_env(env_id, n_envs, seed)
    model = None if mode == "true" else RewardModel(venv.observation_space, venv.action_space, seed=seed)
    wrapped = VecNormalize(LearnedRewardVecEnv(venv, model, TrajectoryBuffer(n_envs)))
    ppo = PPO("MlpPolicy", wrapped, seed=seed, verbose=0, n_steps=ppo_n_steps(n_envs))
    callback = None
    if mode == "learned":
        callback = PreferenceCallback(model, make_teacher("oracle"), total_labels=labels, total_steps=steps,
                                      segment_len=50, seed=seed)
    t0 = time.perf_counter()
    ppo.learn(steps, callback=callback)
    elapsed = time.perf_counter() - t0
    if callback is None:
        return steps / elapsed, 0.0
    fits = sum(report["seconds"] for report in callback.state.fit_reports)
    return (steps + callback.state.warmup_steps) / elapsed, fits / elapsed


def train_fps(env_id: str, steps: int, mode: str, seed: int, labels: int, out: Path, n_envs: int | None = None) -> float:
    """`steps` per wall second of the whole `prefrl train` (run to its end: evaluations, checkpoints, plots)."""
    config = TrainConfig(env=env_id, out=str(out), steps=steps, seed=seed, labels=labels, progress=False,
                         reward="learned" if mode == "learned" else "true", n_envs=n_envs)
    t0 = time.perf_counter()
    train(config, overwrite=True)
    return steps / (time.perf_counter() - t0)


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

    def __init__(self, members: int, in_dim: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        dims = [in_dim, *hidden, 1]

        def member() -> torch.nn.Sequential:
            layers: list[torch.nn.Module] = []
            for d_in, d_out in zip(dims[:-1], dims[1:]):
                layers += [torch.nn.Linear(d_in, d_out), torch.nn.LeakyReLU()]
            return torch.nn.Sequential(*layers[:-1])

        self.members = torch.nn.ModuleList(member() for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.stack([m(x).squeeze(-1) for m in self.members])
        return torch.stack([m(x[k]).squeeze(-1) for k, m in enumerate(self.members)])


def _reward_model(env: gym.Env, kind: str, members: int, hidden: Sequence[int]) -> RewardModel:
    model = RewardModel(env.observation_space, env.action_space, ensemble_size=members, hidden=hidden, seed=0)
    if kind == "looped":
        model.net = LoopedMLP(members, model.in_dim, hidden)
    return model


def reward_training_speed(
    env_id: str, sizes: Sequence[int] = (3, 5), hidden: Sequence[int] = (64, 64), repeats: int = 3,
    pairs: int = 700, horizon: int = 50, updates: int = 300, infer_rows: int = 6400, infer_calls: int = 30,
) -> dict:
    """Training and inference speed of the batched ensemble against looped members, per ensemble size.

    Training: (pair, member) gradient evaluations per second of RewardTrainer.fit (seconds include
    held-out evaluation and output normalization, as in real use); the kinds alternate fit by fit.
    Inference: feature rows per CPU-second of RewardModel.member_rewards without gradients, timed
    call by call (median per repeat) with the kinds alternating, so load from elsewhere on the
    machine hits both alike.
    """
    env = gym.make(env_id)
    ensemble: dict[str, dict] = {}
    for members in sizes:
        train: dict[str, list[float]] = {"batched": [], "looped": []}
        infer: dict[str, list[float]] = {"batched": [], "looped": []}
        for _ in range(repeats):
            models = {}
            for kind in train:
                models[kind] = model = _reward_model(env, kind, members, hidden)
                ds = _random_dataset(model.obs_dim, model.act_dim, pairs, horizon, np.random.default_rng(0))
                report = RewardTrainer(model, max_updates=updates, patience=10**9, seed=0).fit(ds)
                train[kind].append(report.pair_updates / report.seconds)
            x = torch.as_tensor(model.segment_features(ds.segments_a)).reshape(-1, model.in_dim)[:infer_rows]
            calls: dict[str, list[float]] = {kind: [] for kind in models}
            with torch.no_grad():
                for call in range(infer_calls + 1):
                    for kind, model in models.items():
                        t0 = time.thread_time()  # CPU time: calls are short, preemption by other work is not their cost
                        model.member_rewards(x)
                        if call:  # the first call of each kind is a warm-up
                            calls[kind].append(len(x) / (time.thread_time() - t0))
            for kind, rates in calls.items():
                infer[kind].append(statistics.median(rates))
        med_train = {k: statistics.median(v) for k, v in train.items()}
        med_infer = {k: statistics.median(v) for k, v in infer.items()}
        ensemble[str(members)] = {
            "train_pair_updates_per_s": med_train,
            "train_speedup": med_train["batched"] / med_train["looped"],
            "inference_rows_per_s": med_infer,
            "inference_speedup": med_infer["batched"] / med_infer["looped"],
            "train_runs": train,
            "inference_runs": infer,
        }
        print(f"ensemble K={members}: train {ensemble[str(members)]['train_speedup']:.2f}x, "
              f"inference {ensemble[str(members)]['inference_speedup']:.2f}x batched/looped", file=sys.stderr)
    first = ensemble[str(sizes[0])]
    return {
        "reward_pair_updates_per_s": first["train_pair_updates_per_s"]["batched"],
        "reward_pair_updates_per_s_looped_members": first["train_pair_updates_per_s"]["looped"],
        "batched_vs_looped_speedup": first["train_speedup"],
        "ensemble": {
            "env": env_id, "hidden": list(hidden), "pairs": pairs, "horizon": horizon, "updates": updates,
            "batch_pairs": 64, "inference_rows": infer_rows, "repeats": repeats, "sizes": ensemble,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=100_000, help="PPO env steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--labels", type=int, default=250, help="label budget of the full-loop runs (700 per 300k, scaled)")
    parser.add_argument("--n-envs", type=int, default=1, help="envs each PPO steps side by side, its rollout of "
                        "2048 steps shared among them (default 1, as `prefrl train`)")
    parser.add_argument("--out", default=str(RESULTS / "throughput.json"))
    parser.add_argument("--only", choices=("all", "loop", "ensemble", "train"), default="all",
                        help="'loop', 'ensemble' or 'train': only that part, merged into an existing --out")
    parser.add_argument("--train-steps", type=int, default=100_000, help="env steps of each `prefrl train` run")
    parser.add_argument("--ensemble-sizes", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--ensemble-hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--ensemble-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `prefrl train` does
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), python {platform.python_version()}"
    command = "python " + " ".join(sys.argv)
    ensemble = lambda: reward_training_speed(  # noqa: E731
        args.env, args.ensemble_sizes, args.ensemble_hidden, args.ensemble_repeats)

    def whole_train() -> dict:
        runs: dict[str, list[float]] = {"true": [], "learned": []}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for mode in runs:
                    runs[mode].append(train_fps(args.env, args.train_steps, mode, r, args.labels, Path(tmp) / mode,
                                                args.n_envs))
                    print(f"repeat {r} prefrl train {mode:7s} {runs[mode][-1]:8.1f} steps/s", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in runs.items()}
        return {"train_learned_vs_true_fps_ratio": med["learned"] / med["true"],
                "train": {"env": args.env, "steps": args.train_steps, "labels": args.labels, "repeats": args.repeats,
                          "n_envs": args.n_envs, "true_fps": med["true"], "learned_fps": med["learned"], "fps_runs": runs,
                          "machine": machine, "command": command}}

    def loop() -> dict:
        fps: dict[str, list[float]] = {"true": [], "inference": [], "learned": []}
        fit_shares: list[float] = []
        for r in range(args.repeats):
            for mode in fps:  # alternate modes so slow drift affects all of them
                rate, fit_share = ppo_fps(args.env, args.steps, mode, seed=r, labels=args.labels, n_envs=args.n_envs)
                fps[mode].append(rate)
                if mode == "learned":
                    fit_shares.append(fit_share)
                print(f"repeat {r} {mode:9s} {rate:8.1f} steps/s", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in fps.items()}
        return {
            "env": args.env,
            "n_envs": args.n_envs,
            "steps": args.steps,
            "repeats": args.repeats,
            "labels": args.labels,
            "true_fps": med["true"],
            "learned_fps": med["learned"],
            "inference_only_fps": med["inference"],
            "learned_vs_true_fps_ratio": med["learned"] / med["true"],
            "inference_only_fps_ratio": med["inference"] / med["true"],
            "learned_fit_share": statistics.median(fit_shares),
            "fps_runs": fps,
            "learned_fit_shares": fit_shares,
            "machine": machine,
            "command": command,
        }

    if args.only != "all":  # keep the numbers of the last full run, replace this part's
        out = Path(args.out)
        result = json.loads(out.read_text()) if out.is_file() else {}
        if args.only == "ensemble":
            result.update(ensemble())
            result["ensemble"]["machine"], result["ensemble"]["command"] = machine, command
        else:
            result.update(loop() if args.only == "loop" else whole_train())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "fps_runs"}))
        return

    result = {**loop(), **ensemble(), **whole_train()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "fps_runs"}))


if __name__ == "__main__":
    main()
