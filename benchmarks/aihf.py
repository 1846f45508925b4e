"""AIHF (demonstrations + preferences) against preference-only training, IRL and behaviour cloning.

    python benchmarks/aihf.py --setting prefrl --envs Hopper-v5,HalfCheetah-v5,Walker2d-v5 --budgets 0,25,100,400 \\
        --demos 1,4 --seeds 0,1,2 --steps 150000 --workers 2
    python benchmarks/aihf.py --setting paper --envs Hopper-v5 --budgets 0 --demos 1 --methods irl --seeds 0 \\
        --steps 150000 --workers 1
    python benchmarks/aihf.py --ablation --envs Hopper-v5 --seeds 0,1,2 --steps 150000 --workers 2

A setting is a `prefrl train --config` file under benchmarks/configs/: `prefrl` (aihf.yaml: PPO, state-only
reward, the IRL term on ML-IRL's schedule) or `paper` (aihf_paper.yaml: ML-IRL/AIHF's SAC setting). Where each
value comes from is in benchmarks/aihf.md.

The expert behind the demonstrations is the best (by its final true-reward evaluation) of three PPO runs on the
true reward (`--expert-steps`, seeds 0-2), exactly the true-reward baseline runs of `benchmarks/mujoco_sweep.py`, so
they are shared with (and cached by) that sweep; nothing is downloaded. As ML-IRL and AIHF's data collection does,
its policy is rolled out with sampled actions and only episodes reaching 0.8x its deterministic return are kept
(`prefrl demos record --stochastic --min-return`); a run with D demonstrations uses the first D of them.

Methods, each trained for `--steps` env steps and judged on the true return (10 episodes):
- `aihf`: `prefrl train --config SETTING --demos FILE --demo-episodes D --labels L` (W_D = W_P = 1), L > 0;
- `preference`: `prefrl train --config SETTING --labels L` (no demonstrations), L > 0;
- `irl`: `prefrl train --config SETTING --demos FILE --demo-episodes D --labels 0` (AIHF at budget 0);
- `bc`: `prefrl bc --demos FILE --demo-episodes D` (no environment interaction).
All labels come from the oracle teacher with uniform queries, except under `--variant now-converge-offline`: there a
run's L labels are pairs given once before training (`--pref-data`), segments of two different expert candidates'
sampled-action episodes side by side, as the AIHF prototype's preference data (benchmarks/aihf.md).

`--ablation` runs IRL alone (1 demonstration) under each variant of `VARIANTS`: the IRL term as it was, then one
change at a time towards the prefrl setting, and back from it; `results/aihf_ablation.md` is the table.

Outputs: `results/aihf_runs/*.json` (one record per run; the runs themselves stay in `--runs-dir`),
`results/aihf_summary.json` (rows with env, setting, method, labels, demos, seeds, true_return_mean/std (sample std,
ddof=1), demo_return ... and the checks of the claims below), `results/aihf.md`, `results/aihf.png` (true return
vs preference budget per method, one panel per env and setting) and `results/aihf_ablation.md`. Stopped sweeps
resume as in mujoco_sweep.py.

Claims checked per setting (means over seeds, each method on its own): with 1 demonstration and 25 or 100 labels
AIHF beats preference-only and beats IRL alone; IRL alone reaches 0.8x the demonstrations' return, and reaches PPO
on the true reward at the same env steps (the expert candidates' own evaluations at that step: a matched-cost
reference, as the 0.8x target is the return of an expert trained twice as long).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import mujoco_sweep  # noqa: E402
from prefrl.core.data import write_json  # noqa: E402
from prefrl.core.demos import Demonstrations  # noqa: E402
from prefrl.feedback.offline import offline_comparisons  # noqa: E402
from prefrl.feedback.teachers import make_teacher  # noqa: E402
from prefrl.runs.bc import BCConfig  # noqa: E402
from prefrl.runs.config import TrainConfig  # noqa: E402
from prefrl.runs.options import read_config_file  # noqa: E402
from prefrl.runs.sweep import (  # noqa: E402
    IncompatibleResults,
    Progress,
    Task,
    group_records,
    markdown_table,
    mean_or_none,
    mean_std_text,
    read_record,
    run_local,
    run_ray,
    seed_stats,
)
from prefrl.sb3.envs import check_env_id  # noqa: E402
from prefrl.sb3.policies import record_demos  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = Path(__file__).resolve().parent / "configs"
SETTINGS = {"prefrl": CONFIGS / "aihf.yaml", "paper": CONFIGS / "aihf_paper.yaml"}
METHODS = ("aihf", "preference", "irl", "bc")
DEMO_RETURN_FRACTION = 0.8  # demonstrations: sampled-action episodes reaching this share of the expert's return
DEMOS_RECORDED = 4  # episodes recorded per env whatever --demos asks, so every grid reads the same demonstrations

OFFLINE = "offline_prefs"  # a variant key, not a TrainConfig field: labels come from an offline set (pref_data)
OFFLINE_EPISODES = 4  # sampled-action episodes recorded of each expert candidate for the offline sets

# IRL alone, one change at a time: from the IRL term as it was (PPO, state-action reward, 100 minibatch steps at
# 3e-4 per refit every 3000 steps, L2 0.1 on returns, inputs re-standardized every refit) to the prefrl setting,
# and single changes back from it. Each is a set of TrainConfig overrides on top of the prefrl setting.
BEFORE = {"reward_inputs": ["obs", "act"], "demo_updates": 100, "demo_lr": 3e-4, "demo_batch": 64,
          "demo_weight_decay": 1e-4, "demo_l2": 0.1, "refit_every": 3000, "reward_renormalize": "every"}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "before": ("the IRL term before this change", BEFORE),
    "before+state": ("before, with a state-only reward", {**BEFORE, "reward_inputs": ["obs"]}),
    "before+schedule": ("before, with ML-IRL's schedule (1 full-batch 1e-4 step per 2000 steps, inputs fixed)",
                        {"reward_inputs": ["obs", "act"]}),
    "now": ("state-only reward and ML-IRL's schedule (the prefrl setting)", {}),
    "now-renorm": ("now, inputs re-standardized at every refit", {"reward_renormalize": "every"}),
    "now-minibatch": ("now, minibatches of 64 segments instead of the full batch", {"demo_batch": 64}),
    "now-100steps": ("now, 100 steps per refit", {"demo_updates": 100}),
    "now-refit5000": ("now, a refit every 5000 steps (ML-IRL's cadence)", {"refit_every": 5000}),
    "now-absorbing-slow": ("now, the absorbing reward at the network's learning rate (1e-4, not 1e-2)",
                           {"demo_absorbing_lr": 1e-4}),
    "now-policy-zero": ("now, the policy's reward zero at its own mean reward, not at the learned absorbing reward",
                        {"demo_zero": "policy"}),
    "now-raw-zero": ("now, the policy's reward zero at the network's output 0, as ML-IRL's SAC sees it",
                     {"demo_zero": "raw"}),
    "now-converge": ("now, the preference term also fitted to held-out convergence at every refit (two timescales)",
                     {"pref_fit": "converge"}),
    "now-converge-labels-end": ("now-converge, with what ending an episode is worth learned from the labels alone "
                                "(the IRL term leaves the absorbing reward where it is)",
                                {"pref_fit": "converge", "demo_absorbing_lr": 0.0}),
    "now-converge-offline": ("now-converge, with the L labels given once before training: pairs of segments of "
                             "different expert candidates' episodes (the AIHF prototype's preference data), for "
                             "AIHF and preference-only alike", {"pref_fit": "converge", OFFLINE: True}),
    "now-entropy": ("now, PPO with an entropy bonus (ent_coef 0.01) that keeps it exploring", {"algo_kwargs": {"ent_coef": 0.01}}),
    "state": ("a state-only reward (on top of any setting)", {"reward_inputs": ["obs"]}),
}


@dataclass(frozen=True)
class AihfSpec:
    """One run of the benchmark."""

    env: str
    method: str
    labels: int
    demos: int
    seed: int
    steps: int
    setting: str = "prefrl"
    variant: str = "-"
    demo_weight: float = 1.0

    @property
    def run_id(self) -> str:
        env = self.env.replace("/", "_")
        weight = f"__WD{self.demo_weight:g}" if self.demo_weight != 1.0 else ""
        variant = f"__{self.variant}" if self.variant != "-" else ""
        return (f"{env}__{self.setting}{variant}__{self.method}__L{self.labels}__D{self.demos}{weight}"
                f"__s{self.steps}__seed{self.seed}")


def grid(envs: list[str], budgets: list[int], demos: list[int], methods: list[str], seeds: list[int], steps: int,
         setting: str, demo_weights: tuple[float, ...] = (1.0,), variant: str = "-") -> list[AihfSpec]:
    """Every run: AIHF and preference-only at each positive budget, IRL and BC at budget 0."""
    if variant != "-":  # runs a variant cannot change are the plain grid's
        kept = [m for m in methods if m != "bc" and not (m == "irl" and labels_only(variant))
                and not (m == "preference" and joint_only(variant))]
        return [AihfSpec(s.env, s.method, s.labels, s.demos, s.seed, s.steps, s.setting, variant, s.demo_weight)
                for s in grid(envs, budgets, demos, kept, seeds, steps, setting, demo_weights)]
    specs = []
    for env in envs:
        for seed in seeds:
            for labels in budgets:
                if labels and "preference" in methods:
                    specs.append(AihfSpec(env, "preference", labels, 0, seed, steps, setting))
                for d in demos:
                    method = "aihf" if labels else "irl"
                    if method in methods:
                        specs += [AihfSpec(env, method, labels, d, seed, steps, setting, demo_weight=w)
                                  for w in demo_weights]
            if "bc" in methods:
                specs += [AihfSpec(env, "bc", 0, d, seed, 0, setting) for d in demos]
    return specs


def ablation_grid(envs: list[str], seeds: list[int], steps: int, variants: list[str]) -> list[AihfSpec]:
    """IRL alone with 1 demonstration under each variant; `now` is the prefrl grid's own IRL run (shared)."""
    return [AihfSpec(env, "irl", 0, 1, seed, steps, "prefrl", "-" if variant == "now" else variant)
            for env in envs for variant in variants for seed in seeds]


