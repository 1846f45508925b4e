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
3. MORL by linear scalarization, one fine-tune from the same start per weighting w in `--morl-weights`:
   - on the learned rewards, as the paper's baseline: PPO on w * r_forward + (1-w) * r_energy, the frozen reward
     models of the two preference fine-tunes (`--reward frozen --reward-from A B --reward-weights w 1-w`), no
     new labels;
   - on the true reward terms, the upper reference: `--reward true --objective w*forward+(1-w)*energy`.

The fronts are scored by their hypervolume above one reference point per env and seed: the worst value of each
objective over the start and every point of the three fronts. Cost: soups train N=2 policies, MORL M =
len(--morl-weights) (the learned variant reuses the soups' reward models). The claim measured: the soup front's
hypervolume reaches >= 0.9x MORL's on the learned rewards, per env (mean over seeds of the per-seed ratio), at
N/M of its policy training; the ratio to the true-reward MORL is reported beside it.

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

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import mujoco_sweep  # noqa: E402
from prefrl.core.data import write_json  # noqa: E402
from prefrl.core.pareto import hypervolume, pareto_mask  # noqa: E402
from prefrl.runs.config import TrainConfig  # noqa: E402
from prefrl.runs.plotting import plot_fronts  # noqa: E402
from prefrl.runs.soup import evaluate_objectives, load_soup_runs, soup  # noqa: E402
from prefrl.runs.sweep import (  # noqa: E402
    Progress,
    Task,
    markdown_table,
    mean_std_text,
    read_record,
    run_local,
    seed_stats,
)
from prefrl.sb3.envs import check_env_id  # noqa: E402

ROOT = Path(__file__).resolve().parent
OBJECTIVES = ("forward", "energy")
CLAIM_RATIO = 0.9


def run_id(env: str, seed: int, kind: str) -> str:
    return f"{env.replace('/', '_')}_s{seed}_{kind}"


def _task(results: Path, runs_dir: Path, env: str, seed: int, kind: str, **values: Any) -> Task:
    rid = run_id(env, seed, kind)
    # a state-action reward: the inputs of the committed runs (prefrl's default has changed since)
    base = dict(env=env, out=str(runs_dir / rid), seed=seed, evals=2, history_episodes=2, eval_episodes=5,
                reward_inputs=list(mujoco_sweep.OBS_ACT))
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


def learned_morl_tasks(results: Path, runs_dir: Path, start: Path, env: str, seed: int, steps: int,
                       weights: list[float]) -> list[Task]:
    """MORL on the learned rewards: PPO from the start on w * r_forward + (1-w) * r_energy, the frozen reward
    models of the two preference fine-tunes (no new labels)."""
    models = [str(runs_dir / run_id(env, seed, f"pref_{o}")) for o in OBJECTIVES]
    return [_task(results, runs_dir, env, seed, f"morl_learned_{w:g}", reward="frozen", reward_from=models,
                  reward_weights=[w, 1 - w], steps=steps, init_policy=str(start)) for w in weights]


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
    record = json.loads(path.read_text()) if path.exists() else {"env": env, "seed": seed, "episodes": episodes}
    if "soup" not in record:
        pref = [runs_dir / run_id(env, seed, f"pref_{o}") for o in OBJECTIVES]
        res = soup(pref, runs_dir / run_id(env, seed, "soup"), lambdas=lambdas, episodes=episodes,
                   objectives=list(OBJECTIVES), seed=seed + 50_000, progress=False)
        record.update(soup=res["points"], start=res["start"])
    for key, kind in (("morl", "morl"), ("morl_learned", "morl_learned")):
        if key in record:
            continue
        runs = load_soup_runs([runs_dir / run_id(env, seed, f"{kind}_{w:g}") for w in weights])
        record[key] = [{"w": w, "objectives": evaluate_objectives(run.model, run, list(OBJECTIVES), episodes,
                                                                  seed + 50_000)} for w, run in zip(weights, runs)]
    write_json(path, record)
    return record


def _means(points: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[p["objectives"][o]["mean"] for o in OBJECTIVES] for p in points])


FRONTS = {"soup": "rewarded soup (learned rewards)", "morl_learned": "MORL, learned rewards",
          "morl": "MORL, true reward (upper reference)"}


