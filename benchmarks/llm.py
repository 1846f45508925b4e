"""Preference fine-tuning of tiny local causal LMs: SFT / DPO / RPO / AIHF / AIHF-DPO over preference budgets and betas.

    python benchmarks/llm.py --tasks sentiment,sorting --budgets 16,64,256 --seeds 0,1,2 --betas 0.03,0.1,0.3,1.0
    python benchmarks/llm.py --tasks review --model models/smollm2 --name llm_review ...   # a real model (see
        # benchmarks/README.md for the settings committed)

A chat task (`review`) on a real pretrained model (`--model`, e.g. from `prefrl llm get-model smollm2-135m`):
its pairs and demonstrations are that model's own samples (`prefrl llm make-task review --model`), it is the
reference of every run, and `--lora-r`, `--epochs`, `--batch-size`, `--lr` and `--threads` size the training to
the machine. `--name` prefixes the output files (results/<name>_summary.json, <name>.md, <name>.png,
<name>_frontier.png).

Per task: one reference model (a 2-layer GPT-2 pretrained here on sloppy completions, seed 0) and,
per seed, 256 preference pairs (two reference samples per prompt, labelled by a Bradley-Terry
draw on the true reward) and 16 demonstrations (`prefrl llm make-task`); a run with budget N uses
the first N pairs. Every method trains with the defaults of `prefrl llm train` (lr 1e-4, 10 epochs
over the largest dataset, batch 16; AIHF-DPO prefers each demonstration over a new sample y' of the
current policy each time it enters a batch, `--ref-samples`) and is judged on 256 completions sampled for fresh
prompts: mean true reward and KL to the reference. Every method with a beta (dpo, rpo, aihf,
aihf-dpo) trains at each of `--betas`; SFT has no beta and sees no preferences, so it trains once
per seed and its rows repeat across budgets.

Claims, each method on its own (never the best of two), per task and budget:
- at the headline beta (the trainer's default, 0.1, when it is in `--betas`): dpo > reference,
  aihf > dpo and aihf-dpo > dpo on the mean true reward over seeds (KL shown, not matched);
- at matched KL: per method, the seed means at each beta give points (KL, reward), sorted by KL
  and joined linearly (the reward-KL frontier). Two methods are compared on KL_GRID evenly spaced
  KL values spanning the overlap of their KL ranges [max of the minima, min of the maxima]: the
  claim `aihf > dpo at matched KL` holds if aihf's interpolated reward is above dpo's at every grid
  point, does not hold if it is at or below it at every point, is `mixed` if the frontiers cross,
  and is undefined when the KL ranges do not overlap (nothing is extrapolated).

Writes results/llm_summary.json (rows with task, method, prefs, beta, seeds, true_reward_mean,
true_reward_std, kl_mean, kl_std, a `reference` row per task, the checks and the wall time),
results/llm.md (with the training step time of the tiny model), results/llm.png (headline beta:
reward over budgets) and results/llm_frontier.png (reward against KL, one line per method, per
task and budget). Sample std over seeds is ddof=1. A run whose train_log.json already holds the
same config is evaluated again, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.core.data import write_json  # noqa: E402
from prefrl.llm import tasks  # noqa: E402
from prefrl.llm.train import METHODS, REF_SAMPLES, LLMTrainConfig, load_model, train_llm  # noqa: E402
from prefrl.runs.sweep import group_records, mean_or_none, mean_std_text, seed_stats  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEMOS = 16
BETA_METHODS = ("dpo", "rpo", "aihf", "aihf-dpo")  # the methods with a beta (SFT has none)
CHALLENGERS = ("aihf", "aihf-dpo")  # each compared with dpo on its own
KL_GRID = 5  # KL values of the matched-KL comparison


def _subset(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("\n".join(src.read_text().splitlines()[:n]) + "\n")
    return dst


def _train(config: LLMTrainConfig) -> dict[str, Any]:
    """Train, or reuse a finished run of the same config (its train_log.json)."""
    log = Path(config.out) / "train_log.json"
    done = json.loads(log.read_text()) if log.is_file() else {}
    if done.get("config") != json.loads(json.dumps(config.__dict__)):
        train_llm(config, progress=False)
        done = json.loads(log.read_text())
    margin = done.get("terms", {}).get("demo_margin")  # AIHF-DPO: demonstration vs y' log-ratio margin
    return {"steps": done["steps"], "ms_per_step": done["ms_per_step"],
            "demo_margin_final": float(np.mean(margin[-10:])) if margin else None}


def run(task_names: list[str], budgets: list[int], seeds: list[int], methods: list[str], betas: list[float],
        work: Path, samples: int, pretrain_steps: int, ref_samples: str, model: str | None = None,
        train: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every run of the grid, trained (or reused) and evaluated; `model` is the reference of chat tasks, `train`
    extra LLMTrainConfig settings of every run (LoRA rank, epochs, batch size, learning rate)."""
    records = []
    for name in task_names:
        task = tasks.get_task(name)
        base = work / name
        for seed in seeds:
            data = base / f"seed{seed}"
            if not (data / "prefs.jsonl").exists():
                tasks.make_task(name, data, prefs=max(budgets), demos=DEMOS, seed=seed, pretrain_steps=pretrain_steps,
                                model=model if task.chat else None)
        # one reference model per task: the given chat model, or the tiny model pretrained for seed 0
        reference = Path(model) if task.chat else base / "seed0" / "reference"
        ref, tok = load_model(reference)
        for seed in seeds:
            r = tasks.evaluate(ref, ref, tok, task, n=samples, seed=1000 + seed)
            records.append({"task": name, "method": "reference", "prefs": 0, "beta": None, "seed": seed, **r,
                            "ms_per_step": None})
        for seed in seeds:
            data = base / f"seed{seed}"
            sft = None
            for n in budgets:
                prefs = _subset(data / "prefs.jsonl", data / f"prefs_{n}.jsonl", n)
                for method in methods:
                    if method == "sft" and sft is not None:  # no preferences, no beta: the same run at every budget
                        records.append({**sft, "prefs": n})
                        continue
                    for beta in ([None] if method == "sft" else betas):
                        label = f"{method}.{ref_samples}" if method == "aihf-dpo" else method
                        tag = f"{name}__{label}__P{n}" + ("" if beta is None else f"__b{beta:g}") + f"__seed{seed}"
                        out = work / "runs" / tag
                        config = LLMTrainConfig(model=str(reference), out=str(out), method=method, prefs=str(prefs),
                                                demos=str(data / "demos.jsonl"), seed=seed, ref_samples=ref_samples,
                                                **(train or {}), **({} if beta is None else {"beta": beta}))
                        result = _train(config)
                        model, _ = load_model(out)
                        r = tasks.evaluate(model, ref, tok, task, n=samples, seed=1000 + seed)
                        record = {"task": name, "method": method, "prefs": n, "beta": beta, "seed": seed, **r,
                                  "ref_samples": ref_samples if method == "aihf-dpo" else None, **result}
                        records.append(record)
                        if method == "sft":
                            sft = record
                        print(f"{name} {method} prefs={n} beta={beta} seed={seed}: true reward "
                              f"{r['true_reward_mean']:.3f}, KL {r['kl']:.2f}", file=sys.stderr, flush=True)
    return records


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows over seeds per task, method, budget and beta (std: sample std, ddof=1)."""
    groups = group_records(records, lambda r: (r["task"], r["method"], r["prefs"], r["beta"]))
    order = {m: i for i, m in enumerate(("reference", *METHODS))}
    rows = []
    for (task, method, prefs, beta), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2],
                                                                                 kv[0][3] or 0.0)):
        mean, std = seed_stats(r["true_reward_mean"] for r in rs)
        kl_mean, kl_std = seed_stats(r["kl"] for r in rs)
        rows.append({"task": task, "method": method, "prefs": prefs, "beta": beta,
                     "demos": DEMOS if method in ("sft", "aihf", "aihf-dpo") else 0,
                     "seeds": sorted(r["seed"] for r in rs), "true_reward_mean": mean, "true_reward_std": std,
                     "kl_mean": kl_mean, "kl_std": kl_std, "ms_per_step_mean": mean_or_none(r["ms_per_step"] for r in rs)})
    return rows


def headline_beta(betas: list[float]) -> float:
    """The trainer's default beta when it is in the grid, else the first beta of the grid."""
    default = LLMTrainConfig.beta
    return default if any(abs(b - default) < 1e-12 for b in betas) else betas[0]


