"""How well do the held-out labels determine the label-noise floor that `--estimate-label-noise` learns?

    python benchmarks/label_noise_profile.py

The runs are the efficiency sweep's with `--label-noise fit` (`benchmarks/README.md`, "Feedback efficiency"): their
records in `<results-dir>/runs/` and their run directories (final reward model, labelled pairs, loop state) in
`<runs-dir>/`, where the sweep left them. For each run, the pairs its reward trainer held out (the same seeded split
as in training) are scored by the final reward ensemble (its mean return per segment, as the estimate reads them),
and the Bradley-Terry log-likelihood of their labels is profiled over the floor (`losses.label_noise_profile`: at
each floor on a grid of 0.02 from 0 to 0.8, the likelihood at its best common scale of the scores). The floor's 95%
likelihood interval (`losses.label_noise_interval`) is every floor within 1.92 nats of the best; a wide interval says
the labels barely tell floors apart, and the fit-to-fit estimates (from the loop state) then wander across it.

Writes `<results-dir>/label_noise_profile.json` (every run: its held-out pairs, accuracy, final estimate, interval,
the profile on the grid and the estimates fit by fit) and `label_noise_profile.md`. Seconds per run on CPU.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core import losses  # noqa: E402
from prefrl.core.data import ComparisonDataset  # noqa: E402
from prefrl.reward.model import RewardModel  # noqa: E402
from prefrl.reward.trainer import RewardTrainer, evaluate_preferences, mean_segment_returns  # noqa: E402
from prefrl.runs.sweep import markdown_table, read_record, write_report  # noqa: E402
from prefrl.sb3.callback import LoopState  # noqa: E402
from prefrl.sb3.envs import make_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOORS = np.round(np.arange(0.0, 0.8 + 1e-9, 0.02), 2)  # the estimator's range with its default cap


def run_profile(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    spec = record["spec"]
    for name in ("reward_model.pt", "comparisons.npz"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"no {name} in {run_dir}: run the sweep that made {record['run_id']} first")
    env = make_env(spec["env"], json.loads(spec["env_kwargs"]) if spec.get("env_kwargs") else None)
    try:
        model = RewardModel.load(run_dir / "reward_model.pt", env.observation_space, env.action_space)
    finally:
        env.close()
    dataset = ComparisonDataset.load(run_dir / "comparisons.npz")
    holdout = spec.get("holdout")
    trainer = RewardTrainer(model, seed=spec["seed"], **({} if holdout is None else {"holdout_fraction": holdout}))
    held, _ = trainer.split(len(dataset))
    if not len(held):
        raise ValueError(f"{record['run_id']} held no pairs out ({len(dataset)} labels): nothing to profile")
    model.eval()
    seg_a, seg_b, labels = dataset.segments_a[held], dataset.segments_b[held], dataset.labels[held]
    ra, rb = mean_segment_returns(model, seg_a, seg_b)
    y = torch.as_tensor(labels, dtype=torch.float64)
    loglik = losses.label_noise_profile(ra, rb, y, torch.as_tensor(FLOORS)).numpy()
    _, accuracy = evaluate_preferences(model, seg_a, seg_b, labels)
    fits = [float(f["label_noise"]) for f in LoopState.load(run_dir).fit_reports if f.get("label_noise") is not None]
    low, high = losses.label_noise_interval(ra, rb, y)
    return {"run_id": record["run_id"], "env": spec["env"], "teacher": spec.get("teacher", "oracle"),
            "seed": spec["seed"], "labels": len(dataset), "held_out": int(len(held)), "held_out_accuracy": accuracy,
            "estimate": losses.label_noise_estimate(ra, rb, y), "interval95": [low, high],
            "profile": [float(v - loglik.max()) for v in loglik], "fits": fits,
            "true_return": record["metrics"]["true_return"]}


def profiles(results: Path, runs_dir: Path, pattern: str) -> dict[str, Any]:
    records = [read_record(p) for p in sorted((results / "runs").glob("*.json"))]
    found = [r for r in records if r is not None and r["status"] == "ok" and r["spec"].get("fit_noise")
             and fnmatch.fnmatchcase(r["run_id"], pattern)]
    if not found:
        raise ValueError(f"no finished run record with a fitted label-noise floor in {results / 'runs'} matches "
                         f"{pattern!r}: run the sweep with --label-noise fit first")
    return {"pattern": pattern, "floors": FLOORS.tolist(), "runs": [run_profile(r, runs_dir / r["run_id"])
                                                                   for r in found]}


def markdown(summary: dict[str, Any], command: str) -> str:
    shown = [0.0, 0.2, 0.4, 0.6, 0.8]
    at = [summary["floors"].index(f) for f in shown]
    rows = sorted(summary["runs"], key=lambda r: (r["teacher"], r["env"], r["labels"], r["seed"]))
    body = [[r["env"], r["teacher"], r["labels"], r["seed"], r["held_out"], f"{r['held_out_accuracy']:.2f}", f"{r['estimate']:.2f}",
             f"[{r['interval95'][0]:.2f}, {r['interval95'][1]:.2f}]", *(f"{r['profile'][i]:.1f}" for i in at),
             " ".join(f"{f:.2f}" for f in r["fits"])] for r in rows]
    widths: dict[str, list[float]] = {}
    for r in rows:
        widths.setdefault(r["teacher"], []).append(r["interval95"][1] - r["interval95"][0])
    return "\n".join([
        "# The learned label-noise floor: how well the held-out labels determine it", "",
        f"Command: `{command}`", "",
        "Per run with `--estimate-label-noise`: the pairs held out of reward training, the final reward ensemble's "
        "accuracy on them, its final floor estimate, the floor's 95% likelihood interval (floors within "
        f"{losses.CHI2_95 / 2:.2f} nats of the best, each at its best common scale of the scores), the profile log-likelihood "
        "against the best at floors 0-0.8, and the floors the run's fits set one after another. A teacher that flips "
        "a share m of its answers gives a floor of 2m (mistake0.3: 0.6, mistake0.1: 0.2, oracle: 0).", "",
        *markdown_table(["env", "teacher", "labels", "seed", "held out", "accuracy", "estimate", "95% interval",
                         *(f"at {f}" for f in shown), "floor fit by fit"], body), "",
        "Interval width per teacher: " + "; ".join(
            f"{teacher} median {np.median(w):.2f}, {sum(x >= 0.4 for x in w)} of {len(w)} runs 0.4 or wider"
            for teacher, w in sorted(widths.items())) + ".", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="*", help="glob of the run ids to profile (those with --label-noise fit)")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks/results/efficiency"))
    p.add_argument("--runs-dir", default=str(ROOT / "runs/efficiency"))
    p.add_argument("--name", default="label_noise_profile", help="output files <results-dir>/<name>.json and .md")
    args = p.parse_args(argv)
    results = Path(args.results_dir)
    try:
        summary = profiles(results, Path(args.runs_dir), args.runs)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python benchmarks/label_noise_profile.py" + (f" --runs '{args.runs}'" if args.runs != "*" else "") + (
        f" --name {args.name}" if args.name != "label_noise_profile" else "")
    write_report(results, args.name, command, summary, markdown(summary, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
