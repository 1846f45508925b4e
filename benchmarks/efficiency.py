"""Feedback efficiency: preference PPO's true return relative to PPO on the true reward, per label budget and
query sampler, aggregated the way RL results are trusted (rliable's interquartile mean with stratified bootstrap
confidence intervals) beside the per-env mean ± sample std.

    python benchmarks/mujoco_sweep.py --envs Hopper-v5,Walker2d-v5 --labels 0,100 --teachers oracle \\
        --samplers uniform,policy_aligned --seeds 0,1,2 --steps 300000 --workers 2 \\
        --results-dir benchmarks/results/efficiency
    python benchmarks/efficiency.py --results-dir benchmarks/results/efficiency \\
        --aggregate-envs Hopper-v5,HalfCheetah-v5,Walker2d-v5,Ant-v5

The first command trains (or reuses) the runs: `mujoco_sweep.py`'s records, one per run, in
`<results-dir>/runs/`; the true-reward baselines (`--labels 0`) are the same runs as the main sweep's (their records
copied in, so they are not trained again). This script reads those records: each preference run's score is its
final true return divided by the mean final true return of all the true-reward runs of its env (same steps, same
`--env-kwargs` and `--algo-kwargs`; every seed of the baseline, so a run with seeds 0-2 is scored against the
baseline's seeds 0-4 where those ran: the best estimate of its mean; a task run with its own env or learner arguments
is named with them, `Ant-v5 (log_std_init=-1)`). True-reward runs after PEBBLE's pre-training (`--labels 0
--pretrain N`) are its control, not a baseline. A run's method is its query sampler, then its teacher and label
screening where not the defaults (`uniform, mistake0.3, rime`: 30% of answers flipped, `--robust rime`). Per (method,
labels): the IQM of the runs' scores with a 95% stratified bootstrap CI (strata = envs, 2000 resamples), over the envs
of `--aggregate-envs` (default: every env with records; the committed summary counts prefrl's four target envs,
Hopper, HalfCheetah, Walker2d and Ant, and shows Swimmer per env only); each method with the oracle's answers
against prefrl's defaults at the same label budget, over the same envs: rliable's probability of improvement
P(method > defaults) with a 95% stratified bootstrap CI (`versus_default` in the summary), and the defaults against
true-reward PPO's own runs the same way (`default_versus_true_reward`); per (env, method,
labels): mean ± sample std (ddof=1) over seeds. Claim checked per env and method: score >= 0.9 with the oracle
teacher (prefrl's target at 200 labels, checked here at every budget run), >= 0.8 with a teacher that flips answers.
Each teacher that flips answers gets a table of its own (`noisy` in the summary): per env and label budget, plain
Bradley-Terry beside each label screening, and the same method with the oracle's answers; and each screening against
plain Bradley-Terry under the same teacher, as a probability of improvement (`screening_versus_plain`). Last, how
many runs fell back from a peak, preference and true-reward runs apart (`falls`).

Writes `<results-dir>/efficiency_summary.json`, `efficiency.md`, `efficiency.png` (score vs label budget: the IQM
over envs with its CI, then one panel per env, one line per method, ± the sample std over seeds as error bars and
band) and `efficiency_profile.png` (rliable's performance profile: the share of runs above each score, with a
stratified bootstrap band).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.mujoco_sweep import is_baseline, screen, settings, unscreened, variants  # noqa: E402
from benchmarks.stall_diagnosis import FELL_BACK, TOOK_OFF, course  # noqa: E402
from prefrl.core.data import write_json  # noqa: E402
from prefrl.reward.model import DEFAULT_INPUTS  # noqa: E402
from prefrl.runs.config import TrainConfig  # noqa: E402
from prefrl.runs.sweep import (  # noqa: E402
    chance_above,
    markdown_table,
    mean_std_text,
    probability_of_improvement,
    read_record,
    seed_stats,
    stratified_bootstrap_ci,
)

TARGET = 0.9  # oracle labels
NOISY_TARGET = 0.8  # a teacher that flips answers
TRUE_REWARD = "true-reward PPO"


def method(spec: dict[str, Any]) -> str:
    """What a preference run did: its query sampler, then its teacher where not the oracle, then what it added
    (`mujoco_sweep.variants`): `uniform`, `policy_aligned`, `uniform, mistake0.3, rime`, `uniform, surf 0.95`,
    `uniform, pretrain 30000`."""
    teacher = spec.get("teacher", "oracle")
    return ", ".join([spec["sampler"], *([teacher] if teacher != "oracle" else []), *variants(spec)])


def default_method() -> str:
    """`method()`'s words for what `prefrl train` does by default (its sampler, its reward inputs, the oracle)."""
    return method({"sampler": TrainConfig.sampler, "inputs": "+".join(DEFAULT_INPUTS)})