# ----------------------------------------------------------------- experts + demos
def expert_specs(env: str, expert_steps: int) -> list[mujoco_sweep.RunSpec]:
    """The three true-reward PPO runs the expert is chosen from (mujoco_sweep's baseline runs)."""
    return [mujoco_sweep.RunSpec(env, "ppo", 0, "-", "-", seed, expert_steps) for seed in (0, 1, 2)]


def ensure_expert(env: str, expert_steps: int, results: Path, expert_runs: Path, workers: int) -> dict[str, Any]:
    """Train (or reuse) the candidate experts; returns the best one's record."""
    specs = expert_specs(env, expert_steps)
    todo = [mujoco_sweep.make_task(s, results, expert_runs) for s in specs
            if _read_ok(mujoco_sweep.record_path(results, s)) is None]
    if todo:
        print(f"aihf.py: training {len(todo)} true-reward PPO run(s) of {env} to pick the expert from", file=sys.stderr)
        run_local(todo, workers, Progress(len(todo), 0))
    records = [_read_ok(mujoco_sweep.record_path(results, s)) for s in specs]
    if any(r is None for r in records):
        raise RuntimeError(f"an expert run of {env} failed; see {results / 'runs'}")
    best = max(records, key=lambda r: r["metrics"]["true_return"])
    return {"run_id": best["run_id"], "run_dir": str(expert_runs / best["run_id"]),
            "true_return": best["metrics"]["true_return"], "candidates": {r["run_id"]: r["metrics"]["true_return"]
                                                                          for r in records}}


