"""The README's result tables and quoted figures, rendered from the committed summaries under benchmarks/results/.

    python benchmarks/readme_tables.py          # rewrite the blocks in README.md
    python benchmarks/readme_tables.py --check  # exit 1 if README.md differs from the summaries (a test runs this)

Each block sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in README.md; nothing outside the
blocks is touched, so every number the README quotes from a benchmark lives in one of them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _ms(mean: float, std: float | None, digits: int = 0) -> str:
    """'mean ± std' rounded once, from the stored values."""
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def mujoco() -> str:
    """Preference PPO with 700 oracle labels against PPO on the true reward."""
    rows = _load("mujoco_summary.json")["rows"]
    find = {(r["env"], r["method"], r["sampler"]): r for r in rows if r["labels"] in (0, 700)}
    out = []
    for env in ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Swimmer-v5"):
        base = find[(env, "true_reward", "-")]
        cells = [env, _ms(base["true_return_mean"], base["true_return_std"])]
        for sampler in ("uniform", "disagreement"):
            r = find.get((env, "preference", sampler))
            cells += ["–", "–"] if r is None else [_ms(r["true_return_mean"], r["true_return_std"]),
                                                   f"{r['ratio_to_true_reward']:.2f}"]
        out.append(cells)
    corr = [r["reward_correlation_mean"] for r in rows if r["method"] == "preference" and r["labels"] == 700]
    return _table(["env", "true reward", "700 labels, uniform queries", "ratio", "700 labels, `--sampler disagreement`",
                   "ratio"], out) + (f"\n\nMean over seeds (± sample std across seeds). The learned reward correlates "
                                     f"{min(corr):.2f}-{max(corr):.3f} with the true one on held-out segments of "
                                     f"these runs (mean per configuration).")


def demo() -> str:
    """The `make demo` run's figures."""
    m = json.loads((RESULTS / "demo" / "metrics.json").read_text())
    base = json.loads((RESULTS / "runs" / "Hopper-v5__ppo__true__s300000__seed0.json").read_text())["metrics"]
    return (f"On our machine it reached a true return of {m['true_return']:.0f} on Hopper-v5 (10 evaluation episodes; "
            f"PPO on the true reward, same seed: {base['true_return']:.0f}), with a Pearson correlation of "
            f"{m['reward_correlation']:.2f} between learned and true returns of fresh segments "
            f"(`benchmarks/results/demo/`).")


def _llm_table(summary: dict, methods: tuple[str, ...]) -> tuple[str, list[int]]:
    """Per task: the reference's true reward, each method's mean true reward (KL) per budget at the headline beta,
    and SFT's."""
    beta, rows = summary["headline_beta"], summary["rows"]
    find = {(r["task"], r["method"], r["prefs"]): r for r in rows if r["beta"] in (None, beta)}
    budgets = sorted({r["prefs"] for r in rows if r["method"] == "dpo"})

    def cells(task: str, method: str) -> str:
        return " / ".join(f"{find[(task, method, n)]['true_reward_mean']:.3f} ({find[(task, method, n)]['kl_mean']:.2f})"
                          for n in budgets)

    out = []
    for task in sorted({r["task"] for r in rows}):
        ref = find[(task, "reference", 0)]
        sft = find[(task, "sft", budgets[0])]
        out.append([task, f"{ref['true_reward_mean']:.3f}", *(cells(task, m) for m in methods),
                    f"{sft['true_reward_mean']:.3f} ({sft['kl_mean']:.2f})"])
    pairs = " / ".join(str(n) for n in budgets)
    names = {"dpo": "DPO", "rpo": "RPO", "aihf": "AIHF", "aihf-dpo": "AIHF-DPO"}
    return _table(["task", "reference", *(f"{names[m]}, {pairs} pairs" for m in methods), "SFT"], out), budgets