def versus(counted: dict[tuple[str, int], dict[str, list[float]]], baseline_of: Callable[[str], str | None]
           ) -> list[dict[str, Any]]:
    """Each method against its baseline (`baseline_of(method)`; None: not compared) at the same label budget:
    rliable's probability of improvement P(method > baseline) with its stratified bootstrap CI, over the envs both
    ran, and each env's own (`per_env`, point estimates)."""
    rows = []
    for (name, labels), per_env in sorted(counted.items()):
        baseline = baseline_of(name)
        base = counted.get((baseline, labels)) if baseline is not None else None
        common = sorted(t for t in per_env if base is not None and t in base)
        if not common:
            continue
        point, low, high = probability_of_improvement(per_env, base)
        rows.append({"method": name, "baseline": baseline, "labels": labels, "envs": common,
                     "runs": sum(len(per_env[t]) for t in common), "baseline_runs": sum(len(base[t]) for t in common),
                     "poi": point, "ci95": [low, high],
                     "per_env": {t: chance_above(per_env[t], base[t]) for t in common}})
    return rows


def versus_default(counted: dict[tuple[str, int], dict[str, list[float]]],
                   parts: dict[str, tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Each method with the oracle's labels against prefrl's defaults (`versus`)."""
    default = default_method()
    return versus(counted, lambda name: default if name != default and parts[name][0] == "oracle" else None)


def versus_plain(counted: dict[tuple[str, int], dict[str, list[float]]],
                 parts: dict[str, tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Each label screening or label-noise floor against plain Bradley-Terry under the same teacher and otherwise the
    same method (`versus`)."""
    plain = {(teacher, base): name for name, (teacher, robust, base) in parts.items() if robust == "none"}
    return versus(counted, lambda name: plain.get((parts[name][0], parts[name][2])) if parts[name][1] != "none"
                  else None)


def _versus_table(rows: list[dict[str, Any]], first: list[str], cells: Callable[[dict[str, Any]], list[Any]],
                  against: str) -> list[str]:
    return markdown_table([*first, "labels", "envs", f"runs (method / {against})", f"P(method > {against})",
                           "95% CI"],
                          [[*cells(v), v["labels"], len(v["envs"]), f"{v['runs']} / {v['baseline_runs']}",
                            f"{v['poi']:.2f}", f"[{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"] for v in rows])


def versus_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    return ["", f"## Against prefrl's defaults ({default_method()}): probability of improvement", "",
            *_versus_table(rows, ["method"], lambda v: [v["method"]], "defaults"),
            "", "rliable's average probability of improvement (Agarwal et al. 2021): per env, the chance that a run of "
            "the method ends above a run of the defaults with the same labels (ties count half), averaged over the "
            "envs both ran; 95% CI from a bootstrap that resamples each method's runs within each env. An interval "
            "that holds 0.5 does not tell the method from the defaults. A method that differs from the defaults in "
            "more than one respect (its name says which) is compared as a whole."]


def noisy_table(rows: list[dict[str, Any]], parts: dict[str, tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Each noisy teacher's runs beside the same method with oracle labels: per env, teacher and label budget, the
    score of plain Bradley-Terry and of each label screening (`--robust`) or label-noise floor (`--label-noise`), and
    of the oracle's run. `parts` maps a method to its (teacher, screening, the method with neither)."""
    groups: dict[tuple[str, str, int, str], dict[str, dict[str, Any]]] = {}
    oracle: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        teacher, robust, base = parts[r["method"]]
        if teacher == "oracle" and robust == "none":
            oracle[r["env"], base, r["labels"]] = r
        elif teacher != "oracle":
            groups.setdefault((r["env"], teacher, r["labels"], base), {})[robust] = r
    cell = lambda r: None if r is None else {k: r[k] for k in ("ratio_mean", "ratio_std", "seeds")}  # noqa: E731
    return [{"env": env, "teacher": teacher, "labels": labels, "method": base,
             "robust": {robust: cell(r) for robust, r in sorted(by.items())},
             "oracle": cell(oracle.get((env, base, labels)))}
            for (env, teacher, labels, base), by in sorted(groups.items())]


def noisy_markdown(noisy: list[dict[str, Any]], screened: list[dict[str, Any]]) -> list[str]:
    if not noisy:
        return []
    kinds = sorted({k for n in noisy for k in n["robust"]}, key=lambda k: (k != "none", k))
    text = lambda c: "–" if c is None else f"{mean_std_text(c['ratio_mean'], c['ratio_std'], '{:.2f}')} ({c['seeds']})"  # noqa: E731
    table = [[n["env"], n["teacher"], n["labels"], n["method"], *[text(n["robust"].get(k)) for k in kinds],
              text(n["oracle"])] for n in noisy]
    heads = ["plain Bradley-Terry" if k == "none" else k for k in kinds]
    return ["", "## Teachers that flip answers (score, mean ± sample std over seeds, seeds in brackets)", "",
            *markdown_table(["env", "teacher", "labels", "method", *heads, "oracle labels"], table), "",
            f"Each teacher's runs with plain Bradley-Terry and with each screening of the labels (`--robust`) or "
            f"label-noise floor (`--label-noise`), beside the same method with the oracle's answers. "
            f"Target: {NOISY_TARGET}.",
            *(["", "Each screening or floor against plain Bradley-Terry under the same teacher, run against run (the "
               "probability of improvement, as above):", "",
               *_versus_table(screened, ["method", "plain Bradley-Terry"], lambda v: [v["method"], v["baseline"]],
                              "plain")] if screened else [])]


def falls(records: list[dict[str, Any]], base: dict[str, list[float]]) -> dict[str, dict[str, list[int]]]:
    """Runs that fell back from a peak, per kind ("preference", "true reward") and task: [falls, runs with an
    evaluation history]. A run fell back where its final return is below FELL_BACK of its best evaluation and that
    best reached TOOK_OFF of its task's mean true-reward return (`stall_diagnosis.course`, that mean as reference)."""
    out: dict[str, dict[str, list[int]]] = {"preference": {}, "true reward": {}}
    for r in records:
        spec, metrics, t = r["spec"], r["metrics"], task(r["spec"])
        history = [h["true_return"] for h in metrics.get("history") or []]
        if not history or t not in base or (spec["labels"] == 0 and not is_baseline(spec)):
            continue
        row = {"peak": max(history + [metrics["true_return"]]), "final": metrics["true_return"]}
        fell = course(row, ref_true=float(np.mean(base[t]))).startswith("fell back")
        cell = out["true reward" if spec["labels"] == 0 else "preference"].setdefault(t, [0, 0])
        cell[0] += int(fell)
        cell[1] += 1
    return out


def falls_markdown(fell: dict[str, dict[str, list[int]]]) -> list[str]:
    if not any(fell.values()):
        return []
    tally = lambda kind: ", ".join(f"{t} {f} of {n}" for t, (f, n) in sorted(fell[kind].items()))  # noqa: E731
    total = lambda kind: [sum(c[i] for c in fell[kind].values()) for i in (0, 1)]  # noqa: E731
    return ["", "## Falls from a peak", "",
            f"Runs whose final true return is below {FELL_BACK} of their best evaluation, that best at least "
            f"{TOOK_OFF} of their env's mean true-reward return: preference runs (every method and teacher) "
            f"{'{} of {}'.format(*total('preference'))} ({tally('preference')}); true-reward PPO "
            f"{'{} of {}'.format(*total('true reward'))} ({tally('true reward')})."]


def task(spec: dict[str, Any]) -> str:
    """The env a run's score is measured on, with its env and learner arguments where set
    (`Ant-v5 (log_std_init=-1)`): each is scored against true-reward runs of the same env and arguments."""
    return f"{spec['env']} ({settings(spec)})" if settings(spec) else spec["env"]


def target(teacher: str) -> float:
    return TARGET if teacher == "oracle" else NOISY_TARGET


def load(results: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((results / "runs").glob("*.json")):
        rec = read_record(path)
        if rec is not None and rec["status"] == "ok":
            records.append(rec)
    if not records:
        raise ValueError(f"no finished run records in {results / 'runs'}")
    return records


def summarize(results: Path, command: str, aggregate_envs: list[str] | None = None) -> dict[str, Any]:
    """Score every run; the aggregate (IQM, CI, performance profile) counts the runs of `aggregate_envs` (env ids;
    None: every env of the records) and the per-env rows every run."""
    records = load(results)
    if aggregate_envs is not None:
        if not aggregate_envs:
            raise ValueError("--aggregate-envs names no env: expected env ids, comma-separated (e.g. Hopper-v5,Ant-v5)")
        known = {r["spec"]["env"] for r in records}
        missing = [e for e in aggregate_envs if e not in known]
        if missing:
            raise ValueError(f"--aggregate-envs {','.join(missing)}: no run records of that env in {results / 'runs'} "
                             f"(they hold {', '.join(sorted(known))})")
    base: dict[str, list[float]] = {}
    for r in records:
        if is_baseline(r["spec"]):
            base.setdefault(task(r["spec"]), []).append(r["metrics"]["true_return"])
    scores: dict[tuple[str, int], dict[str, list[float]]] = {}
    returns: dict[tuple[str, str, int], list[float]] = {}
    parts: dict[str, tuple[str, str, str]] = {}  # method -> (teacher, robust, the method with neither)
    env_of: dict[str, str] = {}  # task (env with its settings) -> env id
    for r in records:
        spec = r["spec"]
        if spec["labels"] == 0:
            continue
        env = task(spec)
        env_of[env] = spec["env"]
        if env not in base:
            raise ValueError(f"no true-reward run of {env} in {results / 'runs'}: expected --labels 0 runs"
                             + (" with the same --env-kwargs and --algo-kwargs" if settings(spec) else ""))
        score = r["metrics"]["true_return"] / float(np.mean(base[env]))
        name = method(spec)
        parts[name] = (spec.get("teacher", "oracle"), screen(spec),
                       method({**unscreened(spec), "teacher": "oracle"}))
        scores.setdefault((name, spec["labels"]), {}).setdefault(env, []).append(score)
        returns.setdefault((env, name, spec["labels"]), []).append(r["metrics"]["true_return"])
    for (name, labels), per_env in scores.items():  # an aggregate counts each env once: one setting of it per results dir
        ids = [env_of[t] for t in per_env]
        counted = [t for t in per_env if ids.count(env_of[t]) > 1]
        if counted:
            raise ValueError(f"{name} at {labels} labels has runs of one env under several settings ({', '.join(counted)}): "
                             f"the aggregate would count that env more than once; expected one setting per env in "
                             f"{results / 'runs'} (keep the others in their own --results-dir)")
    rows, aggregate, claims = [], [], []
    for (env, name, labels), values in sorted(returns.items()):
        ratio = [v / float(np.mean(base[env])) for v in values]
        (m, s), (rm, rs) = seed_stats(values), seed_stats(ratio)
        rows.append({"env": env, "method": name, "teacher": parts[name][0], "labels": labels, "seeds": len(values),
                     "true_return_mean": m, "true_return_std": s, "ratio_mean": rm, "ratio_std": rs,
                     "true_reward_mean": float(np.mean(base[env]))})
        goal = target(parts[name][0])
        claims.append({"claim": f"{env}, {name}: ratio >= {goal} at {labels} labels", "ratio_mean": rm,
                       "holds": bool(rm >= goal)})
    counted = {key: {t: v for t, v in per_env.items() if aggregate_envs is None or env_of[t] in aggregate_envs}
               for key, per_env in scores.items()}
    counted = {key: per_env for key, per_env in counted.items() if per_env}
    for (name, labels), per_env in sorted(counted.items()):
        point, low, high = stratified_bootstrap_ci(per_env)
        aggregate.append({"method": name, "labels": labels, "envs": sorted(per_env),
                          "runs": sum(len(v) for v in per_env.values()), "iqm": point, "ci95": [low, high]})
    noisy = noisy_table(rows, parts)
    beside_default, screened = versus_default(counted, parts), versus_plain(counted, parts)
    fell = falls(records, base)
    # true-reward PPO's runs scored as the preference runs are (their own return over their mean): run against run
    true_runs = {t: [v / float(np.mean(base[t])) for v in base[t]] for t in env_of if t in base}
    labels_run = sorted({labels for _, labels in counted})
    default = default_method()
    against_true = versus({**counted, **{(TRUE_REWARD, n): true_runs for n in labels_run}},
                          lambda name: TRUE_REWARD if name == default else None)
    envs = sorted({env_of[t] for per_env in counted.values() for t in per_env})
    summary = {"command": command, "target": TARGET, "default_method": default_method(), "aggregate_envs": envs,
               "rows": rows, "aggregate": aggregate, "versus_default": beside_default,
               "default_versus_true_reward": against_true, "noisy": noisy,
               "screening_versus_plain": screened, "falls": fell, "claims": claims}
    write_json(results / "efficiency_summary.json", summary)
    lines = ["# Feedback efficiency: preference PPO / true-reward PPO", "", f"Command: `{command}`", "",
             "Score = final true return / mean final true return of PPO on the true reward (same env and steps, all of "
             "its seeds).",
             "", f"## Aggregate (IQM over envs x seeds, 95% stratified bootstrap CI): {', '.join(envs)}", "",
             *markdown_table(["method", "labels", "envs", "runs", "IQM", "95% CI"],
                             [[a["method"], a["labels"], len(a["envs"]), a["runs"], f"{a['iqm']:.2f}",
                               f"[{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}]"] for a in aggregate]),
             *versus_markdown(beside_default),
             *(["", f"Run against run, prefrl's defaults against {TRUE_REWARD} (its runs scored as the preference "
                 "runs are): P(defaults > true reward) "
                 + "; ".join(f"{v['labels']} labels {v['poi']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"
                             for v in against_true) + "."] if against_true else []),
             "", "## Per env (mean ± sample std over seeds)", "",
             *markdown_table(["env", "method", "labels", "true return", "score", "target", "met"],
                             [[r["env"], r["method"], r["labels"], mean_std_text(r["true_return_mean"],
                                                                                  r["true_return_std"]),
                               mean_std_text(r["ratio_mean"], r["ratio_std"], "{:.2f}"), target(r["teacher"]),
                               "yes" if r["ratio_mean"] >= target(r["teacher"]) else "no"] for r in rows]),
             "", "method: the query sampler, then where not the defaults the teacher (mistakeP: a share P of answers "
             "flipped), the label screening (rime; rime grace N: a label judged only after N fits) or the "
             "Bradley-Terry model's label-noise floor (label noise P; label noise fitted: learned from the held-out labels "
             "at every fit), SURF (surf T: pseudo-labels where the reward is "
             "T sure) and "
             "PEBBLE's pre-training (pretrain N: N env steps on a state-entropy reward before the first labels), and "
             "the share of labels held out of reward training where not 1/e (holdout 0: every label trained on), and the "
             "share of labels asked before any policy learning where not 0.25 (upfront F), and what the reward sees "
             "where not the state and action (inputs obs+act+act_sq: also the action squared), and RUNE's exploration "
             "bonus (rune B: B times the std of the ensemble members' rewards added to the policy's reward). "
             f"prefrl's default: {default_method()}. "
             f"Targets: {TARGET} with oracle labels, {NOISY_TARGET} with a teacher that flips answers.",
             *(["", "env (arguments): the preference runs and the true-reward runs they are scored against both ran "
                "with these env and learner arguments (`mujoco_sweep.py --env-kwargs`, `--algo-kwargs`)."]
               if any(settings(r["spec"]) for r in records) else []),
             *noisy_markdown(noisy, screened),
             *falls_markdown(fell),
             "", "Also: `efficiency.png` (score against the label budget) and `efficiency_profile.png` (the share of "
             "runs above each score, the aggregate's envs and seeds)."]
    (results / "efficiency.md").write_text("\n".join(lines) + "\n")
    plot(results / "efficiency.png", rows, aggregate, envs)
    plot_profiles(results / "efficiency_profile.png", counted, envs)
    return summary


def colours(n: int) -> list[Any]:
    """n colours, no two alike up to 20: tab20's dark shades first, then its light ones (tab10 repeats after 10)."""
    tab20 = plt.get_cmap("tab20").colors
    order = [*tab20[0::2], *tab20[1::2]]
    return [order[i % len(order)] for i in range(n)]


def plot(path: Path, rows: list[dict[str, Any]], aggregate: list[dict[str, Any]], aggregate_envs: list[str]) -> None:
    """Christiano et al.'s figure: score against the label budget, one line per method; the first panel is the
    IQM over the envs of `aggregate_envs` and their seeds with its 95% CI, then one panel per env with ± the sample
    std over seeds. A method keeps its colour in every panel; teachers that flip answers are drawn dashed with hollow
    markers. prefrl's default (`default_method()`) is drawn first in the legend, bold, with its band; the others
    thin, without one."""
    default = default_method()
    names = sorted({r["method"] for r in rows}, key=lambda n: (n != default, n))
    colour = dict(zip(names, colours(len(names))))
    noisy = {r["method"] for r in rows if r["teacher"] != "oracle"}
    budgets = sorted({r["labels"] for r in rows})
    envs = sorted({r["env"] for r in rows})
    panels: list[tuple[str, dict[str, list[tuple[int, float, float, float]]]]] = [
        (f"IQM, 95% CI: {', '.join(aggregate_envs)}",
         {n: [(a["labels"], a["iqm"], a["iqm"] - a["ci95"][0], a["ci95"][1] - a["iqm"])
              for a in aggregate if a["method"] == n] for n in names})]
    for env in envs:
        panels.append((env, {n: [(r["labels"], r["ratio_mean"], r["ratio_std"] or 0.0, r["ratio_std"] or 0.0)
                                 for r in rows if r["env"] == env and r["method"] == n] for n in names}))
    cols = min(len(panels), 3)
    rows_ = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.4 * cols, 3.6 * rows_ + 0.5), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, lines) in zip(axes.flat, panels):
        drawn = [n for n in names if lines[n]]
        for i, name in enumerate(drawn):
            x, y, lo, hi = (np.array(v, dtype=float) for v in zip(*sorted(lines[name])))
            x = x * 1.05 ** (i - (len(drawn) - 1) / 2)  # side by side at the same budget
            dashed, bold = name in noisy, name == default
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, color=colour[name], ls="--" if dashed else "-",
                        mfc="white" if dashed else colour[name], lw=2.4 if bold else 1.0, ms=7 if bold else 4,
                        alpha=1.0 if bold else 0.75, zorder=3 if bold else 2,
                        label=f"{name} (prefrl's default)" if bold else name)
            if bold:
                ax.fill_between(x, y - lo, y + hi, color=colour[name], alpha=0.15)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.axhline(TARGET, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
        ax.set_xlim(min(budgets) / 1.4, max(budgets) * 1.4)
        ax.set_title("\n".join(textwrap.wrap(title, 44)), fontsize=10)  # a task named with its arguments is long
        ax.set_xlabel("labels")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("true return / true-reward PPO")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.06 + 0.035 * ((len(labels) - 1) // 3)) / rows_, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_profiles(path: Path, scores: dict[tuple[str, int], dict[str, list[float]]], envs: list[str],
                  taus: np.ndarray = np.linspace(0.0, 2.5, 51)) -> None:
    """rliable's performance profile: the share of runs (the aggregate's envs and seeds) whose score exceeds tau, per
    method and label budget, with a 95% stratified bootstrap band (strata = envs)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    palette = colours(len(scores))
    for i, ((name, labels), per_env) in enumerate(sorted(scores.items())):
        curve = np.array([stratified_bootstrap_ci(per_env, lambda x, t=tau: float(np.mean(x > t)), reps=300)
                          for tau in taus])
        ax.step(taus, curve[:, 0], where="post", color=palette[i], label=f"{name}, {labels} labels")
        ax.fill_between(taus, curve[:, 1], curve[:, 2], step="post", color=palette[i], alpha=0.12)
    ax.axvline(TARGET, color="grey", lw=0.8, ls=":")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("score tau (true return / true-reward PPO)")
    ax.set_ylabel("share of runs with score > tau")
    ax.set_title("\n".join(textwrap.wrap(f"performance profile: {', '.join(envs)}", 70)), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results" / "efficiency"))
    p.add_argument("--aggregate-envs", default=None, help="env ids the IQM, its CI and the performance profile count "
                   "(comma-separated; default: every env of the records); the per-env rows show every env")
    args = p.parse_args(argv)
    envs = None if args.aggregate_envs is None else [e.strip() for e in args.aggregate_envs.split(",") if e.strip()]
    command = "python benchmarks/efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        summary = summarize(Path(args.results_dir), command, envs)
    except ValueError as exc:
        print(f"efficiency.py: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"aggregate": summary["aggregate"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
