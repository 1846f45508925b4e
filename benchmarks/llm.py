"""Preference fine-tuning of tiny local causal LMs: SFT / DPO / RPO / AIHF / AIHF-DPO over preference budgets.

    python benchmarks/llm.py --tasks sentiment,sorting --budgets 16,64,256 --seeds 0,1,2

Per task: one reference model (a 2-layer GPT-2 pretrained here on sloppy completions, seed 0) and,
per seed, 256 preference pairs (two reference samples per prompt, labelled by a Bradley-Terry
draw on the true reward) and 16 demonstrations (`prefrl llm make-task`); a run with budget N uses
the first N pairs. Every method trains with the defaults of `prefrl llm train` (lr 1e-4, beta 0.1,
10 epochs, batch 16) and is judged on 256 completions sampled for fresh prompts: mean true reward
and KL to the reference. SFT trains on the 16 demonstrations only, so its rows repeat across
budgets (it sees no preferences). Writes results/llm_summary.json (rows with task, method, prefs,
seeds, true_reward_mean, true_reward_std, kl_mean, and a `reference` row per task),
results/llm.md and results/llm.png, plus the training step time (ms/step) of the tiny model.
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
from prefrl.llm.train import METHODS, LLMTrainConfig, load_model, train_llm  # noqa: E402
from prefrl.runs.sweep import group_records, mean_or_none, mean_std_text, seed_stats  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEMOS = 16


def _subset(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("\n".join(src.read_text().splitlines()[:n]) + "\n")
    return dst


def run(task_names: list[str], budgets: list[int], seeds: list[int], methods: list[str], work: Path,
        samples: int, pretrain_steps: int) -> list[dict[str, Any]]:
    records = []
    for name in task_names:
        task = tasks.get_task(name)
        base = work / name
        for seed in seeds:
            data = base / f"seed{seed}"
            if not (data / "prefs.jsonl").exists():
                tasks.make_task(name, data, prefs=max(budgets), demos=DEMOS, seed=seed, pretrain_steps=pretrain_steps)
        reference = base / "seed0" / "reference"  # one reference model per task (seed 0's)
        ref, tok = load_model(reference)
        for seed in seeds:
            r = tasks.evaluate(ref, ref, tok, task, n=samples, seed=1000 + seed)
            records.append({"task": name, "method": "reference", "prefs": 0, "seed": seed, **r, "ms_per_step": None})
        for seed in seeds:
            data = base / f"seed{seed}"
            for n in budgets:
                prefs = _subset(data / "prefs.jsonl", data / f"prefs_{n}.jsonl", n)
                for method in methods:
                    out = work / "runs" / f"{name}__{method}__P{n}__seed{seed}"
                    result = train_llm(LLMTrainConfig(model=str(reference), out=str(out), method=method, prefs=str(prefs),
                                                      demos=str(data / "demos.jsonl"), seed=seed), progress=False)
                    model, _ = load_model(out)
                    r = tasks.evaluate(model, ref, tok, task, n=samples, seed=1000 + seed)
                    records.append({"task": name, "method": method, "prefs": n, "seed": seed, **r,
                                    "ms_per_step": result["ms_per_step"], "steps": result["steps"]})
                    print(f"{name} {method} prefs={n} seed={seed}: true reward {r['true_reward_mean']:.3f}, "
                          f"KL {r['kl']:.2f}", file=sys.stderr, flush=True)
    return records


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows over seeds (std: sample std, ddof=1)."""
    groups = group_records(records, lambda r: (r["task"], r["method"], r["prefs"]))
    order = {m: i for i, m in enumerate(("reference", *METHODS))}
    rows = []
    for (task, method, prefs), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
        mean, std = seed_stats(r["true_reward_mean"] for r in rs)
        rows.append({"task": task, "method": method, "prefs": prefs, "demos": DEMOS if method in ("sft", "aihf", "aihf-dpo") else 0,
                     "seeds": sorted(r["seed"] for r in rs), "true_reward_mean": mean, "true_reward_std": std,
                     "kl_mean": float(np.mean([r["kl"] for r in rs])),
                     "ms_per_step_mean": mean_or_none(r["ms_per_step"] for r in rs)})
    return rows