def llm() -> str:
    """Tiny GPT-2 models: DPO, AIHF and AIHF-DPO at the headline beta, and the matched-KL claims."""
    summary = _load("llm_summary.json")
    table, _ = _llm_table(summary, ("dpo", "aihf", "aihf-dpo"))
    matched = [c for c in summary["checks"] if c["kind"] == "matched_kl"]

    def tally(method: str) -> str:
        mine = [c for c in matched if c["claim"].startswith(f"{method} >")]
        count = {s: sum(c["status"] == s for c in mine) for s in ("holds", "does not hold", "mixed", "undefined")}
        return (f"{method.upper()} is above DPO in {count['holds']} of {len(mine)} (task, budget) cases, at or below "
                f"it in {count['does not hold']}, crosses it in {count['mixed']}, and in {count['undefined']} their KL "
                "ranges do not overlap (no claim)")

    return (table + f"\n\nbeta = {summary['headline_beta']:g}; mean over {len(summary['rows'][0]['seeds'])} seeds, "
            f"KL to the reference in brackets (a sampled estimate, hence -0.00). At matched KL (reward-KL frontiers "
            f"over beta = {', '.join(f'{b:g}' for b in summary['betas'])}, `llm_frontier.png`): {tally('aihf')}; "
            f"{tally('aihf-dpo')}.")


def llm_review() -> str:
    """SmolLM2-135M on the review task: every method at its one beta, and the headline claims."""
    summary = _load("llm_review_summary.json")
    table, _ = _llm_table(summary, ("dpo", "rpo", "aihf", "aihf-dpo"))
    held = [c for c in summary["checks"] if c["kind"] == "headline"]
    claims = "; ".join(f"{c['claim']} at {c['prefs']} pairs: {c['value']:.3f} vs {c['against']:.3f} "
                       f"({'holds' if c['holds'] else 'does not hold'})" for c in held)
    return (table + f"\n\nbeta = {summary['headline_beta']:g}; mean over {len(summary['rows'][0]['seeds'])} seeds, "
            f"KL to the reference in brackets; {summary['wall_seconds'] / 60:.0f} min on 2 CPU cores for the whole "
            f"grid. Each method on its own, KL not matched: {claims}.")


VARIANTS = {"now-converge": "`--pref-fit converge`", "now-converge-labels-end": "`converge`, episode end from the labels",
            "now-converge-offline": "`converge`, offline labels"}  # the README's name of each variant with columns
OFFLINE = "now-converge-offline"  # the authors' kind of labels: an offline set of pairs (`--pref-data`)
VARIANT_COLUMNS = {  # (variant, method): its column's header, beside the plain grid's columns
    ("now-converge", "aihf"): "AIHF, 1 demo, `--pref-fit converge`",
    ("now-converge-labels-end", "aihf"): "AIHF, 1 demo, `converge`, episode end from the labels",
    ("now-converge-offline", "preference"): "preference only, offline labels (`--pref-data`)",
    ("now-converge-offline", "aihf"): "AIHF, 1 demo, `converge`, offline labels"}