def frontier(rows: list[dict[str, Any]], task: str, method: str, prefs: int) -> list[dict[str, Any]]:
    """The (seed-mean) rows of one method over betas, sorted by KL."""
    return sorted((r for r in rows if (r["task"], r["method"], r["prefs"]) == (task, method, prefs) and r["beta"] is not None),
                  key=lambda r: r["kl_mean"])


def matched_kl(front: list[dict[str, Any]], base: list[dict[str, Any]], grid: int = KL_GRID) -> dict[str, Any]:
    """Compare two frontiers on `grid` KL values spanning the overlap of their KL ranges (linear interpolation
    of the mean reward in the mean KL); status holds / does not hold / mixed / undefined (no overlap)."""
    if not front or not base:
        return {"status": "undefined", "holds": None, "kl_range": None, "reason": "a frontier is empty"}
    lo = max(front[0]["kl_mean"], base[0]["kl_mean"])
    hi = min(front[-1]["kl_mean"], base[-1]["kl_mean"])
    ranges = {"kl_range_method": [front[0]["kl_mean"], front[-1]["kl_mean"]],
              "kl_range_dpo": [base[0]["kl_mean"], base[-1]["kl_mean"]]}
    if hi < lo:
        return {"status": "undefined", "holds": None, "kl_range": None, **ranges,
                "reason": "the KL ranges do not overlap"}
    kls = np.linspace(lo, hi, grid) if hi > lo else np.array([lo])

    def interp(points):
        return np.interp(kls, [p["kl_mean"] for p in points], [p["true_reward_mean"] for p in points])

    diff = interp(front) - interp(base)
    status = "holds" if (diff > 0).all() else "does not hold" if (diff <= 0).all() else "mixed"
    return {"status": status, "holds": status == "holds", "kl_range": [float(lo), float(hi)], **ranges,
            "kl_grid": kls.tolist(), "reward": interp(front).tolist(), "reward_dpo": interp(base).tolist(),
            "diff_min": float(diff.min()), "diff_max": float(diff.max()), "diff_mean": float(diff.mean())}


