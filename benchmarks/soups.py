"""Rewarded soups of preference-trained policies against MORL by linear scalarization, on MuJoCo.

    python benchmarks/soups.py --envs HalfCheetah-v5,Hopper-v5 --seeds 0,1,2 --start-steps 300000 \\
        --steps 50000 --labels 200 --workers 2

Per env and seed:
1. the shared start: PPO on the env's true reward for `--start-steps`, exactly mujoco_sweep.py's true-reward run
   of that env and seed (shared with it through `results/runs/` and `--start-runs-dir`, trained if missing);
2. rewarded soups (Rame et al. 2023): two fine-tunes from the start (`--init-policy START`, observation
   normalization frozen), each learning its own reward from its own oracle teacher, `--teacher oracle:forward`
   (speed) and `--teacher oracle:energy` (the control cost plus the healthy bonus where the env has one), with
   `--labels` labels and `--steps` env steps each; `prefrl soup` then evaluates the 11 weight interpolations
   lambda in {0, 0.1, ..., 1} on both objectives (`--episodes` episodes each);
3. the MORL baseline: one fine-tune from the same start per weighting w in `--morl-weights`, PPO on the true
   reward w*forward + (1-w)*energy (`--reward true --objective ...`): the upper reference the paper compares
   against, trained on the true rewards rather than on learned ones.

Both fronts are scored by their hypervolume above one reference point per env and seed: the worst value of each
objective over the start and every point of both fronts. Cost: soups train N=2 policies (2 x `--labels` labels);
MORL trains M=len(--morl-weights) policies on the true reward. The claim measured: the soup front's hypervolume
reaches >= 0.9x MORL's, per env (mean over seeds of the per-seed ratio), at N/M of its training cost.

Outputs: `results/soups_runs/*.json` (the train records and one soup record per env and seed),
`results/soups_summary.json`, `results/soups.md`, `results/soups_<env>.png` (seed 0's fronts, and each objective
along lambda). Stopped sweeps resume: finished runs are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import mujoco_sweep
from prefrl.core.data import write_json
from prefrl.core.pareto import hypervolume, pareto_mask
from prefrl.runs.config import TrainConfig
from prefrl.runs.plotting import plot_fronts
from prefrl.runs.soup import evaluate_objectives, load_soup_runs, soup
from prefrl.runs.sweep import Progress, Task, markdown_table, mean_std_text, read_record, run_local, seed_stats
from prefrl.sb3.envs import check_env_id

ROOT = Path(__file__).resolve().parent
OBJECTIVES = ("forward", "energy")
CLAIM_RATIO = 0.9


def run_id(env: str, seed: int, kind: str) -> str:
    return f"{env.replace('/', '_')}_s{seed}_{kind}"


def _task(results: Path, runs_dir: Path, env: str, seed: int, kind: str, **values: Any) -> Task:
    rid = run_id(env, seed, kind)
    base = dict(env=env, out=str(runs_dir / rid), seed=seed, evals=2, history_episodes=2, eval_episodes=5)
    config = asdict(TrainConfig(**{**base, **values}))
    return Task(rid, config, str(results / "soups_runs" / f"{rid}.json"), {"env": env, "seed": seed, "kind": kind})


def start_task(results: Path, start_runs: Path, env: str, seed: int, steps: int) -> Task:
    """The shared start: mujoco_sweep.py's true-reward PPO run of this env and seed (reused when it exists)."""
    return mujoco_sweep.make_task(start_spec(env, seed, steps), results, start_runs)


def start_spec(env: str, seed: int, steps: int) -> mujoco_sweep.RunSpec:
    return mujoco_sweep.RunSpec(env, "ppo", 0, "-", "-", seed, steps)


def finetune_tasks(results: Path, runs_dir: Path, start: Path, env: str, seed: int, steps: int, labels: int,
                   weights: list[float]) -> list[Task]:
    start = str(start)
    tasks = [_task(results, runs_dir, env, seed, f"pref_{obj}", teacher=f"oracle:{obj}", labels=labels, steps=steps,
                   init_policy=start, num_queries=10) for obj in OBJECTIVES]
    for w in weights:
        objective = f"{w:g}*{OBJECTIVES[0]}+{1 - w:g}*{OBJECTIVES[1]}"
        tasks.append(_task(results, runs_dir, env, seed, f"morl_{w:g}", reward="true", objective=objective,
                           steps=steps, init_policy=start))
    return tasks


