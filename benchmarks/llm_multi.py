"""Two objectives at once on the LLM path: rewarded soups, MODPO and loss weighting on the tiny sentiment task.

    python benchmarks/llm_multi.py --seeds 0,1,2 --weights 0.1,0.3,0.5,0.7,0.9

Objective A is `sentiment` ((positive - negative words) / 6), objective B is `calm` (minus the share of sentiment
words, positive or negative): more positive words raise A and lower B. Per seed, `prefrl llm make-task sentiment`
builds the tiny reference (seed-dependent) and 256 pairs of its samples, labelled by Bradley-Terry draws on A,
on B, and on w*A + (1-w)*B for each w of `--weights` (the same pairs, other labels). Every model trains with
`prefrl llm train`'s defaults (beta 0.1, lr 1e-4, 10 epochs, batch 16) from that reference:
- endpoints: DPO on A's labels and DPO on B's labels (w = 1 and w = 0 of every front below);
- rewarded soups (Rame et al. 2023): the 11 weight interpolations of the two endpoints (`prefrl llm soup`);
- MODPO (Zhou et al. 2023): `--method modpo` on A's labels with the B endpoint's implicit reward as the margin,
  `--weights w,1-w`, one model per w;
- loss weighting: DPO on the mixed labels of w, one model per w.
Each model is scored on 256 completions for fresh prompts (seed 123): both objectives and the KL to the reference.

Hypervolume per seed above one reference point: the worst value of each objective over the reference model and
every point of the three fronts; mean ± sample std (ddof=1) over seeds. Claims measured (the MODPO paper's):
MODPO's hypervolume >= loss weighting's and >= the soup's, on the seed mean. Cost: soups train 2 models, MODPO
and loss weighting 2 + len(--weights) each (MODPO's margin model is the B endpoint).

Outputs: results/llm_multi_runs/*.json (each model's scores), results/llm_multi_summary.json, llm_multi.md,
llm_multi.png (seed 0's fronts). Models already trained with the same config are evaluated again, not retrained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core.data import write_json  # noqa: E402
from prefrl.core.pareto import hypervolume  # noqa: E402
from prefrl.llm import tasks  # noqa: E402
from prefrl.llm.soup import evaluate_objectives, soup_models  # noqa: E402
from prefrl.llm.train import LLMTrainConfig, load_model, train_llm  # noqa: E402
from prefrl.runs.plotting import plot_fronts  # noqa: E402
from prefrl.runs.sweep import markdown_table, mean_std_text, seed_stats  # noqa: E402

ROOT = Path(__file__).resolve().parent
TASK, OBJECTIVES = "sentiment", ("sentiment", "calm")
METHODS = ("soup", "modpo", "loss_weighting")


def mixed(w: float) -> str:
    return f"{w:g}*{OBJECTIVES[0]}+{1 - w:g}*{OBJECTIVES[1]}"


def make_data(work: Path, seed: int, weights: list[float], prefs: int) -> dict[str, Path]:
    """Pair files labelled by A, by B and by each mix, all of the same pairs of the same reference."""
    labels = {"A": OBJECTIVES[0], "B": OBJECTIVES[1], **{f"w{w:g}": mixed(w) for w in weights}}
    out = {}
    for key, objective in labels.items():
        d = work / f"seed{seed}" / f"data_{key}"
        if not (d / "prefs.jsonl").exists():
            tasks.make_task(TASK, d, prefs=prefs, demos=1, seed=seed, objective=objective)
        out[key] = d
    first = load_model(out["A"] / "reference")[0].state_dict()
    for d in out.values():  # make_task builds the reference from the seed: the same weights every time
        other = load_model(d / "reference")[0].state_dict()
        if not all(torch.equal(first[k], other[k]) for k in first):
            raise RuntimeError(f"the reference of {d} differs from {out['A']}'s: the pairs are not comparable")
    return out


def train(work: Path, name: str, **values: Any) -> Path:
    out = work / name
    config = LLMTrainConfig(out=str(out), kl_samples=0, **values)
    log = out / "train_log.json"
    if not (log.exists() and json.loads(log.read_text()).get("config") == config.__dict__):
        train_llm(config, progress=False)
    return out


def score(results: Path, seed: int, method: str, w: float, model_dir: Path, reference: Path, samples: int) -> dict:
    path = results / "llm_multi_runs" / f"seed{seed}_{method}_w{w:g}.json"
    model, tok = load_model(model_dir)
    ref, _ = load_model(reference)
    res = evaluate_objectives(model, ref, tok, tasks.get_task(TASK), list(OBJECTIVES), n=samples, seed=123)
    record = {"seed": seed, "method": method, "w": w, "model": str(model_dir), **res}
    write_json(path, record)
    return record


def run_seed(work: Path, results: Path, seed: int, weights: list[float], prefs: int, samples: int) -> dict[str, Any]:
    data = make_data(work, seed, weights, prefs)
    ref = data["A"] / "reference"
    base = dict(model=str(ref), seed=seed)
    sd = work / f"seed{seed}"
    ends = {1.0: train(sd, "dpo_A", prefs=str(data["A"] / "prefs.jsonl"), **base),
            0.0: train(sd, "dpo_B", prefs=str(data["B"] / "prefs.jsonl"), **base)}
    fronts: dict[str, list[dict]] = {m: [] for m in METHODS}
    end_scores = {w: score(results, seed, "endpoint", w, d, ref, samples) for w, d in ends.items()}
    for w in weights:
        m = train(sd, f"modpo_w{w:g}", method="modpo", prefs=str(data["A"] / "prefs.jsonl"),
                  margin_model=str(ends[0.0]), weights=f"{w:g},{1 - w:g}", **base)
        fronts["modpo"].append(score(results, seed, "modpo", w, m, ref, samples))
        lw = train(sd, f"dpo_w{w:g}", prefs=str(data[f"w{w:g}"] / "prefs.jsonl"), **base)
        fronts["loss_weighting"].append(score(results, seed, "loss_weighting", w, lw, ref, samples))
    for method in ("modpo", "loss_weighting"):
        fronts[method] = [end_scores[0.0], *fronts[method], end_scores[1.0]]
    soup = soup_models([ends[1.0], ends[0.0]], TASK, sd / "soup", lambdas=11, objectives=list(OBJECTIVES),
                       n=samples, seed=123, progress=False)
    fronts["soup"] = [{"w": p["lambda"][0], **p} for p in soup["points"]][::-1]
    write_json(results / "llm_multi_runs" / f"seed{seed}_soup.json", soup)
    return {"seed": seed, "fronts": fronts, "reference": soup["start"]}


def _pts(front: list[dict]) -> np.ndarray:
    return np.array([[p["objectives"][o] for o in OBJECTIVES] for p in front])


def summarize(results: Path, seeds_out: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for s in seeds_out:
        ref_pt = np.vstack([_pts([s["reference"]]), *[_pts(f) for f in s["fronts"].values()]]).min(axis=0)
        rows.append({"seed": s["seed"], "ref": ref_pt.tolist(),
                     **{f"hv_{m}": hypervolume(_pts(s["fronts"][m]), ref_pt) for m in METHODS},
                     **{f"max_kl_{m}": max(p["kl"] for p in s["fronts"][m]) for m in METHODS}})
    stats = {m: seed_stats([r[f"hv_{m}"] for r in rows]) for m in METHODS}
    claims = [{"claim": f"MODPO hypervolume >= {other}'s", "modpo": stats["modpo"][0], other: stats[other][0],
               "holds": bool(stats["modpo"][0] >= stats[other][0])} for other in ("loss_weighting", "soup")]
    summary = {"settings": settings, "rows": rows,
               "hypervolume": {m: {"mean": stats[m][0], "std": stats[m][1]} for m in METHODS}, "claims": claims,
               "fronts": {str(s["seed"]): {m: [{"w": p["w"], **p["objectives"], "kl": p["kl"]} for p in f]
                                           for m, f in s["fronts"].items()} for s in seeds_out}}
    write_json(results / "llm_multi_summary.json", summary)
    cost = {"soup": 2, "modpo": 2 + len(settings["weights"]), "loss_weighting": 2 + len(settings["weights"])}
    lines = ["# Two objectives on the LLM path: rewarded soups, MODPO, loss weighting", "",
             f"Command: `{settings['command']}` ({settings['wall_seconds']:.0f} s)", "",
             f"Tiny `{TASK}` task, objectives {OBJECTIVES[0]} (A) and {OBJECTIVES[1]} (B); {settings['prefs']} pairs "
             f"per labelling, {len(settings['seeds'])} seeds; hypervolume above the worst value of each objective "
             f"over the reference and every front, mean ± sample std over seeds.", "",
             *markdown_table(["method", "models trained", "hypervolume", "largest KL on the front"],
                             [[m, cost[m], mean_std_text(*stats[m], "{:.4f}"),
                               mean_std_text(*seed_stats([r[f"max_kl_{m}"] for r in rows]), "{:.2f}")]
                              for m in METHODS]), "",
             *[f"- {c['claim']}: {'holds' if c['holds'] else 'does not hold'}" for c in claims]]
    (results / "llm_multi.md").write_text("\n".join(lines) + "\n")
    s0 = seeds_out[0]
    plot_fronts({m.replace("_", " "): _pts(s0["fronts"][m]).tolist() for m in METHODS}, results / "llm_multi.png",
                OBJECTIVES[0], OBJECTIVES[1], title=f"{TASK}, seed {s0['seed']}: fronts from w=0 (B) to w=1 (A)",
                marks={"reference": _pts([s0["reference"]])[0].tolist()})
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--weights", default="0.1,0.3,0.5,0.7,0.9", help="MODPO's and loss weighting's w (weight of A)")
    p.add_argument("--prefs", type=int, default=256)
    p.add_argument("--samples", type=int, default=256, help="completions scored per model")
    p.add_argument("--work-dir", default="runs/llm_multi")
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    command = "python benchmarks/llm_multi.py " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
        weights = [float(w) for w in args.weights.split(",") if w]
        if not seeds or not weights or any(not 0 < w < 1 for w in weights):
            raise ValueError(f"--weights {args.weights!r}: expected numbers strictly between 0 and 1")
    except ValueError as exc:
        print(f"llm_multi.py: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    t0 = time.time()
    work, results = Path(args.work_dir), Path(args.results_dir)
    out = [run_seed(work, results, s, weights, args.prefs, args.samples) for s in seeds]
    settings = {"command": command, "seeds": seeds, "weights": weights, "prefs": args.prefs,
                "samples": args.samples, "wall_seconds": time.time() - t0}
    summary = summarize(results, out, settings)
    print(json.dumps({"hypervolume": summary["hypervolume"], "claims": summary["claims"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