def check_claims(rows: list[dict[str, Any]], beta: float) -> list[dict[str, Any]]:
    """Per task and budget: dpo > reference and each of aihf, aihf-dpo > dpo at `beta`; each of aihf, aihf-dpo >
    dpo at matched KL (see `matched_kl`)."""
    find = {(r["task"], r["method"], r["prefs"], r["beta"]): r for r in rows}
    checks = []
    for task in sorted({r["task"] for r in rows}):
        ref = next(r for r in rows if r["task"] == task and r["method"] == "reference")
        for n in sorted({r["prefs"] for r in rows if r["method"] == "dpo" and r["task"] == task}):
            dpo = find.get((task, "dpo", n, beta))
            if dpo is not None:
                checks.append({"kind": "headline", "task": task, "prefs": n, "beta": beta, "claim": "dpo > reference",
                               "value": dpo["true_reward_mean"], "against": ref["true_reward_mean"],
                               "kl": dpo["kl_mean"], "kl_against": 0.0,
                               "holds": dpo["true_reward_mean"] > ref["true_reward_mean"]})
                for m in CHALLENGERS:
                    if (row := find.get((task, m, n, beta))) is not None:
                        checks.append({"kind": "headline", "task": task, "prefs": n, "beta": beta, "claim": f"{m} > dpo",
                                       "value": row["true_reward_mean"], "against": dpo["true_reward_mean"],
                                       "kl": row["kl_mean"], "kl_against": dpo["kl_mean"],
                                       "holds": row["true_reward_mean"] > dpo["true_reward_mean"]})
            base = frontier(rows, task, "dpo", n)
            for m in CHALLENGERS:
                front = frontier(rows, task, m, n)
                if front:
                    checks.append({"kind": "matched_kl", "task": task, "prefs": n, "claim": f"{m} > dpo at matched KL",
                                   "betas": [r["beta"] for r in front], "betas_dpo": [r["beta"] for r in base],
                                   **matched_kl(front, base)})
    return checks