def _ok(task: Task) -> bool:
    try:
        rec = read_record(task.record)
    except ValueError:
        return False
    return rec is not None and rec["status"] == "ok"


def run_phase(tasks: list[Task], workers: int) -> None:
    todo = [t for t in tasks if not _ok(t)]
    if todo:
        run_local(todo, workers, Progress(len(tasks), len(tasks) - len(todo)))
    failed = [t.run_id for t in tasks if not _ok(t)]
    if failed:
        raise RuntimeError(f"runs failed: {failed}; see their records under results/soups_runs")


def evaluate_env_seed(results: Path, runs_dir: Path, env: str, seed: int, weights: list[float], episodes: int,
                      lambdas: int) -> dict[str, Any]:
    """The soup of the two preference fine-tunes and the MORL runs' points, on both objectives."""
    path = results / "soups_runs" / f"{run_id(env, seed, 'fronts')}.json"
    if path.exists():
        return json.loads(path.read_text())
    pref = [runs_dir / run_id(env, seed, f"pref_{o}") for o in OBJECTIVES]
    soup_dir = runs_dir / run_id(env, seed, "soup")
    res = soup(pref, soup_dir, lambdas=lambdas, episodes=episodes, objectives=list(OBJECTIVES), seed=seed + 50_000,
               progress=False)
    morl = []
    for w, run in zip(weights, load_soup_runs([runs_dir / run_id(env, seed, f"morl_{w:g}") for w in weights])):
        morl.append({"w": w, "objectives": evaluate_objectives(run.model, run, list(OBJECTIVES), episodes,
                                                               seed + 50_000)})
    record = {"env": env, "seed": seed, "soup": res["points"], "start": res["start"], "morl": morl,
              "episodes": episodes}
    write_json(path, record)
    return record


def _means(points: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[p["objectives"][o]["mean"] for o in OBJECTIVES] for p in points])