def aihf() -> str:
    """Demonstrations + preferences in the prefrl setting: AIHF, preference-only, IRL, BC and true-reward PPO, and
    the VARIANT_COLUMNS that ran at the grid's steps."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.aihf import few_seeds

    summary = _load("aihf_summary.json")
    everything = [r for r in summary["rows"] if r["setting"] == "prefrl" and r.get("demo_weight") in (None, 1.0)]
    rows = [r for r in everything if r["variant"] == "-"]
    grid_steps = Counter(r["steps"] for r in rows if r["method"] == "aihf").most_common(1)[0][0]
    rows = [r for r in rows if r["steps"] in (grid_steps, 0)]  # longer IRL runs are in the ablation block
    find = {(r["env"], r["method"], r["labels"], r["demos"], "-"): r for r in rows}
    find.update({(r["env"], r["method"], r["labels"], r["demos"], r["variant"]): r for r in everything
                 if r["variant"] in VARIANTS and r["steps"] == grid_steps})
    demos = sorted({r["demos"] for r in rows if r["method"] in ("aihf", "irl", "bc")})
    columns = [(v, m) for v, m in VARIANT_COLUMNS if any(k[4] == v and k[1] == m for k in find)]
    variants = {v for v, _ in columns}

    def cell(env: str, method: str, labels: int, demos: int, variant: str = "-") -> str:
        r = find.get((env, method, labels, demos, variant))
        return "–" if r is None else f"{_ms(r['true_return_mean'], r['true_return_std'])} ({len(r['seeds'])})"

    out = []
    for env in sorted({r["env"] for r in rows}):
        ppo = find.get((env, "true_reward", 0, 0, "-"))
        if ppo is not None:
            out.append([env, f"PPO on the true reward, {ppo['steps']:,} steps", cell(env, "true_reward", 0, 0),
                        *["–"] * (len(demos) + len(columns))])
        for labels in sorted({r["labels"] for r in rows if r["env"] == env and r["method"] != "true_reward"}):
            method = "aihf" if labels else "irl"
            out.append([env, f"{labels} labels" + (" (IRL)" if not labels else ""),
                        cell(env, "preference", labels, 0) if labels else "–",
                        *[cell(env, method, labels, d) for d in demos],
                        *[cell(env, m, labels, int(m == "aihf"), v) if labels else "–" for v, m in columns]])
        out.append([env, "BC (no env steps)", "–", *[cell(env, "bc", 0, d) for d in demos], *["–"] * len(columns)])
    experts = ", ".join(f"{env} {e['true_return']:.0f} (demonstrations {e['demos']['true_return_mean']:.0f})"
                        for env, e in sorted(summary["experts"].items()))
    checks = [c for c in summary["checks"] if c["setting"] == "prefrl" and c.get("variant", "-") in ("-", *variants)
              and c["steps"] == grid_steps]
    claims = "\n".join(f"- {c['env']}, {c['labels']} labels, {c['demos']} demo, {c['steps']:,} steps"
                       + ("" if c.get("variant", "-") == "-" else f", {VARIANTS[c['variant']]}")
                       + f": {c['claim']}: {c['value']:.0f} vs "
                       f"{c['against']:.0f}, {'holds' if c['holds'] else '**does not hold**'}"
                       + few_seeds(c["seeds"])
                       for c in sorted(checks, key=lambda c: (c.get("variant", "-") != "-", c["labels"] == 0)))
    header = ["env", "labels", "preference only / PPO", *[f"AIHF, {d} demo{'s' if d > 1 else ''}" for d in demos],
              *[VARIANT_COLUMNS[c] for c in columns]]
    return (_table(header, out)
            + "\n\nFinal true return (10 episodes), mean ± sample std over seeds, the number of seeds in brackets; "
            f"PPO on the true reward: the expert candidates' own evaluations at that step. Experts (deterministic "
            f"return): {experts}.\n\nClaims, each method on its own (means over seeds):\n\n{claims}")


def aihf_offline() -> str:
    """The authors' kind of labels at the longest steps they ran: AIHF and preference-only on the same offline pairs,
    IRL alone and PPO on the true reward at those steps, and the claims (final return and last 30% of the run)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.aihf import few_seeds

    summary = _load("aihf_summary.json")
    rows = [r for r in summary["rows"] if r["setting"] == "prefrl" and r.get("demo_weight") in (None, 1.0)]
    steps = max(r["steps"] for r in rows if r["variant"] == OFFLINE)
    find = {(r["env"], r["variant"], r["method"], r["labels"]): r for r in rows if r["steps"] == steps}

    def cell(*key: str | int) -> str:
        r = find.get(key)
        if r is None:
            return "–"
        text = f"{_ms(r['true_return_mean'], r['true_return_std'])} ({len(r['seeds'])})"
        return text if r["late_return_mean"] is None else f"{text}; {r['late_return_mean']:.0f}"

    out = []
    for env, labels in sorted({(k[0], k[3]) for k in find if k[1] == OFFLINE}):
        out.append([env, str(labels), cell(env, OFFLINE, "aihf", labels), cell(env, OFFLINE, "preference", labels),
                    cell(env, "-", "irl", 0), cell(env, "-", "true_reward", 0)])
    checks = [c for c in summary["checks"] if c.get("variant") == OFFLINE and c["steps"] == steps]
    claims = "\n".join(f"- {c['env']}, {c['labels']} labels: {c['claim']}: {c['value']:.0f} vs {c['against']:.0f}, "
                       f"{'holds' if c['holds'] else '**does not hold**'}; last 30%: {c['value_late']:.0f} vs "
                       f"{c['against_late']:.0f}, {'holds' if c['holds_late'] else '**does not hold**'}"
                       + few_seeds(c["seeds"]) for c in sorted(checks, key=lambda c: (c["env"], c["labels"])))
    return (_table(["env", "labels", "AIHF, 1 demo", "preference only, the same pairs", "IRL alone, 1 demo",
                    "PPO on the true reward"], out)
            + f"\n\n{steps:,} PPO steps (the expert candidates' own budget). Final true return (10 episodes), mean ± "
            "sample std over seeds, the number of seeds in brackets; after the semicolon the mean true return over the "
            "last 30% of the run. PPO on the true reward: the expert candidates' own evaluations at that step.\n\n"
            f"Claims, each method on its own (means over seeds):\n\n{claims}")