def _claim_line(c: dict[str, Any]) -> str:
    where = f"{c['task']}, {c['prefs']} prefs: {c['claim']}"
    if c["kind"] == "headline":
        return (f"- {where}: {c['value']:.3f} vs {c['against']:.3f} (KL {c['kl']:.2f} vs {c['kl_against']:.2f}) — "
                f"{'holds' if c['holds'] else 'does NOT hold'}")
    if c["status"] == "undefined":
        detail = ""
        if "kl_range_method" in c:
            a, b = c["kl_range_method"], c["kl_range_dpo"]
            detail = f" (KL {a[0]:.2f} to {a[1]:.2f} vs dpo's {b[0]:.2f} to {b[1]:.2f})"
        return f"- {where}: UNDEFINED, {c['reason']}{detail}"
    lo, hi = c["kl_range"]
    return (f"- {where}: over KL {lo:.2f} to {hi:.2f}, reward minus dpo's {c['diff_min']:+.3f} to {c['diff_max']:+.3f} "
            f"(mean {c['diff_mean']:+.3f}) — {c['status'].upper() if c['status'] != 'holds' else 'holds'}")


def write_outputs(rows, checks, results: Path, command: str, beta: float, betas: list[float], seconds: float,
                  name: str = "llm", model: str = "the tiny GPT-2 (2 layers, 64 wide, batch 16)", threads: int = 1) -> None:
    write_json(results / f"{name}_summary.json", {"command": command, "headline_beta": beta, "betas": betas,
                                                  "kl_grid_points": KL_GRID, "wall_seconds": seconds,
                                                  "rows": rows, "checks": checks})
    ms = [r["ms_per_step_mean"] for r in rows if r["ms_per_step_mean"] is not None]
    lines = [f"Produced by `{command}` ({os.cpu_count()} CPUs shared with other jobs, {threads} torch thread(s), "
             f"{seconds / 60:.1f} min wall time).", "",
             f"One training step of {model}: {np.mean(ms):.0f} ms on average "
             f"(range {min(ms):.0f}-{max(ms):.0f} ms over methods, budgets and betas; AIHF-DPO's includes sampling "
             "its y').", "",
             f"## Headline: beta = {beta:g}", "",
             "| task | method | prefs | demos | seeds | true reward (mean ± std) | KL to reference (mean ± std) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["beta"] is None or r["beta"] == beta:
            lines.append(f"| {r['task']} | {r['method']} | {r['prefs']} | {r['demos']} | {len(r['seeds'])} | "
                         f"{mean_std_text(r['true_reward_mean'], r['true_reward_std'], '{:.3f}')} | "
                         f"{mean_std_text(r['kl_mean'], r['kl_std'], '{:.2f}')} |")
    lines += ["", f"Claims at beta = {beta:g}, each method on its own (means over seeds; KL not matched):", ""]
    lines += [_claim_line(c) for c in checks if c["kind"] == "headline"]
    lines += ["", "## Reward-KL frontier", "",
              "Mean true reward (mean KL) over seeds per beta; SFT and the reference have no beta.", "",
              "| task | prefs | method | " + " | ".join(f"beta {b:g}" for b in betas) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in betas) + " |"]
    keys = sorted({(r["task"], r["prefs"]) for r in rows if r["beta"] is not None})
    for task, n in keys:
        for method in METHODS:
            cells = {r["beta"]: f"{r['true_reward_mean']:.3f} ({r['kl_mean']:.2f})" for r in rows
                     if (r["task"], r["method"], r["prefs"]) == (task, method, n) and r["beta"] is not None}
            if cells:
                lines.append(f"| {task} | {n} | {method} | " + " | ".join(cells.get(b, "") for b in betas) + " |")
    lines += ["", f"Claims at matched KL: per method the seed means at each beta are joined linearly in KL (the "
              f"frontier); aihf and aihf-dpo are each compared with dpo at {KL_GRID} KL values spanning the overlap "
              "of the two KL ranges. `holds`: above dpo at every one; `does not hold`: at or below it at every one; "
              "`mixed`: the frontiers cross; undefined: the KL ranges do not overlap (nothing is extrapolated).", ""]
    lines += [_claim_line(c) for c in checks if c["kind"] == "matched_kl"]
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    _plots(rows, results, beta, name)