def check_claims(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DPO above the reference (every budget); AIHF or AIHF-DPO above DPO at 16 and 64 preferences."""
    find = {(r["task"], r["method"], r["prefs"]): r for r in rows}
    checks = []
    for task in sorted({r["task"] for r in rows}):
        ref = next(r for r in rows if r["task"] == task and r["method"] == "reference")
        for n in sorted({r["prefs"] for r in rows if r["method"] == "dpo" and r["task"] == task}):
            dpo = find[(task, "dpo", n)]
            checks.append({"task": task, "prefs": n, "claim": "dpo > reference", "value": dpo["true_reward_mean"],
                           "against": ref["true_reward_mean"], "holds": dpo["true_reward_mean"] > ref["true_reward_mean"]})
            if n in (16, 64):
                best = max((find[(task, m, n)] for m in ("aihf", "aihf-dpo") if (task, m, n) in find),
                           key=lambda r: r["true_reward_mean"], default=None)
                if best is not None:
                    checks.append({"task": task, "prefs": n, "claim": f"{best['method']} > dpo",
                                   "value": best["true_reward_mean"], "against": dpo["true_reward_mean"],
                                   "kl": best["kl_mean"], "kl_dpo": dpo["kl_mean"],
                                   "holds": best["true_reward_mean"] > dpo["true_reward_mean"]})
    return checks


def write_outputs(rows, checks, results: Path, command: str) -> None:
    write_json(results / "llm_summary.json", {"command": command, "rows": rows, "checks": checks})
    ms = [r["ms_per_step_mean"] for r in rows if r["ms_per_step_mean"] is not None]
    lines = [f"Produced by `{command}` ({os.cpu_count()} CPUs, 1 torch thread).", "",
             f"One training step of the tiny GPT-2 (2 layers, 64 wide, batch 16): {np.mean(ms):.0f} ms on average "
             f"(range {min(ms):.0f}-{max(ms):.0f} ms over methods and budgets).", "",
             "| task | method | prefs | demos | seeds | true reward (mean ± std) | KL to reference |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['prefs']} | {r['demos']} | {len(r['seeds'])} | "
                     f"{mean_std_text(r['true_reward_mean'], r['true_reward_std'], '{:.3f}')} | {r['kl_mean']:.2f} |")
    lines += ["", "Claims (means over seeds):", ""]
    for c in checks:
        kl = f" (KL {c['kl']:.2f} vs {c['kl_dpo']:.2f})" if "kl" in c else ""
        lines.append(f"- {c['task']}, {c['prefs']} prefs: {c['claim']}: {c['value']:.3f} vs {c['against']:.3f}{kl} — "
                     f"{'holds' if c['holds'] else 'does NOT hold'}")
    (results / "llm.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task_names = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(task_names), figsize=(6 * len(task_names), 4.5), squeeze=False)
    for ax, task in zip(axes[0], task_names):
        budgets = sorted({r["prefs"] for r in rows if r["task"] == task and r["method"] != "reference"})
        for method in METHODS:
            rs = sorted((r for r in rows if r["task"] == task and r["method"] == method), key=lambda r: r["prefs"])
            if rs:
                ax.errorbar([budgets.index(r["prefs"]) for r in rs], [r["true_reward_mean"] for r in rs],
                            yerr=[r["true_reward_std"] or 0.0 for r in rs], marker="o", capsize=3, label=method)
        ref = next(r for r in rows if r["task"] == task and r["method"] == "reference")
        ax.axhline(ref["true_reward_mean"], ls=":", color="grey", label="reference model")
        ax.set_xticks(range(len(budgets)), [str(b) for b in budgets])
        ax.set(title=task, xlabel="preference pairs", ylabel="true reward of samples (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results / "llm.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="sentiment,sorting")
    p.add_argument("--budgets", default="16,64,256")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--samples", type=int, default=256, help="completions sampled per evaluation")
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--work-dir", default="runs/llm", help="task data, reference models and fine-tuned models")
    p.add_argument("--results-dir", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        task_names = [t for t in args.tasks.split(",") if t]
        for t in task_names:
            tasks.get_task(t)
        methods = [m for m in args.methods.split(",") if m]
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}: expected some of {', '.join(METHODS)}")
        budgets = [int(b) for b in args.budgets.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
        if any(b < 1 for b in budgets):
            raise ValueError(f"--budgets must be positive integers, got {args.budgets}")
    except ValueError as exc:
        print(f"llm.py: error: {exc}", file=sys.stderr)
        return 2
    import transformers

    transformers.logging.set_verbosity_error()
    t0 = time.time()
    records = run(task_names, budgets, seeds, methods, Path(args.work_dir), args.samples, args.pretrain_steps)
    rows = aggregate(records)
    checks = check_claims(rows)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/llm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_outputs(rows, checks, results, command.strip())
    print(json.dumps({"rows": len(rows), "seconds": time.time() - t0, "summary": str(results / "llm_summary.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