def aihf_ablation() -> str:
    """IRL alone (1 demonstration, no labels), one change at a time."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.aihf import VARIANTS

    all_rows = _load("aihf_summary.json")["rows"]
    rows = [r for r in all_rows if r["method"] == "irl" and r["demos"] == 1
            and r["setting"] == "prefrl" and r.get("demo_weight") in (None, 1.0)]
    names = list(VARIANTS)
    out = []
    for r in sorted(rows, key=lambda r: (r["env"], r["steps"], names.index("now" if r["variant"] == "-" else r["variant"]))):
        variant = "now" if r["variant"] == "-" else r["variant"]
        corr = r["reward_correlation_mean"]
        out.append([r["env"], f"{r['steps']:,}", f"`{variant}`", VARIANTS[variant][0], f"{_ms(r['true_return_mean'], r['true_return_std'])} "
                    f"({len(r['seeds'])})", _ms(r["late_return_mean"], r["late_return_std"]),
                    "–" if corr is None else f"{corr:.2f}"])
    ppo = [r for r in all_rows if r["method"] == "true_reward"
           and any((r["env"], r["steps"]) == (a["env"], a["steps"]) for a in rows)]
    reference = "; ".join(f"{r['env']}, {r['steps']:,} steps: {_ms(r['true_return_mean'], r['true_return_std'])}"
                          for r in sorted(ppo, key=lambda r: (r["env"], r["steps"])))
    return (_table(["env", "steps", "variant", "what", "final true return (seeds)", "last 30% of run", "reward corr."], out)
            + f"\n\nPPO on the true reward at the same steps (the expert candidates' own evaluations): {reference}.")


def llm_speed() -> str:
    """One DPO training step of prefrl against TRL's DPOTrainer."""
    r = _load("llm_speed.json")
    ms = r["ms_per_step"]
    return (f"One DPO training step of {r['model']}, {r['parameters'] / 1e6:.1f}M parameters ({r['batch_pairs']} "
            f"pairs of up to {r['tokens_per_sequence_max']} tokens, {r['threads']} CPU threads, median of "
            f"{len(r['step_ms']['prefrl'])} timed steps): prefrl {ms['prefrl'] / 1000:.1f} s, TRL doing the same "
            f"work {ms['trl_precomputed'] / 1000:.1f} s (ratio {r['prefrl_over_trl_precomputed']:.2f}), TRL with "
            f"its per-step reference pass and gradient checkpointing {ms['trl_default'] / 1000:.1f} s (ratio "
            f"{r['prefrl_over_trl_default']:.2f}).")