def write_ref_samples(records: list[dict[str, Any]], results: Path, command: str, beta: float) -> None:
    """AIHF-DPO under each source of y': true reward, KL and the final demonstration-vs-y' margin over seeds."""
    groups = group_records([r for r in records if r["method"] != "reference"],
                           lambda r: (r["task"], r["prefs"], REF_SAMPLES.index(r["ref_samples"])))
    rows = []
    for (task, prefs, mode), rs in sorted(groups.items()):
        reward, reward_std = seed_stats(r["true_reward_mean"] for r in rs)
        kl, kl_std = seed_stats(r["kl"] for r in rs)
        margin, margin_std = seed_stats(r["demo_margin_final"] for r in rs)
        rows.append({"task": task, "prefs": prefs, "ref_samples": REF_SAMPLES[mode], "beta": beta,
                     "seeds": sorted(r["seed"] for r in rs), "true_reward_mean": reward, "true_reward_std": reward_std,
                     "kl_mean": kl, "kl_std": kl_std, "demo_margin_mean": margin, "demo_margin_std": margin_std})
    write_json(results / "llm_ref_samples.json", {"command": command, "beta": beta, "rows": rows})
    lines = [f"Produced by `{command}`.", "",
             f"AIHF-DPO at beta = {beta:g}, 16 demonstrations, each preferred over a completion y' that is: `policy`, a "
             "new sample of the policy being trained each time the demonstration enters a batch (the default); "
             "`fresh`, a new sample of the reference model; `once`, one reference sample per demonstration drawn "
             "before training. demo margin: the mean log-ratio margin (log pi/pi_ref of the demonstration minus that "
             "of its y', nats) over the last 10 training steps. Mean ± sample std over seeds.", "",
             "| task | prefs | y' | seeds | true reward | KL to reference | demo margin |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['prefs']} | {r['ref_samples']} | {len(r['seeds'])} | "
                     f"{mean_std_text(r['true_reward_mean'], r['true_reward_std'], '{:.3f}')} | "
                     f"{mean_std_text(r['kl_mean'], r['kl_std'], '{:.2f}')} | "
                     f"{mean_std_text(r['demo_margin_mean'], r['demo_margin_std'], '{:.1f}')} |")
    (results / "llm_ref_samples.md").write_text("\n".join(lines) + "\n")