def summarize(results: Path, records: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    rows, per_env = [], {}
    for rec in records:
        soup_pts, morl_pts = _means(rec["soup"]), _means(rec["morl"])
        start = _means([rec["start"]])
        ref = np.vstack([soup_pts, morl_pts, start]).min(axis=0)
        hv_soup, hv_morl = hypervolume(soup_pts, ref), hypervolume(morl_pts, ref)
        row = {"env": rec["env"], "seed": rec["seed"], "ref": ref.tolist(), "hv_soup": hv_soup, "hv_morl": hv_morl,
               "hv_ratio": hv_soup / hv_morl if hv_morl > 0 else None,
               "soup_pareto_points": int(pareto_mask(soup_pts).sum()),
               "soup_endpoints": {o: soup_pts[[0, -1], i].tolist() for i, o in enumerate(OBJECTIVES)},
               "start": dict(zip(OBJECTIVES, start[0].tolist()))}
        rows.append(row)
        per_env.setdefault(rec["env"], []).append(row)
    claims, table = [], []
    n, m = 2, len(settings["morl_weights"])
    for env, env_rows in per_env.items():
        ratios = [r["hv_ratio"] for r in env_rows if r["hv_ratio"] is not None]
        mean, std = seed_stats(ratios) if ratios else (float("nan"), None)
        claims.append({"claim": f"{env}: soup hypervolume >= {CLAIM_RATIO}x MORL's at {n}/{m} of its training cost",
                       "ratio_mean": mean, "ratio_std": std, "seeds": len(ratios), "holds": bool(mean >= CLAIM_RATIO)})
        hs, hm = seed_stats([r["hv_soup"] for r in env_rows]), seed_stats([r["hv_morl"] for r in env_rows])
        table.append([env, len(env_rows), mean_std_text(*hs, "{:.3g}"), mean_std_text(*hm, "{:.3g}"),
                      mean_std_text(mean, std, "{:.2f}"), "yes" if mean >= CLAIM_RATIO else "no"])
    summary = {"settings": settings, "rows": rows, "claims": claims}
    write_json(results / "soups_summary.json", summary)
    lines = ["# Rewarded soups vs MORL (linear scalarization) on MuJoCo", "",
             f"Command: `{settings['command']}`", "",
             f"Soups: 2 preference fine-tunes ({settings['labels']} oracle labels each, forward / energy), "
             f"{settings['lambdas']} interpolations. MORL: PPO on the true reward w*forward+(1-w)*energy, "
             f"w in {settings['morl_weights']}. Hypervolume above the worst value of each objective over the start "
             f"and both fronts; mean ± sample std over seeds.", "",
             *markdown_table(["env", "seeds", "HV soup", "HV MORL (true reward)", "ratio", f">= {CLAIM_RATIO}"], table)]
    (results / "soups.md").write_text("\n".join(lines) + "\n")
    for env in per_env:
        rec = next(r for r in records if r["env"] == env and r["seed"] == min(x["seed"] for x in records
                                                                                 if x["env"] == env))
        soup_pts, morl_pts = _means(rec["soup"]), _means(rec["morl"])
        plot_fronts({f"soup (2 x {settings['labels']} labels)": soup_pts.tolist(),
                     f"MORL (true reward, {m} weightings)": morl_pts[np.argsort(morl_pts[:, 0])].tolist()},
                    results / f"soups_{env.replace('/', '_')}.png", OBJECTIVES[0], OBJECTIVES[1],
                    title=f"{env}, seed {rec['seed']}", marks={"start": _means([rec["start"]])[0].tolist()},
                    along=([p["lambda"][0] for p in rec["soup"]], {o: soup_pts[:, i].tolist()
                                                                   for i, o in enumerate(OBJECTIVES)}))
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", default="HalfCheetah-v5,Hopper-v5")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--start-steps", default="300000")
    p.add_argument("--steps", default="50000", help="env steps of each fine-tune (soups' and MORL's)")
    p.add_argument("--labels", type=int, default=200, help="oracle labels of each preference fine-tune")
    p.add_argument("--morl-weights", default="0,0.5,1", help="MORL's weights of the first objective")
    p.add_argument("--lambdas", type=int, default=11)
    p.add_argument("--episodes", type=int, default=5, help="evaluation episodes per point of a front")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--runs-dir", default="runs/soups")
    p.add_argument("--start-runs-dir", default="runs/mujoco", help="where mujoco_sweep.py's true-reward runs are "
                                                                    "(the starts; trained there if missing)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python benchmarks/soups.py " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        envs = [check_env_id(e) for e in args.envs.split(",") if e]
        seeds = mujoco_sweep._int_list("seeds", args.seeds, allow_zero=True)
        (start_steps,) = mujoco_sweep._int_list("start-steps", args.start_steps, allow_zero=False)
        (steps,) = mujoco_sweep._int_list("steps", args.steps, allow_zero=False)
        weights = [float(w) for w in args.morl_weights.split(",") if w]
        if not weights or any(not 0.0 <= w <= 1.0 for w in weights):
            raise ValueError(f"--morl-weights {args.morl_weights!r}: expected numbers in [0, 1]")
    except ValueError as exc:
        print(f"soups.py: error: {exc}", file=sys.stderr)
        return 2
    results, runs_dir = Path(args.results_dir), Path(args.runs_dir)
    pairs = [(e, s) for e in envs for s in seeds]
    start_runs = Path(args.start_runs_dir)
    run_phase([start_task(results, start_runs, e, s, start_steps) for e, s in pairs], args.workers)
    run_phase([t for e, s in pairs for t in finetune_tasks(
        results, runs_dir, start_runs / start_spec(e, s, start_steps).run_id, e, s, steps, args.labels, weights)],
        args.workers)
    records = [evaluate_env_seed(results, runs_dir, e, s, weights, args.episodes, args.lambdas) for e, s in pairs]
    settings = {"command": command, "envs": envs, "seeds": seeds, "start_steps": start_steps, "steps": steps,
                "labels": args.labels, "morl_weights": weights, "lambdas": args.lambdas, "episodes": args.episodes}
    summary = summarize(results, records, settings)
    print(json.dumps({"claims": summary["claims"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
