"""Which reward inputs rank new behaviour best: offline, on the labels a sweep's runs collected.

    python benchmarks/mujoco_sweep.py --envs Hopper-v5,Walker2d-v5,HalfCheetah-v5 --labels 200 --samplers uniform \\
        --seeds 0,1,2,3,4 --results-dir benchmarks/results/efficiency --runs-dir runs/efficiency --steps 300000
    python benchmarks/reward_inputs.py --runs-dir runs/efficiency --runs '*__oracle__uniform__*L200__H50__s300000__seed*'

For every run matching `--runs` (a glob of run directories: each holds config.json and comparisons.npz), a new
reward ensemble with each choice of `--inputs` is fitted on that run's labels as its run fitted them: refitted each
time a batch of labels came in, with the run's own ensemble size, hidden layers, holdout and seed. It is then tested
on the labelled pairs of every other run of the same env (and env arguments): other seeds' policies, so behaviour the
reward never saw. Reported per env and inputs: the share of those pairs ranked as the oracle ranked them, and the
correlation of the learned with the true segment returns; mean ± sample std (ddof=1) over the runs trained on.
`obs+act+act_sq` is prefrl's default for preference runs (`obs+act` was before), `obs` state-only.

Writes `<results>/reward_inputs.json` and `reward_inputs.md`; rows of envs this invocation did not score are kept from
earlier invocations, with their commands.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core.data import ComparisonDataset, write_json  # noqa: E402
from prefrl.reward.model import RewardModel, input_kinds  # noqa: E402
from prefrl.reward.trainer import RewardTrainer, evaluate_preferences  # noqa: E402
from prefrl.runs.config import TrainConfig  # noqa: E402
from prefrl.runs.sweep import markdown_table, mean_std_text, seed_stats  # noqa: E402
from prefrl.sb3.envs import make_env  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "efficiency"
INPUTS = "obs+act,obs,obs+next_obs,obs+act+next_obs"


def parse_inputs(text: str) -> list[tuple[str, ...]]:
    """`obs+act,obs` -> [("obs", "act"), ("obs",)], naming a token that is not an input kind."""
    out = []
    for choice in text.split(","):
        kinds = tuple(choice.split("+"))
        input_kinds(kinds, f"--inputs choice {choice!r}", how=" joined by +")
        out.append(kinds)
    return out


def load_runs(runs_dir: Path, pattern: str) -> dict[str, list[tuple[Path, TrainConfig, ComparisonDataset]]]:
    """The matching runs with labels, grouped by task: the env with its env arguments (`Ant-v5 {...}`)."""
    tasks: dict[str, list[tuple[Path, TrainConfig, ComparisonDataset]]] = {}
    for path in sorted(runs_dir.glob(pattern)):
        if not (path / "comparisons.npz").is_file() or not (path / "config.json").is_file():
            continue
        config = TrainConfig.from_json(path / "config.json")
        data = ComparisonDataset.load(path / "comparisons.npz")
        if len(data):
            name = config.env + (f" {json.dumps(config.env_kwargs, sort_keys=True)}" if config.env_kwargs else "")
            tasks.setdefault(name, []).append((path, config, data))
    return tasks


def fit_as_run(config: TrainConfig, data: ComparisonDataset, inputs: tuple[str, ...], spaces: tuple[Any, Any]
               ) -> RewardModel:
    """A new ensemble with `inputs`, refitted on the labels as each batch of them came in during the run."""
    model = RewardModel(*spaces, ensemble_size=config.ensemble, hidden=config.reward_hidden, inputs=inputs,
                        seed=config.seed)
    trainer = RewardTrainer(model, seed=config.seed, holdout_fraction=config.reward_holdout)
    ends = np.flatnonzero(np.diff(data.env_steps, append=np.inf))  # the last pair of each batch
    for end in ends:
        trainer.fit(data.subset(np.arange(end + 1)))
    return model


def score(model: RewardModel, tests: list[ComparisonDataset]) -> tuple[float, float]:
    """Share of the test pairs ranked as labelled, and the correlation of learned with true segment returns."""
    right, pairs, learned, true = 0.0, 0, [], []
    for data in tests:
        right += evaluate_preferences(model, data.segments_a, data.segments_b, data.labels)[1] * len(data)
        pairs += len(data)
        for segs in (data.segments_a, data.segments_b):
            learned.append(model.segment_member_returns(segs).mean(0))
            true.append(segs.true_returns())
    return right / pairs, float(np.corrcoef(np.concatenate(learned), np.concatenate(true))[0, 1])


def run(runs_dir: Path, pattern: str, choices: list[tuple[str, ...]]) -> list[dict[str, Any]]:
    tasks = load_runs(runs_dir, pattern)
    if not any(len(runs) > 1 for runs in tasks.values()):
        raise ValueError(f"no env has two or more runs with labels matching {pattern!r} in {runs_dir}: "
                         f"expected a sweep's run directories (each with config.json and comparisons.npz)")
    rows = []
    for task, runs in sorted(tasks.items()):
        if len(runs) < 2:
            print(f"reward_inputs.py: {task}: one run only, nothing to test on; skipped", file=sys.stderr)
            continue
        env = make_env(runs[0][1].env_id, runs[0][1].env_kwargs)
        spaces = (env.observation_space, env.action_space)
        env.close()
        for inputs in choices:
            accuracy, corr = [], []
            for i, (path, config, data) in enumerate(runs):
                model = fit_as_run(config, data, inputs, spaces)
                acc, c = score(model, [d for j, (_, _, d) in enumerate(runs) if j != i])
                accuracy.append(acc)
                corr.append(c)
                print(f"reward_inputs.py: {task} {'+'.join(inputs)} trained on {path.name}: accuracy {acc:.3f}, "
                      f"return correlation {c:.3f}", file=sys.stderr, flush=True)
            (am, as_), (cm, cs) = seed_stats(accuracy), seed_stats(corr)
            rows.append({"task": task, "inputs": "+".join(inputs), "runs": [p.name for p, _, _ in runs],
                         "labels_mean": float(np.mean([len(d) for _, _, d in runs])),
                         "accuracy_mean": am, "accuracy_std": as_, "accuracy": accuracy,
                         "return_correlation_mean": cm, "return_correlation_std": cs, "return_correlation": corr})
    return rows


def write_markdown(rows: list[dict[str, Any]], path: Path, commands: list[str]) -> None:
    table = [[r["task"], r["inputs"], len(r["runs"]), f"{r['labels_mean']:.0f}",
              mean_std_text(r["accuracy_mean"], r["accuracy_std"], "{:.3f}"),
              mean_std_text(r["return_correlation_mean"], r["return_correlation_std"], "{:.3f}")] for r in rows]
    lines = ["# Reward inputs: how well a reward fitted on one run's labels ranks other runs' pairs", "",
             "Produced by:", *[f"- `{c}`" for c in commands], "",
             *markdown_table(["env", "reward inputs", "runs", "labels per run", "ranking accuracy on other runs' pairs",
                              "correlation with true segment returns"], table), "",
             "Each run's labels refitted as they came in, with the run's own reward settings, then tested on the "
             "labelled pairs of the env's other runs. mean ± sample std (ddof=1) over the runs trained on. obs+act+act_sq is "
             "prefrl's default for preference runs (obs+act was before)."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", default="runs/efficiency")
    p.add_argument("--runs", default="*__oracle__uniform__*L200__H50__s300000__seed*",
                   help="glob of the run directories to use, under --runs-dir")
    p.add_argument("--inputs", default=INPUTS, help="reward input choices, comma-separated, kinds joined by +")
    p.add_argument("--results-dir", default=str(RESULTS))
    args = p.parse_args(argv)
    command = "python benchmarks/reward_inputs.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        rows = run(Path(args.runs_dir), args.runs, parse_inputs(args.inputs))
    except ValueError as exc:
        print(f"reward_inputs.py: error: {exc}", file=sys.stderr)
        return 2
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    try:
        before = json.loads((results / "reward_inputs.json").read_text())
    except (OSError, json.JSONDecodeError):
        before = {}
    scored = {r["task"] for r in rows}
    rows = sorted([r for r in before.get("rows", []) if r["task"] not in scored] + rows,
                  key=lambda r: r["task"])  # stable: each task keeps its inputs' order
    commands = [c for c in before.get("commands", []) if c != command] + [command]
    write_json(results / "reward_inputs.json", {"commands": commands, "rows": rows})
    write_markdown(rows, results / "reward_inputs.md", commands)
    return 0


if __name__ == "__main__":
    sys.exit(main())
