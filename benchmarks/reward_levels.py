"""Where a run's learned reward puts its demonstrations, final policies and the end of an episode.

    python benchmarks/reward_levels.py runs/aihf/Hopper-v5__prefrl__irl__L0__D1__s150000__seed{0,1,2} \\
        --out benchmarks/results/aihf_reward_levels.json

For each run directory (a `prefrl train` run): one deterministic episode of the final policy (seed 100), and the
reward the policy was handed (the ensemble's normalized mean, as the env wrapper computes it) averaged over that
episode's steps and over the demonstrations' steps, plus the learned absorbing reward in the same units. Ending an
episode is always worth exactly 0 to the policy (Gymnasium stops the return there), so a policy whose steps score
above 0 is paid for surviving, one whose steps score below 0 for falling; the learned absorbing reward is 0 where
the run anchors the zero there. Units: the reward's standard deviation on the policy's data, which is how the run
normalizes it.

Two options compare rewards on the same behaviour:

- `--policies RUN ...` also scores one episode of each of these runs' final policies under every run's reward (one
  column each): whether a reward pays a hopping policy more per step than a standing one, say.
- `--demos FILE` scores these demonstrations for runs trained without any (preference-only runs); a run trained
  with demonstrations always scores its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core.data import write_json  # noqa: E402
from prefrl.core.demos import load_demos_for_env  # noqa: E402
from prefrl.reward.model import RewardModel  # noqa: E402
from prefrl.sb3.envs import check_env_id, make_env  # noqa: E402
from prefrl.sb3.policies import record_demos  # noqa: E402


def final_episode(run_dir: Path, env_id: str):
    """One deterministic episode (seed 100) of the run's final policy."""
    return record_demos(env_id, run_dir, 1, seed=100, deterministic=True).episodes[0]


def reward_levels(run_dir: Path, demos_file: str | None = None, others: dict | None = None) -> dict:
    """The mean handed reward of the final policy's episode, of the demonstrations, of the absorbing state, and of
    the episodes in `others` (name -> episode)."""
    config = json.loads((run_dir / "config.json").read_text())
    demos_file = config.get("demos") or demos_file
    env = make_env(check_env_id(config["env"]), config.get("env_kwargs", {}))
    model = RewardModel.load(run_dir / "reward_model.pt", env.observation_space, env.action_space)

    def handed(ep) -> float:
        return float(np.mean(model.predict(ep.obs, ep.acts, ep.next_obs)))

    episode = final_episode(run_dir, config["env"])
    demo_reward = None
    if demos_file:
        demos = load_demos_for_env(demos_file, config["env"], config.get("demo_episodes"))
        demo_reward = float(np.mean([handed(e) for e in demos.episodes]))
    absorbing = (model.absorbing.detach() - model.out_shift) / model.out_scale
    return {"run": run_dir.name, "episode_length": len(episode), "true_return": float(episode.true_rewards.sum()),
            "policy_reward": handed(episode), "demo_reward": demo_reward,
            "absorbing_reward": float(absorbing.mean()),
            **({"other_policies": {name: handed(ep) for name, ep in others.items()}} if others else {})}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="prefrl train run directories")
    p.add_argument("--policies", nargs="+", default=[], metavar="RUN",
                   help="also score one episode of each of these runs' final policies under every run's reward")
    p.add_argument("--demos", default=None, metavar="FILE",
                   help="demonstrations to score for runs trained without any")
    p.add_argument("--out", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    try:
        others = {}
        for other in map(Path, args.policies):
            env_id = json.loads((other / "config.json").read_text())["env"]
            episode = final_episode(other, env_id)
            others[other.name] = episode
            print(f"{other.name}: episode length {len(episode)}, true return {episode.true_rewards.sum():.0f}",
                  file=sys.stderr)
        rows = [reward_levels(Path(r), args.demos, others) for r in args.runs]
    except (OSError, ValueError, KeyError) as exc:
        print(f"reward_levels.py: error: {exc}", file=sys.stderr)
        return 2
    extra = [f"{name}'s steps" for name in others]
    print("| run | episode length | true return | policy's steps | demonstrations' steps | learned absorbing reward |"
          + "".join(f" {c} |" for c in extra))
    print("| --- " * (6 + len(extra)) + "|")
    for r in rows:
        print(f"| {r['run']} | {r['episode_length']} | {r['true_return']:.0f} | {r['policy_reward']:.2f} | "
              f"{_cell(r['demo_reward'])} | {r['absorbing_reward']:.2f} |"
              + "".join(f" {v:.2f} |" for v in r.get("other_policies", {}).values()))
    if args.out:
        write_json(Path(args.out), {"command": "python benchmarks/reward_levels.py " + " ".join(argv or sys.argv[1:]),
                                    "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