def soups() -> str:
    """Hypervolume of the rewarded soup against MORL on the learned and on the true rewards, per env."""
    summary = _load("soups_summary.json")
    st, out = summary["settings"], []
    for env in st["envs"]:
        claims = {c["baseline"]: c for c in summary["claims"] if c["claim"].startswith(f"{env}:")}
        hv = summary["envs"][env]
        cells = [env, *[_ms(hv[f"hv_{k}"]["mean"], hv[f"hv_{k}"]["std"], 0) for k in ("soup", "morl_learned", "morl")]]
        for key in ("morl_learned", "morl"):
            c = claims[key]
            cells.append(f"{_ms(c['ratio_mean'], c['ratio_std'], 3)} ({'holds' if c['holds'] else 'does not hold'})")
        out.append(cells)
    means = "; ".join(f"{env} {hv['hv_soup']['mean'] / hv['hv_morl_learned']['mean']:.2f} and "
                      f"{hv['hv_soup']['mean'] / hv['hv_morl']['mean']:.2f}"
                      for env, hv in ((e, summary["envs"][e]) for e in st["envs"]))
    m = len(st["morl_weights"])
    return _table(["env", "HV soup (2 policies)", f"HV MORL, learned rewards ({m})", f"HV MORL, true reward ({m})",
                   "soup / MORL learned >= 0.9", "soup / MORL true >= 0.9"], out) + (
        f"\n\n{len(st['seeds'])} seeds; fine-tunes of {st['steps']} steps from PPO on the true reward "
        f"({st['start_steps']} steps); {st['labels']} oracle labels per soup fine-tune; mean ± sample std over seeds "
        f"of the hypervolume above the worst value of each objective (start included), and of the per-seed ratio. "
        f"Ratio of the seed means (soup / MORL learned and soup / MORL true): {means}.")


def llm_multi() -> str:
    """Hypervolume of the soup, MODPO and loss-weighting fronts on the tiny sentiment task."""
    summary = _load("llm_multi_summary.json")
    st, hv = summary["settings"], summary["hypervolume"]
    names = {"soup": "rewarded soup", "modpo": "MODPO", "loss_weighting": "loss weighting"}
    trained = {"soup": 2, "modpo": 2 + len(st["weights"]), "loss_weighting": 2 + len(st["weights"])}
    out = [[names[k], str(trained[k]), _ms(hv[k]["mean"], hv[k]["std"], 4)] for k in names]
    claims = "; ".join(f"{c['claim']}: {'holds' if c['holds'] else 'does not hold'}" for c in summary["claims"])
    return _table(["method", "models trained", "hypervolume"], out) + (
        f"\n\n{len(st['seeds'])} seeds, {st['prefs']} pairs per labelling, w in {st['weights']}, "
        f"{st['wall_seconds'] / 60:.0f} min on 2 CPU cores. {claims}.")


def efficiency() -> str:
    """Preference PPO at few labels, per env and query sampler, and the IQM over envs and seeds."""
    summary = _load("efficiency/efficiency_summary.json")
    rows = [[r["env"], r["method"], str(r["labels"]), _ms(r["true_return_mean"], r["true_return_std"]),
             _ms(r["ratio_mean"], r["ratio_std"], 2)] for r in summary["rows"]]
    every = len(summary["aggregate_envs"])
    part = lambda a: "" if len(a["envs"]) == every else f", {len(a['envs'])} of the {every} envs"  # noqa: E731
    agg = "; ".join(f"{a['method']} ({a['labels']} labels{part(a)}) {a['iqm']:.2f} [{a['ci95'][0]:.2f}, "
                    f"{a['ci95'][1]:.2f}]" for a in summary["aggregate"])
    return _table(["env", "method", "labels", "true return", "ratio to true-reward PPO"], rows) + (
        f"\n\nMean ± sample std over seeds. Interquartile mean of the ratio over the seeds of "
        f"{', '.join(summary['aggregate_envs'])}, 95% stratified bootstrap CI: {agg}.")