def _read_ok(path: Path) -> dict[str, Any] | None:
    try:
        rec = read_record(path)
    except IncompatibleResults:
        raise
    except ValueError:
        return None
    return rec if rec is not None and rec["status"] == "ok" else None


def ensure_demos(env: str, expert: dict[str, Any], episodes: int, demo_dir: Path) -> Path:
    """Record (or reuse) `episodes` sampled-action episodes of the expert that reach 0.8x its return."""
    path = demo_dir / f"{env.replace('/', '_')}.npz"
    min_return = DEMO_RETURN_FRACTION * expert["true_return"]
    if path.exists():
        try:
            demos = Demonstrations.load(path)
            if (demos.meta.get("policy") == expert["run_dir"] and len(demos) >= episodes
                    and demos.meta.get("min_return") == min_return and not demos.meta.get("deterministic")):
                return path
        except ValueError:
            pass  # corrupt: record again
    demo_dir.mkdir(parents=True, exist_ok=True)
    record_demos(env, expert["run_dir"], episodes, seed=0, deterministic=False, min_return=min_return).save(path)
    return path


# ------------------------------------------------------------------------ tasks
def offline_variant(variant: str) -> bool:
    """Whether a variant's labels are an offline set made before training instead of the learner's own queries."""
    return bool(VARIANTS.get(variant, ("", {}))[1].get(OFFLINE))


def ensure_offline_sources(env: str, expert: dict[str, Any], expert_runs: Path, pref_dir: Path) -> list[Path]:
    """Record (or reuse) OFFLINE_EPISODES sampled-action episodes of each expert candidate: policies of varied
    quality, as the AIHF prototype's three SAC policies."""
    paths = []
    for run_id in sorted(expert["candidates"]):
        path = pref_dir / f"{run_id}.npz"
        try:
            ok = len(Demonstrations.load(path)) >= OFFLINE_EPISODES
        except (OSError, ValueError):
            ok = False
        if not ok:
            pref_dir.mkdir(parents=True, exist_ok=True)
            record_demos(env, expert_runs / run_id, OFFLINE_EPISODES, seed=100, deterministic=False).save(path)
        paths.append(path)
    return paths