def _plots(rows, results: Path, beta: float, name: str = "llm") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task_names = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(task_names), figsize=(6 * len(task_names), 4.5), squeeze=False)
    for ax, task in zip(axes[0], task_names):
        budgets = sorted({r["prefs"] for r in rows if r["task"] == task and r["method"] != "reference"})
        for method in METHODS:
            rs = sorted((r for r in rows if r["task"] == task and r["method"] == method and r["beta"] in (None, beta)),
                        key=lambda r: r["prefs"])
            if rs:
                ax.errorbar([budgets.index(r["prefs"]) for r in rs], [r["true_reward_mean"] for r in rs],
                            yerr=[r["true_reward_std"] or 0.0 for r in rs], marker="o", capsize=3, label=method)
        ref = next(r for r in rows if r["task"] == task and r["method"] == "reference")
        ax.axhline(ref["true_reward_mean"], ls=":", color="grey", label="reference model")
        ax.set_xticks(range(len(budgets)), [str(b) for b in budgets])
        ax.set(title=f"{task} (beta {beta:g})", xlabel="preference pairs", ylabel="true reward of samples (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results / f"{name}.png", dpi=110)
    plt.close(fig)

    keys = sorted({(r["task"], r["prefs"]) for r in rows if r["beta"] is not None})
    budgets = sorted({n for _, n in keys})
    fig, axes = plt.subplots(len(task_names), len(budgets), figsize=(4.5 * len(budgets), 3.8 * len(task_names)),
                             squeeze=False)
    colors = {m: f"C{i}" for i, m in enumerate(METHODS)}
    for i, task in enumerate(task_names):
        ref = next(r for r in rows if r["task"] == task and r["method"] == "reference")
        for j, n in enumerate(budgets):
            ax = axes[i][j]
            for method in BETA_METHODS:
                front = frontier(rows, task, method, n)
                if front:
                    ax.plot([r["kl_mean"] for r in front], [r["true_reward_mean"] for r in front], marker="o",
                            color=colors[method], label=method)
                    for r in front:
                        ax.annotate(f"{r['beta']:g}", (r["kl_mean"], r["true_reward_mean"]), fontsize=6,
                                    textcoords="offset points", xytext=(3, 3), color=colors[method])
            for r in rows:
                if (r["task"], r["method"], r["prefs"]) == (task, "sft", n):
                    ax.plot([r["kl_mean"]], [r["true_reward_mean"]], marker="*", ms=10, ls="", color=colors["sft"],
                            label="sft")
            ax.plot([0.0], [ref["true_reward_mean"]], marker="s", ls="", color="grey", label="reference")
            ax.set(title=f"{task}, {n} pairs", xlabel="KL to reference (mean over seeds)", ylabel="true reward (mean)")
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle("Reward-KL frontier over beta (numbers: beta)", fontsize=10)
    fig.tight_layout()
    fig.savefig(results / f"{name}_frontier.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="sentiment,sorting")
    p.add_argument("--budgets", default="16,64,256")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--betas", default="0.03,0.1,0.3,1.0",
                   help="betas at which every method with one (dpo, rpo, aihf, aihf-dpo) trains; the headline is the "
                        "trainer's default 0.1 when listed, else the first")
    p.add_argument("--ref-samples", default=LLMTrainConfig.ref_samples, choices=REF_SAMPLES,
                   help="AIHF-DPO's y': a new sample of the current policy each time a demonstration enters a batch "
                        "(policy: self-play), a new reference sample (fresh), or one reference sample drawn once (once)")
    p.add_argument("--compare-ref-samples", action="store_true",
                   help="instead of the grid: AIHF-DPO at the headline beta under each --ref-samples mode "
                        "(results/llm_ref_samples.md)")
    p.add_argument("--samples", type=int, default=256, help="completions sampled per evaluation")
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--work-dir", default="runs/llm", help="task data, reference models and fine-tuned models")
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--name", default="llm", help="prefix of the output files")
    p.add_argument("--model", metavar="DIR", help="pretrained chat model: the reference of chat tasks (review)")
    p.add_argument("--lora-r", type=int, default=LLMTrainConfig.lora_r, help="LoRA rank of every run (0: full)")
    p.add_argument("--epochs", type=int, default=LLMTrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=LLMTrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=LLMTrainConfig.lr)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        task_names = [t for t in args.tasks.split(",") if t]
        for t in task_names:
            if tasks.get_task(t).chat and not args.model:
                raise ValueError(f"task {t} samples a pretrained chat model: pass --model DIR")
        methods = [m for m in args.methods.split(",") if m]
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}: expected some of {', '.join(METHODS)}")
        budgets = [int(b) for b in args.budgets.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
        betas = sorted({float(b) for b in args.betas.split(",") if b})
        if any(b < 1 for b in budgets):
            raise ValueError(f"--budgets must be positive integers, got {args.budgets}")
        if not betas or any(not b > 0 for b in betas):
            raise ValueError(f"--betas must be positive numbers, got {args.betas!r}")
    except ValueError as exc:
        print(f"llm.py: error: {exc}", file=sys.stderr)
        return 2
    import transformers

    transformers.logging.set_verbosity_error()
    t0 = time.time()
    if args.compare_ref_samples:
        beta = headline_beta(betas)
        records = [rec for mode in REF_SAMPLES for rec in run(task_names, budgets, seeds, ["aihf-dpo"], [beta],
                                                              Path(args.work_dir), args.samples, args.pretrain_steps, mode)]
        results = Path(args.results_dir)
        results.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/llm.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_ref_samples(records, results, command.strip(), beta)
        print(json.dumps({"runs": len(records), "summary": str(results / "llm_ref_samples.json")}))
        return 0
    train = {"lora_r": args.lora_r, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    records = run(task_names, budgets, seeds, methods, betas, Path(args.work_dir), args.samples, args.pretrain_steps,
                  args.ref_samples, args.model, train)
    rows = aggregate(records)
    beta = headline_beta(betas)
    checks = check_claims(rows, beta)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/llm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    seconds = time.time() - t0
    model = "the tiny GPT-2 (2 layers, 64 wide, batch 16)"
    if args.model:
        model = f"{args.model} (batch {args.batch_size}" + (f", LoRA rank {args.lora_r})" if args.lora_r else ")")
    write_outputs(rows, checks, results, command.strip(), beta, betas, seconds, args.name, model, args.threads)
    print(json.dumps({"rows": len(rows), "seconds": seconds, "summary": str(results / f"{args.name}_summary.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
