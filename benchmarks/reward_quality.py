"""How well the learned reward matches the true one, on the custom tasks and InvertedPendulum-v5.

    python benchmarks/reward_quality.py                 # 3 tasks x 3 seeds, about 10 minutes on 2 cores
    python benchmarks/reward_quality.py --seeds 0 --tasks prefrl/PointMass-v0

Each run is `prefrl train` (oracle teacher, PPO) through the same code path as the CLI; the
per-run directories go to runs/reward_quality/. Writes benchmarks/results/reward_quality.json
(one row per task: mean/min over seeds of reward_correlation and pref_accuracy_heldout, and the
true return reached) and benchmarks/results/reward_quality.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefrl.runs.config import TrainConfig  # noqa: E402
from prefrl.runs.train import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COMMITTED = {"reward_inputs": ["obs", "act"]}
"""The settings the committed results were made with, given explicitly: prefrl's default inputs have changed since."""
# (labels, steps, segment length) per task: small budgets, since the point is the reward's quality.
TASKS = {
    "prefrl/PointMass-v0": (200, 50_000, 25),
    "prefrl/PointMassFall-v0": (200, 40_000, 25),
    "InvertedPendulum-v5": (200, 50_000, 25),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs-dir", default="runs/reward_quality")
    args = parser.parse_args()
    rows = []
    for task in args.tasks.split(","):
        labels, steps, seg = TASKS[task]
        runs = []
        for seed in map(int, args.seeds.split(",")):
            out = Path(args.runs_dir) / task.replace("/", "_") / f"seed{seed}"
            m = train(TrainConfig(env=task, out=str(out), algo="ppo", teacher="oracle", labels=labels, steps=steps,
                                  seed=seed, segment_len=seg, progress=False, **COMMITTED), overwrite=True)
            print(json.dumps({k: m[k] for k in ("env", "seed", "true_return", "reward_correlation",
                                                "pref_accuracy_heldout", "wall_seconds")}), file=sys.stderr)
            runs.append(m)
        corr = [r["reward_correlation"] for r in runs]
        acc = [r["pref_accuracy_heldout"] for r in runs]
        rows.append({
            "env": task, "algo": "ppo", "teacher": "oracle", "labels": labels, "steps": steps, "segment_len": seg,
            "seeds": [r["seed"] for r in runs],
            "reward_correlation_mean": float(np.mean(corr)), "reward_correlation_min": float(np.min(corr)),
            "pref_accuracy_heldout_mean": float(np.mean(acc)),
            "true_return_mean": float(np.mean([r["true_return"] for r in runs])),
            "true_return_std": float(np.std([r["true_return"] for r in runs])),
            "wall_seconds_mean": float(np.mean([r["wall_seconds"] for r in runs])),
        })
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/reward_quality.py " + " ".join(sys.argv[1:])
    (RESULTS / "reward_quality.json").write_text(json.dumps({"command": command.strip(), "rows": rows}, indent=2) + "\n")
    lines = ["| env | labels | steps | seeds | reward_correlation mean (min) | held-out pref. accuracy | true return |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['env']} | {r['labels']} | {r['steps']} | {len(r['seeds'])} | "
                     f"{r['reward_correlation_mean']:.3f} ({r['reward_correlation_min']:.3f}) | "
                     f"{r['pref_accuracy_heldout_mean']:.3f} | {r['true_return_mean']:.1f} ± {r['true_return_std']:.1f} |")
    (RESULTS / "reward_quality.md").write_text(f"Command: `{command.strip()}`\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