def ensure_pref_data(spec: AihfSpec, sources: list[Path], pref_dir: Path) -> Path:
    """The offline set of a run: spec.labels pairs from the candidates' episodes, labelled by the oracle, drawn with
    the run's seed (so seeds differ in their data as they do with online queries)."""
    segment_len = read_config_file(str(SETTINGS[spec.setting]), TrainConfig).get("segment_len", TrainConfig.segment_len)
    path = pref_dir / f"{spec.env.replace('/', '_')}__L{spec.labels}__H{segment_len}__seed{spec.seed}.npz"
    if not path.exists():
        offline_comparisons([Demonstrations.load(p) for p in sources], spec.labels, make_teacher("oracle"),
                            segment_len=segment_len, rng=np.random.default_rng([spec.seed, spec.labels])).save(path)
    return path


def train_config(spec: AihfSpec, demo_file: Path, out: str, pref_file: Path | None = None) -> dict[str, Any]:
    """The `prefrl train` options of a run: its setting's config file, the variant, then the run's own values (an
    offline variant's labels are the pairs of `pref_file`)."""
    with_demos = spec.method in ("aihf", "irl")
    overrides = dict(VARIANTS.get(spec.variant, ("", {}))[1])
    offline = overrides.pop(OFFLINE, False) and spec.labels > 0
    if offline and pref_file is None:
        raise ValueError(f"variant {spec.variant} learns from an offline preference set: pass its file")
    values = {**read_config_file(str(SETTINGS[spec.setting]), TrainConfig), **overrides}
    values.update(env=spec.env, out=out, seed=spec.seed, steps=spec.steps, labels=0 if offline else spec.labels,
                  pref_data=str(pref_file) if offline else None,
                  demos=str(demo_file) if with_demos else None, demo_episodes=spec.demos if with_demos else None,
                  demo_weight=spec.demo_weight)
    return asdict(TrainConfig(**values))


def make_task(spec: AihfSpec, demo_file: Path, results: Path, runs_dir: Path, pref_file: Path | None = None) -> Task:
    """The `prefrl train` (or `prefrl bc`) config of one run."""
    out = str(runs_dir / spec.run_id)
    if spec.method == "bc":
        config = asdict(BCConfig(env=spec.env, demos=str(demo_file), out=out, demo_episodes=spec.demos, seed=spec.seed))
    else:
        config = train_config(spec, demo_file, out, pref_file)
    return Task(spec.run_id, config, str(record_path(results, spec)), {"spec": asdict(spec), "method": spec.method})


def record_path(results: Path, spec: AihfSpec) -> Path:
    return results / "aihf_runs" / f"{spec.run_id}.json"


# -------------------------------------------------------------------- aggregate
def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows over seeds (std: sample std, ddof=1), one per env / setting / variant / method / budget / demos."""
    groups = group_records(records, lambda r: (
        r["spec"]["env"], r["spec"].get("setting", "prefrl"), r["spec"].get("variant", "-"), r["spec"]["method"],
        r["spec"]["labels"], r["spec"]["demos"], r["spec"]["steps"], r["spec"].get("demo_weight", 1.0)))
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (env, setting, variant, method, labels, demos, steps, wd), runs in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], order[kv[0][3]], -kv[0][7], kv[0][5], kv[0][4])):
        mean, std = seed_stats(r["metrics"]["true_return"] for r in runs)
        late_mean, late_std = seed_stats(_late_return(r["metrics"]) for r in runs)
        rows.append({
            "env": env, "setting": setting, "variant": variant, "method": method, "labels": labels, "demos": demos,
            "steps": steps, "demo_weight": wd if method in ("aihf", "irl") else None,
            "seeds": sorted(r["spec"]["seed"] for r in runs),
            "true_return_mean": mean, "true_return_std": std, "late_return_mean": late_mean, "late_return_std": late_std,
            "demo_return": mean_or_none(r["metrics"].get("demo_return") for r in runs),
            "reward_correlation_mean": mean_or_none(r["metrics"].get("reward_correlation") for r in runs),
            "pref_accuracy_heldout_mean": mean_or_none(r["metrics"].get("pref_accuracy_heldout") for r in runs),
            "wall_seconds_mean": float(np.mean([r["metrics"]["wall_seconds"] for r in runs])),
        })
    return rows


def true_reward_rows(results: Path, experts: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PPO on the true reward at the runs' step counts: the expert candidates' own evaluations at that step
    (5 episodes each, from their history), so IRL and AIHF can be judged at matched env steps too."""
    out = []
    for env, expert in sorted(experts.items()):
        for steps in sorted({r["steps"] for r in rows if r["env"] == env and r["steps"] and r["setting"] == "prefrl"}):
            returns, seeds = [], []
            for run_id in expert["candidates"]:
                rec = _read_ok(results / "runs" / f"{run_id}.json")
                at = [h for h in (rec or {}).get("metrics", {}).get("history", []) if h["env_steps"] == steps]
                if at:
                    returns.append(at[0]["true_return"])
                    seeds.append(rec["spec"]["seed"])
            if len(returns) == len(expert["candidates"]):
                mean, std = seed_stats(returns)
                out.append({"env": env, "setting": "prefrl", "variant": "-", "method": "true_reward", "labels": 0,
                            "demos": 0, "steps": steps, "demo_weight": None, "seeds": sorted(seeds),
                            "true_return_mean": mean, "true_return_std": std, "late_return_mean": None,
                            "late_return_std": None, "demo_return": None, "reward_correlation_mean": None,
                            "pref_accuracy_heldout_mean": None, "wall_seconds_mean": None})
    return out


