"""Where a run's learned reward puts its demonstrations, its own final policy and the end of an episode.

    python benchmarks/reward_levels.py runs/aihf/Hopper-v5__prefrl__irl__L0__D1__s150000__seed{0,1,2} \\
        --out benchmarks/results/aihf_reward_levels.json

For each run directory (a `prefrl train` run with `--demos`): one deterministic episode of the final policy
(seed 100), and the reward the policy was handed (the ensemble's normalized mean, as the env wrapper computes it)
averaged over that episode's steps and over the run's demonstrations' steps, plus the learned absorbing reward in
the same units. Ending an episode is always worth exactly 0 to the policy (Gymnasium stops the return there), so
a policy whose steps score above 0 is paid for surviving, one whose steps score below 0 for falling; the learned
absorbing reward is 0 where the run anchors the zero there. Units: the reward's standard deviation on the
policy's data, which is how the run normalizes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core.data import write_json  # noqa: E402
from prefrl.core.demos import load_demos_for_env  # noqa: E402
from prefrl.reward.model import RewardModel  # noqa: E402
from prefrl.sb3.policies import record_demos  # noqa: E402


def reward_levels(run_dir: Path) -> dict:
    """The mean handed reward of the final policy's episode, of the demonstrations, and of the absorbing state."""
    config = json.loads((run_dir / "config.json").read_text())
    if not config.get("demos"):
        raise ValueError(f"{run_dir} was trained without demonstrations (config.json has no 'demos')")
    env = gym.make(config["env"], **config.get("env_kwargs", {}))
    model = RewardModel.load(run_dir / "reward_model.pt", env.observation_space, env.action_space)
    demos = load_demos_for_env(config["demos"], config["env"], config.get("demo_episodes"))
    episode = record_demos(config["env"], run_dir, 1, seed=100, deterministic=True).episodes[0]

    def handed(ep) -> float:
        return float(np.mean(model.predict(ep.obs, ep.acts, ep.next_obs)))

    absorbing = (model.absorbing.detach() - model.out_shift) / model.out_scale
    return {"run": run_dir.name, "episode_length": len(episode), "true_return": float(episode.true_rewards.sum()),
            "policy_reward": handed(episode), "demo_reward": float(np.mean([handed(e) for e in demos.episodes])),
            "absorbing_reward": float(absorbing.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="prefrl train run directories (trained with --demos)")
    p.add_argument("--out", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    try:
        rows = [reward_levels(Path(r)) for r in args.runs]
    except (OSError, ValueError, KeyError) as exc:
        print(f"reward_levels.py: error: {exc}", file=sys.stderr)
        return 2
    print("| run | episode length | true return | policy's steps | demonstrations' steps | learned absorbing reward |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r['episode_length']} | {r['true_return']:.0f} | {r['policy_reward']:.2f} | "
              f"{r['demo_reward']:.2f} | {r['absorbing_reward']:.2f} |")
    if args.out:
        write_json(Path(args.out), {"command": "python benchmarks/reward_levels.py " + " ".join(argv or sys.argv[1:]),
                                    "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
