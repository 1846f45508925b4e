"""Wall time of prefrl against the `imitation` library's preference comparisons: same env, steps and labels.

The peer lives in its own virtual environment (it pins older gymnasium and Stable-Baselines3), made once:

    python -m venv /work/peer
    /work/peer/bin/pip install torch==2.13.0 && /work/peer/bin/pip install imitation==1.0.1 "gymnasium[mujoco]"

then, on a quiet machine (two repeats take ~25 min on 2 cores):

    python benchmarks/peer_imitation.py --peer-python /work/peer/bin/python

Both sides run HalfCheetah-v4 (v4: the newest that the peer's gymnasium 0.29 has) for --steps PPO env steps with
--labels answers from a noiseless synthetic teacher on 50-step segments, one torch thread, and each is timed as a user
waits for it: the whole command, from interpreter start to exit.
- prefrl: `prefrl train` with its defaults (one env, PPO with SB3's defaults, observation and reward normalization,
  its evaluations during the run) and, where --prefrl-n-envs lists more, the same with `--n-envs N` and PPO's
  n_steps scaled so a rollout is still 2048 steps.
- imitation: `PreferenceComparisons` on --peer-envs vector envs, PPO with SB3's defaults and n_steps scaled the same
  way, observations normalized (VecNormalize), `BasicRewardNet` with input normalization inside `NormalizedRewardNet`,
  `SyntheticGatherer(temperature=0)` (the oracle), `--peer-iterations` reward rounds with a quarter of the labels
  asked up front (prefrl's default share), the library's defaults elsewhere. One evaluation at the end.
Each run's final true return is the mean of 10 deterministic episodes, so a speed-up cannot hide a worse policy.
HalfCheetah's episodes all last 1000 steps. On an env whose episodes end early the peer stops with "No trajectories
are long enough for the desired fragment length" as soon as every episode of one of its rounds is shorter than a
segment (Hopper-v4, seed 1: in its 8th round of 25), so it is not the default here.
Sides alternate within a repeat; medians over --repeats.

Writes benchmarks/results/peer_imitation.json: per side the wall seconds and final returns of every run, and
`prefrl_vs_imitation_wall_ratio` (prefrl's median wall time over the peer's; below 1: prefrl is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "peer_imitation.json"
ROLLOUT = 2048  # PPO's default n_steps on one env: the rollout every side keeps


def run_imitation(env_id: str, steps: int, labels: int, seed: int, n_envs: int, iterations: int) -> dict:
    """Train with imitation's preference comparisons (run under the peer's interpreter); returns its final return."""
    import numpy as np
    import torch
    from imitation.algorithms import preference_comparisons as pc
    from imitation.rewards.reward_nets import BasicRewardNet, NormalizedRewardNet
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    venv = VecNormalize(make_vec_env(env_id, n_envs=n_envs, rng=rng), norm_obs=True, norm_reward=False)
    net = NormalizedRewardNet(BasicRewardNet(venv.observation_space, venv.action_space,
                                             normalize_input_layer=RunningNorm), RunningNorm)
    agent = PPO("MlpPolicy", venv, n_steps=ROLLOUT // n_envs, seed=seed, device="cpu", verbose=0)
    trainer = pc.BasicRewardTrainer(pc.PreferenceModel(net), pc.CrossEntropyRewardLoss(), rng=rng)
    loop = pc.PreferenceComparisons(
        pc.AgentTrainer(agent, net, venv, rng=rng), net, num_iterations=iterations,
        fragmenter=pc.RandomFragmenter(rng=rng, warning_threshold=0), preference_gatherer=pc.SyntheticGatherer(
            temperature=0, rng=rng), reward_trainer=trainer, fragment_length=50, initial_comparison_frac=0.25,
        allow_variable_horizon=True)  # an env with early ends; HalfCheetah's episodes are all 1000 steps
    loop.train(total_timesteps=steps, total_comparisons=labels)
    eval_env = VecNormalize(make_vec_env(env_id, n_envs=1, rng=np.random.default_rng(seed + 10_000)),
                            training=False, norm_obs=True, norm_reward=False)
    eval_env.obs_rms = venv.obs_rms.copy()
    returns, _ = evaluate_policy(agent, eval_env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
    return {"true_return": float(np.mean(returns)), "env_steps": int(agent.num_timesteps)}


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a command; its output goes to this process's stderr, a failure stops the benchmark."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=sys.stderr)
    if done.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed with exit code {done.returncode}")
    return time.perf_counter() - t0


def prefrl_cmd(args: argparse.Namespace, n_envs: int, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "prefrl", "train", "--env", args.env, "--steps", str(args.steps), "--labels",
           str(args.labels), "--seed", str(args.seed), "--out", str(out), "--no-progress", "--overwrite"]
    if n_envs != 1:
        cmd += ["--n-envs", str(n_envs), "--algo-kwargs", f"n_steps={ROLLOUT // n_envs}"]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", help="the interpreter of the venv that has imitation installed")
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--labels", type=int, default=700)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--peer-envs", type=int, default=4, help="vector envs of the peer's PPO")
    parser.add_argument("--peer-iterations", type=int, default=25, help="reward-training rounds of the peer")
    parser.add_argument("--prefrl-n-envs", type=int, nargs="+", default=[1, 4],
                        help="prefrl runs, one per value: `prefrl train --n-envs N` (1: its default)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--side", choices=("driver", "imitation"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "imitation":  # under the peer's interpreter, started by the driver below
        res = run_imitation(args.env, args.steps, args.labels, args.seed, args.peer_envs, args.peer_iterations)
        Path(args.result).write_text(json.dumps(res))
        return
    if not args.peer_python or not Path(args.peer_python).exists():
        parser.error(f"--peer-python {args.peer_python!r}: expected the python of a venv with imitation installed "
                     "(see this script's docstring)")
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}
    prefrl_runs = {f"prefrl_n_envs{n}": n for n in args.prefrl_n_envs}
    sides: dict[str, list[dict]] = {"imitation": [], **{side: [] for side in prefrl_runs}}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for side in sides:
                result = Path(tmp) / f"{side}_{rep}.json"
                if side == "imitation":
                    cmd = [args.peer_python, str(Path(__file__).resolve()), "--side", "imitation", "--result",
                           str(result), "--env", args.env, "--steps", str(args.steps), "--labels", str(args.labels),
                           "--seed", str(args.seed), "--peer-envs", str(args.peer_envs),
                           "--peer-iterations", str(args.peer_iterations)]
                    seconds = timed(cmd, env)
                    record = json.loads(result.read_text())
                else:
                    out = Path(tmp) / f"{side}_{rep}"
                    seconds = timed(prefrl_cmd(args, prefrl_runs[side], out), env)
                    metrics = json.loads((out / "metrics.json").read_text())
                    record = {"true_return": metrics["true_return"], "env_steps": metrics["env_steps"]}
                sides[side].append({"wall_seconds": seconds, **record})
                print(f"repeat {rep} {side}: {seconds:.0f} s, true return {record['true_return']:.0f}", file=sys.stderr)
    median = {side: statistics.median(r["wall_seconds"] for r in runs) for side, runs in sides.items()}
    report = {
        "env": args.env, "steps": args.steps, "labels": args.labels, "seed": args.seed, "repeats": args.repeats,
        "peer": {"library": "imitation", "n_envs": args.peer_envs, "iterations": args.peer_iterations},
        "median_wall_seconds": median,
        "prefrl_vs_imitation_wall_ratio": {side: median[side] / median["imitation"] for side in sides
                                           if side != "imitation"},
        "runs": sides,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "command": "python benchmarks/peer_imitation.py " + shlex.join(sys.argv[1:]),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("median_wall_seconds", "prefrl_vs_imitation_wall_ratio")}))


if __name__ == "__main__":
    main()