def _late_return(metrics: dict[str, Any]) -> float:
    """Mean true return of the evaluations in the last 30% of the run (the final one included): less of a
    lottery than the final evaluation alone when the learned reward keeps moving (IRL, AIHF)."""
    history = metrics.get("history") or []
    end = max((h["env_steps"] for h in history), default=0)
    late = [h["true_return"] for h in history if h["env_steps"] >= 0.7 * end]
    return float(np.mean(late)) if late else float(metrics["true_return"])


JOINT_OPTIONS = ("pref_fit",)  # options that act only in runs with both labels and demonstrations


def demo_only(variant: str) -> bool:
    """Whether a variant sets only options of the demonstration term, so runs without demonstrations
    (preference-only, BC) are the same under it as without it."""
    return variant == "-" or all(k.startswith("demo_") or k in JOINT_OPTIONS for k in VARIANTS[variant][1])


def joint_only(variant: str) -> bool:
    """Whether a variant sets only options of the joint fit, so preference-only and IRL alone are the same under it."""
    return variant != "-" and all(k in JOINT_OPTIONS for k in VARIANTS[variant][1])


def labels_only(variant: str) -> bool:
    """Whether a variant changes only how labels are given or fitted, so IRL alone (no labels) is the same under it."""
    return variant != "-" and all(k in JOINT_OPTIONS or k == OFFLINE for k in VARIANTS[variant][1])