def summarize(results: Path, records: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    rows, per_env = [], {}
    for rec in records:
        pts = {k: _means(rec[k]) for k in FRONTS}
        start = _means([rec["start"]])
        ref = np.vstack([*pts.values(), start]).min(axis=0)
        hv = {k: hypervolume(p, ref) for k, p in pts.items()}
        row = {"env": rec["env"], "seed": rec["seed"], "ref": ref.tolist(), **{f"hv_{k}": v for k, v in hv.items()},
               **{f"ratio_{k}": hv["soup"] / hv[k] if hv[k] > 0 else None for k in ("morl_learned", "morl")},
               "soup_pareto_points": int(pareto_mask(pts["soup"]).sum()),
               "soup_endpoints": {o: pts["soup"][[0, -1], i].tolist() for i, o in enumerate(OBJECTIVES)},
               "start": dict(zip(OBJECTIVES, start[0].tolist()))}
        rows.append(row)
        per_env.setdefault(rec["env"], []).append(row)
    claims, table, envs = [], [], {}
    n, m = 2, len(settings["morl_weights"])
    for env, env_rows in per_env.items():
        envs[env] = {f"hv_{k}": dict(zip(("mean", "std"), seed_stats([r[f"hv_{k}"] for r in env_rows])))
                     for k in FRONTS}
        ratio = {}
        for k in ("morl_learned", "morl"):
            values = [r[f"ratio_{k}"] for r in env_rows if r[f"ratio_{k}"] is not None]
            ratio[k] = seed_stats(values) if values else (float("nan"), None)
            claims.append({"claim": f"{env}: soup hypervolume >= {CLAIM_RATIO}x that of {FRONTS[k]} at {n}/{m} of "
                                    f"its policy training", "baseline": k, "ratio_mean": ratio[k][0],
                           "ratio_std": ratio[k][1], "seeds": len(values), "holds": bool(ratio[k][0] >= CLAIM_RATIO)})
        table.append([env, len(env_rows),
                      *[mean_std_text(*seed_stats([r[f"hv_{k}"] for r in env_rows]), "{:.3g}") for k in FRONTS],
                      *[mean_std_text(*ratio[k], "{:.3f}") for k in ("morl_learned", "morl")]])
    summary = {"settings": settings, "envs": envs, "rows": rows, "claims": claims}
    write_json(results / "soups_summary.json", summary)
    lines = ["# Rewarded soups vs MORL (linear scalarization) on MuJoCo", "",
             f"Command: `{settings['command']}`", "",
             f"From each env's true-reward PPO start ({settings['start_steps']} steps), every policy fine-tunes for "
             f"{settings['steps']} steps. Soup: 2 preference fine-tunes ({settings['labels']} oracle labels each, "
             f"forward / energy), {settings['lambdas']} weight interpolations. MORL: one policy per w in "
             f"{settings['morl_weights']} on w*forward+(1-w)*energy, of the two soup fine-tunes' frozen reward models "
             f"(learned) or of the true reward terms (upper reference). Hypervolume above the worst value of each "
             f"objective over the start and all three fronts ({settings['episodes']} episodes per point); mean ± "
             f"sample std over seeds; ratio = soup / MORL per seed.", "",
             *markdown_table(["env", "seeds", "HV soup", "HV MORL learned", "HV MORL true", "soup / MORL learned",
                              "soup / MORL true"], table), "",
             *[f"- {c['claim']}: {'holds' if c['holds'] else 'does not hold'} ({c['ratio_mean']:.3f})" for c in claims]]
    (results / "soups.md").write_text("\n".join(lines) + "\n")
    for env in per_env:
        rec = min((r for r in records if r["env"] == env), key=lambda r: r["seed"])
        pts = {k: _means(rec[k]) for k in FRONTS}
        fronts = {f"{FRONTS['soup']}, 2 x {settings['labels']} labels": pts["soup"].tolist(),
                  **{f"{FRONTS[k]}, {m} weightings": pts[k][np.argsort(pts[k][:, 0])].tolist()
                     for k in ("morl_learned", "morl")}}
        plot_fronts(fronts, results / f"soups_{env.replace('/', '_')}.png", OBJECTIVES[0], OBJECTIVES[1],
                    title=f"{env}, seed {rec['seed']}", marks={"start": _means([rec["start"]])[0].tolist()},
                    along=([p["lambda"][0] for p in rec["soup"]], {o: pts["soup"][:, i].tolist()
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
    starts = {(e, s): start_runs / start_spec(e, s, start_steps).run_id for e, s in pairs}
    run_phase([t for e, s in pairs for t in finetune_tasks(results, runs_dir, starts[e, s], e, s, steps, args.labels,
                                                           weights)], args.workers)
    run_phase([t for e, s in pairs for t in learned_morl_tasks(results, runs_dir, starts[e, s], e, s, steps, weights)],
              args.workers)
    records = [evaluate_env_seed(results, runs_dir, e, s, weights, args.episodes, args.lambdas) for e, s in pairs]
    settings = {"command": command, "envs": envs, "seeds": seeds, "start_steps": start_steps, "steps": steps,
                "labels": args.labels, "morl_weights": weights, "lambdas": args.lambdas, "episodes": args.episodes}
    summary = summarize(results, records, settings)
    print(json.dumps({"claims": summary["claims"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