def efficiency_default() -> str:
    """prefrl's default at each label budget: the score per env (mean ± sample std, seeds), then the IQM over envs."""
    summary = _load("efficiency/efficiency_summary.json")
    name = summary["default_method"]
    rows = [r for r in summary["rows"] if r["method"] == name]
    budgets = sorted({r["labels"] for r in rows})
    cell = {(r["env"], r["labels"]): r for r in rows}
    text = lambda r: "–" if r is None else f"{_ms(r['ratio_mean'], r['ratio_std'], 2)} ({r['seeds']})"  # noqa: E731
    agg = {a["labels"]: a for a in summary["aggregate"] if a["method"] == name}
    counted = {env for a in agg.values() for env in a["envs"]}  # the tasks the IQM counts
    out = [[env if env in counted else f"{env}, not in the IQM", *[text(cell.get((env, n))) for n in budgets]]
           for env in sorted({r["env"] for r in rows}, key=lambda e: (e not in counted, e))]
    out.append(["**IQM** [95% CI]", *[
        "–" if n not in agg else f"**{agg[n]['iqm']:.2f}** [{agg[n]['ci95'][0]:.2f}, {agg[n]['ci95'][1]:.2f}]"
        for n in budgets]])
    versus_true = "; ".join(f"{v['poi']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}] at {v['labels']} labels"
                            for v in summary["default_versus_true_reward"])
    return _table(["env", *[f"{n} labels" for n in budgets]], out) + (
        f"\n\nprefrl's defaults (`{name}`): true return over true-reward PPO's, mean ± sample std over seeds (seeds "
        f"in brackets); target {summary['target']}. The IQM counts every seed of "
        f"{', '.join(summary['aggregate_envs'])}. Run against run on the same env, a run with the defaults ends above "
        f"a true-reward PPO run with probability {versus_true} (rliable's probability of improvement, 95% stratified "
        f"bootstrap CI; 0.5: as good).")


def efficiency_versus() -> str:
    """Each option with the oracle's labels against prefrl's defaults: rliable's probability of improvement."""
    summary = _load("efficiency/efficiency_summary.json")
    rows = [[v["method"], str(v["labels"]), str(len(v["envs"])), f"{v['runs']} / {v['baseline_runs']}",
             f"{v['poi']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"] for v in summary["versus_default"]]
    return _table(["method", "labels", "envs", "runs (method / defaults)", "P(method > defaults) [95% CI]"], rows) + (
        f"\n\nThe chance that a run of the method ends above a run of prefrl's defaults (`{summary['default_method']}`)"
        f" with the same labels on the same env, averaged over the envs both ran (of "
        f"{', '.join(summary['aggregate_envs'])}); 95% stratified bootstrap CI. 0.5: no better, no worse.")


def pebble() -> str:
    """SAC with PEBBLE (pre-training, labels, the replay buffer relabelled after each refit) beside SAC on the true
    reward: one row per env and method, from the sweep's own summary."""
    rows = _load("pebble/mujoco_summary.json")["rows"]
    out = []
    for r in sorted(rows, key=lambda r: (r["env"], r["labels"])):
        what = "SAC, true reward" if r["labels"] == 0 else (
            f"SAC + PEBBLE, {r['labels']} oracle labels, {r['pretrain']} steps of pre-training")
        corr = "–" if r["reward_correlation_mean"] is None else f"{r['reward_correlation_mean']:.2f}"
        out.append([r["env"], what, f"{r['steps']:,}", str(len(r["seeds"])),
                    _ms(r["true_return_mean"], r["true_return_std"]), f"{r['ratio_to_true_reward']:.2f}", corr,
                    f"{r['wall_seconds_mean'] / 60:.0f}"])
    return _table(["env", "run", "steps", "seeds", "true return", "ratio to true-reward SAC", "reward corr.",
                   "minutes"], out)


BLOCKS: dict[str, Callable[[], str]] = {"efficiency": efficiency, "efficiency_default": efficiency_default,
                                        "efficiency_versus": efficiency_versus,
                                        "mujoco": mujoco, "demo": demo, "llm": llm, "aihf": aihf,
                                        "aihf_offline": aihf_offline, "aihf_ablation": aihf_ablation, "llm_speed": llm_speed,
                                        "llm_review": llm_review, "soups": soups, "llm_multi": llm_multi, "pebble": pebble}


def render(text: str) -> str:
    """README text with every block replaced by its rendering."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no block <!-- results:{name} --> ... <!-- /results:{name} -->")
        text = pattern.sub(lambda m, body=make(): m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = p.parse_args(argv)
    text = README.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print("README.md's result blocks differ from benchmarks/results: run python benchmarks/readme_tables.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