def check_claims(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims of the docstring, each method on its own, with both means and whether it holds. AIHF is checked in
    every variant it ran in, against IRL of the same variant and preference-only of the same variant (or of the plain
    setting, where the variant only changes the demonstration term); IRL alone in the plain setting."""
    weighted = [r for r in rows if r.get("demo_weight") in (None, 1.0)]
    main_rows = [r for r in weighted if r["variant"] == "-"]
    find = {(r["env"], r["setting"], r["variant"], r["method"], r["labels"], r["demos"], r["steps"]): r
            for r in weighted}
    checks = []
    for env, setting, variant, steps in sorted({(r["env"], r["setting"], r["variant"], r["steps"])
                                                for r in weighted if r["method"] == "aihf"}):
        own = any(k[:4] == (env, setting, variant, "preference") and k[6] == steps for k in find)
        pref_variant = "-" if demo_only(variant) and not own else variant
        own_irl = any(k[:4] == (env, setting, variant, "irl") and k[6] == steps for k in find)
        irl_variant = "-" if labels_only(variant) and not own_irl else variant
        for labels in (25, 100):
            mine = find.get((env, setting, variant, "aihf", labels, 1, steps))
            for against, key in (("preference", (env, setting, pref_variant, "preference", labels, 0, steps)),
                                 ("irl", (env, setting, irl_variant, "irl", 0, 1, steps))):
                other = find.get(key)
                if mine is None or other is None:
                    continue
                a, b = mine["true_return_mean"], other["true_return_mean"]
                la, lb = mine["late_return_mean"], other["late_return_mean"]
                checks.append({"env": env, "setting": setting, "variant": variant, "labels": labels, "demos": 1,
                               "steps": steps, "seeds": min(len(mine["seeds"]), len(other["seeds"])),
                               "claim": f"aihf > {against}", "value": a, "against": b, "holds": bool(a > b),
                               "value_late": la, "against_late": lb, "holds_late": bool(la > lb)})
    for r in sorted((r for r in main_rows if r["method"] == "irl"), key=lambda r: (r["env"], r["setting"])):
        env, setting = r["env"], r["setting"]
        ppo = find.get((env, setting, "-", "true_reward", 0, 0, r["steps"]))
        if ppo is not None:
            checks.append({"env": env, "setting": setting, "variant": "-", "labels": 0, "demos": r["demos"],
                           "steps": r["steps"], "seeds": min(len(r["seeds"]), len(ppo["seeds"])),
                           "claim": "irl >= true-reward PPO at the same steps", "value": r["true_return_mean"],
                           "against": ppo["true_return_mean"], "holds": bool(r["true_return_mean"] >= ppo["true_return_mean"]),
                           "value_late": r["late_return_mean"], "against_late": ppo["true_return_mean"],
                           "holds_late": bool(r["late_return_mean"] >= ppo["true_return_mean"])})
        if r["demo_return"]:
            target = DEMO_RETURN_FRACTION * r["demo_return"]
            checks.append({"env": env, "setting": setting, "variant": "-", "labels": 0, "demos": r["demos"],
                           "steps": r["steps"], "seeds": len(r["seeds"]), "claim": "irl >= 0.8 x demo return",
                           "value": r["true_return_mean"], "against": target,
                           "holds": bool(r["true_return_mean"] >= target), "value_late": r["late_return_mean"],
                           "against_late": target, "holds_late": bool(r["late_return_mean"] >= target)})
    return checks


def few_seeds(n: int) -> str:
    """The note a claim carries when it rests on fewer than 3 seeds ('' otherwise)."""
    return f" (only {n} seed{'s' if n > 1 else ''})" if n < 3 else ""


def write_markdown(rows: list[dict[str, Any]], checks: list[dict[str, Any]], experts: dict[str, Any], path: Path,
                   commands: list[str]) -> None:
    fmt = lambda v, f="{:.3f}": "–" if v is None else f.format(v)  # noqa: E731
    lines = ["Produced by:", *[f"- `{c}`" for c in commands], ""]
    for env, e in sorted(experts.items()):
        demos = e.get("demos", {})
        lines.append(f"- {env} expert: `{e['run_id']}` (deterministic true return {e['true_return']:.0f}; candidates "
                     + ", ".join(f"{v:.0f}" for v in e["candidates"].values()) + "); demonstrations: sampled actions, "
                     f"episodes of return >= {DEMO_RETURN_FRACTION} x {e['true_return']:.0f}, mean "
                     f"{demos.get('true_return_mean', float('nan')):.0f} over {demos.get('episodes', 0)}")
    table = []
    for r in (r for r in rows if r["variant"] == "-"):
        method = r["method"] if r.get("demo_weight") in (None, 1.0) else f"{r['method']} (W_D={r['demo_weight']:g})"
        table.append([r["env"], r["setting"], method, r["labels"], r["demos"], r["steps"], len(r["seeds"]),
                      mean_std_text(r["true_return_mean"], r["true_return_std"]),
                      "–" if r["late_return_mean"] is None else mean_std_text(r["late_return_mean"], r["late_return_std"]),
                      fmt(r["demo_return"], "{:.0f}"),
                      fmt(r["reward_correlation_mean"]), fmt(r["pref_accuracy_heldout_mean"])])
    lines += ["", *markdown_table(["env", "setting", "method", "labels", "demos", "steps", "seeds",
                                   "true return (mean ± std)", "last 30% of run", "demo return", "reward corr.",
                                   "held-out pref. acc."], table),
              "", "true return: the final policy over 10 episodes (mean over seeds ± sample std across seeds); last 30% "
              "of run: the mean of the evaluations (5 episodes each) in the last 30% of training, less noisy where "
              "the learned reward keeps moving. BC does not interact with the env: both columns are its one "
              "evaluation. true_reward: PPO on the true reward, the expert candidates' own evaluations (5 episodes) "
              "at the same env step. demo return: mean true return of the demonstrations a run learned from."]
    if checks:
        lines += ["", "Claims (means over seeds, each method on its own):", ""]
        for c in checks:
            where = c["setting"] if c.get("variant", "-") == "-" else f"{c['setting']}, variant {c['variant']}"
            lines.append(f"- {c['env']} ({where}), {c['labels']} labels, {c['demos']} demo, {c['steps']:,} steps: "
                         f"{c['claim']}: "
                         f"final {c['value']:.0f} vs {c['against']:.0f} — {'holds' if c['holds'] else 'does NOT hold'}; "
                         f"last 30% {c['value_late']:.0f} vs {c['against_late']:.0f} — "
                         f"{'holds' if c['holds_late'] else 'does NOT hold'}"
                         + few_seeds(c["seeds"]))
    path.write_text("\n".join(lines) + "\n")


def write_ablation(rows: list[dict[str, Any]], path: Path, commands: list[str]) -> None:
    """The ablation table: IRL alone under each variant."""
    table = []
    irl_rows = [r for r in rows if r["method"] == "irl" and r["demos"] == 1 and r.get("demo_weight") in (None, 1.0)]
    for r in sorted(irl_rows, key=lambda r: (r["env"], r["setting"] != "prefrl", r["setting"], r["steps"],
                                              _variant_order(r))):
        variant = "now" if (r["setting"], r["variant"]) == ("prefrl", "-") else r["variant"]
        table.append([r["env"], r["setting"], r["steps"], f"`{variant}`", VARIANTS.get(variant, ("as configured",))[0], len(r["seeds"]),
                      mean_std_text(r["true_return_mean"], r["true_return_std"], "{:.0f}"),
                      mean_std_text(r["late_return_mean"], r["late_return_std"], "{:.0f}"),
                      "–" if r["demo_return"] is None else f"{r['demo_return']:.0f}",
                      "–" if r["reward_correlation_mean"] is None else f"{r['reward_correlation_mean']:.2f}"])
    lines = ["Produced by:", *[f"- `{c}`" for c in commands if "--ablation" in c], "",
             "IRL alone (no labels, 1 demonstration); one change at a time.", "",
             *markdown_table(["env", "setting", "steps", "variant", "what", "seeds", "true return (mean ± std)", "last 30% of run",
                              "demo return", "reward corr."], table),
             "", "std: sample std across seeds (ddof=1). reward corr.: Pearson r of learned vs true returns of 1000 "
             "fresh segments of the run's own data."]
    path.write_text("\n".join(lines) + "\n")


def _variant_order(row: dict[str, Any]) -> int:
    names = list(VARIANTS)
    variant = "now" if row["variant"] == "-" else row["variant"]
    return names.index(variant) if variant in names else len(names)


def plot(rows: list[dict[str, Any]], experts: dict[str, Any], path: Path) -> None:
    """True return vs preference budget per method, one panel per env and setting (IRL is AIHF's budget-0 point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["variant"] == "-"]
    panels = sorted({(r["env"], r["setting"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    budgets = sorted({r["labels"] for r in rows})
    xpos = {b: i for i, b in enumerate(budgets)}
    for ax, (env, setting) in zip(axes[0], panels):
        mine = [r for r in rows if (r["env"], r["setting"]) == (env, setting)]
        lines: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            if r["method"] in ("aihf", "irl"):
                weight = "" if r.get("demo_weight") in (None, 1.0) else f", W_D={r['demo_weight']:g}"
                lines.setdefault(f"AIHF, {r['demos']} demo{'s' if r['demos'] > 1 else ''}{weight} (IRL at 0)", []).append(r)
            elif r["method"] == "preference":
                lines.setdefault("preference only", []).append(r)
        for name, rs in sorted(lines.items()):
            rs = sorted(rs, key=lambda r: r["labels"])
            ax.errorbar([xpos[r["labels"]] for r in rs], [r["true_return_mean"] for r in rs],
                        yerr=[r["true_return_std"] or 0.0 for r in rs], marker="o", capsize=3, label=name)
        for r in mine:
            if r["method"] == "true_reward":
                ax.axhline(r["true_return_mean"], ls="-.", lw=1, color="red",
                           label=f"PPO, true reward, {r['steps']:,} steps")
            if r["method"] == "bc":
                ax.axhline(r["true_return_mean"], ls="--", lw=1, color="grey" if r["demos"] == 1 else "black",
                           label=f"BC, {r['demos']} demo{'s' if r['demos'] > 1 else ''}")
        demo_returns = [r["demo_return"] for r in mine if r["demo_return"]]
        if demo_returns:
            ax.axhline(float(np.mean(demo_returns)), ls=":", color="green", label="demonstrations (mean)")
        ax.set_xticks(range(len(budgets)), [str(b) for b in budgets])
        ax.set(title=f"{env} ({setting})", xlabel="preference labels", ylabel="true return (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(results: Path, command: str | None, experts: dict[str, Any]) -> list[dict[str, Any]]:
    """Aggregate every finished run under results/aihf_runs into the summary JSON, markdown, ablation and plot
    (`command` joins the summary's list of commands; None, as with --summarize-only, adds none)."""
    records = [r for p in sorted((results / "aihf_runs").glob("*.json")) if (r := _read_ok(p)) is not None]
    summary_path = results / "aihf_summary.json"
    try:
        old = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        old = {}
    commands = old.get("commands", []) if command is None else \
        [c for c in old.get("commands", []) if c != command] + [command]
    experts = {**old.get("experts", {}), **experts}
    rows = aggregate(records)
    rows += true_reward_rows(results, experts, rows)
    checks = check_claims(rows)
    write_json(summary_path, {"commands": commands, "experts": experts, "rows": rows, "checks": checks})
    write_markdown(rows, checks, experts, results / "aihf.md", commands)
    if any(r["variant"] != "-" or r["setting"] != "prefrl" for r in rows):
        write_ablation(rows, results / "aihf_ablation.md", commands)
    if any(r["variant"] == "-" for r in rows):
        plot(rows, experts, results / "aihf.png")
    return rows


def _positive_floats(name: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = [-1.0]
    if any(not v > 0 or v != v or v == float("inf") for v in values):
        raise ValueError(f"--{name} {text!r} is invalid: expected positive numbers")
    return values


# -------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", default="prefrl", choices=sorted(SETTINGS), help="config file of the runs")
    p.add_argument("--ablation", action="store_true", help="IRL alone under each variant (prefrl setting)")
    p.add_argument("--variants", default="ablation", help="with --ablation: the variants to run (comma-separated), "
                                                         "'ablation' for all but `state`")
    p.add_argument("--variant", default="-", help="run the grid under one of VARIANTS (e.g. state), '-' for none")
    p.add_argument("--envs", default="Hopper-v5,HalfCheetah-v5,Walker2d-v5")
    p.add_argument("--budgets", default="0,25,100,400", help="preference label budgets (0: IRL)")
    p.add_argument("--demos", default="1,4", help="demonstration episodes")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--demo-weights", default="1", help="W_D values of the aihf and irl runs (W_P = 1)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", default="150000", help="env steps per run")
    p.add_argument("--expert-steps", default="300000", help="PPO steps of the true-reward expert candidates")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", default=None)
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--runs-dir", default="runs/aihf", help="where each run (and the recorded demos) go")
    p.add_argument("--expert-runs-dir", default="runs/mujoco", help="where the expert candidates go (shared with "
                                                                     "mujoco_sweep.py)")
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke test: PointMassFall-v0, one seed, tiny steps")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.envs, args.seeds, args.budgets, args.demos = "prefrl/PointMassFall-v0", "0", "0,10", "1"
        args.steps, args.expert_steps = "3000", "3000"
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--summarize-only"]
    command = "python benchmarks/aihf.py " + " ".join(given)
    results, runs_dir, expert_runs = Path(args.results_dir), Path(args.runs_dir), Path(args.expert_runs_dir)
    try:
        envs = [e for e in args.envs.split(",") if e]
        for env in envs:
            check_env_id(env)
        methods = [m for m in args.methods.split(",") if m]
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"--methods: unknown method {m!r}, expected some of {', '.join(METHODS)}")
        budgets = mujoco_sweep._int_list("budgets", args.budgets, allow_zero=True)
        demos = mujoco_sweep._int_list("demos", args.demos, allow_zero=False)
        seeds = mujoco_sweep._int_list("seeds", args.seeds, allow_zero=True)
        (steps,) = mujoco_sweep._int_list("steps", args.steps, allow_zero=False)
        (expert_steps,) = mujoco_sweep._int_list("expert-steps", args.expert_steps, allow_zero=False)
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        demo_weights = tuple(_positive_floats("demo-weights", args.demo_weights))
        if args.ablation:
            variants = [v for v in VARIANTS if v != "state"] if args.variants == "ablation" else \
                [v for v in args.variants.split(",") if v]
            for v in variants:
                if v not in VARIANTS:
                    raise ValueError(f"--variants: unknown variant {v!r}, expected some of {', '.join(VARIANTS)}")
            specs, demos = ablation_grid(envs, seeds, steps, variants), [1]
        else:
            if args.variant != "-" and args.variant not in VARIANTS:
                raise ValueError(f"--variant {args.variant!r}: expected one of {', '.join(VARIANTS)}")
            specs = grid(envs, budgets, demos, methods, seeds, steps, args.setting, demo_weights, args.variant)
        todo = [] if args.summarize_only else [s for s in specs if _read_ok(record_path(results, s)) is None]
    except ValueError as exc:
        print(f"aihf.py: error: {exc}", file=sys.stderr)
        return 2
    experts: dict[str, Any] = {}
    if not args.summarize_only:
        tasks = []
        for env in envs:
            experts[env] = ensure_expert(env, expert_steps, results, expert_runs, args.workers)
            demo_file = ensure_demos(env, experts[env], max(DEMOS_RECORDED, *demos), runs_dir / "demos")
            experts[env]["demos"] = Demonstrations.load(demo_file).summary()
            mine = [s for s in todo if s.env == env]
            sources = ensure_offline_sources(env, experts[env], expert_runs, runs_dir / "prefs") \
                if any(offline_variant(s.variant) and s.labels for s in mine) else []
            tasks += [make_task(s, demo_file, results, runs_dir, ensure_pref_data(s, sources, runs_dir / "prefs")
                                if offline_variant(s.variant) and s.labels else None) for s in mine]
        done = len(specs) - len(tasks)
        if done:
            print(f"aihf.py: {done} of {len(specs)} runs already finished, skipping them", file=sys.stderr)
        progress = Progress(len(specs), done)
        if args.backend == "ray":
            run_ray(tasks, args.ray_address, progress)
        else:
            run_local(tasks, args.workers, progress)
    rows = summarize(results, None if args.summarize_only else command, experts)
    print(json.dumps({"runs": len(specs), "summary_rows": len(rows), "summary": str(results / "aihf_summary.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
