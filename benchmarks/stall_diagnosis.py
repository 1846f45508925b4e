"""When a preference run ends far below true-reward PPO, is its learned reward wrong, or is its policy stuck?

    python benchmarks/stall_diagnosis.py --runs 'Hopper-v5__ppo__oracle__uniform__in_obs+act+act_sq__L*__seed*'

The runs are the efficiency sweep's (`benchmarks/README.md`, "Feedback efficiency"): their records in
`<results-dir>/runs/` and their run directories (final policy, observation normalization, final reward model) in
`<runs-dir>/`, where the sweep left them. The `--refs` runs of the group that ended highest are the references.
Each run's final policy and each reference policy play `--episodes` deterministic episodes (the same env seed for
all), and the run's own final reward scores them all: if a run's reward gives the references' episodes a higher
learned return than its own policy's, as the true reward does, the reward already knows better behaviour than its
policy found, and what holds the run back is the policy's learning. Each run's evaluation history (in its record)
says how it got there: `fell back` where its final return is below 0.6 of its best evaluation (and that best was
above 0.6 of the references' mean), `never took off` where its best stayed below 0.6 of the references' mean. A run
that fell back did so `on its final reward` where its best evaluation came after the reward's last refit (from the
run directory's `pref_state.json`): the reward no longer moved under the policy that fell.

Writes `<results-dir>/stalls.json` (every run: its history's peak and final return, and the mean true and learned
return of its own and of the references' episodes) and `stalls.md`. A few minutes on CPU per 20 runs.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefrl.reward.model import RewardModel  # noqa: E402
from prefrl.runs.sweep import markdown_table, read_record, write_report  # noqa: E402
from prefrl.sb3.callback import STATE_FILE, LoopState  # noqa: E402
from prefrl.sb3.envs import make_env  # noqa: E402
from prefrl.sb3.policies import record_demos  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FELL_BACK = 0.6  # final below this share of the run's own best evaluation
TOOK_OFF = 0.6  # best evaluation above this share of the references' mean true return


def matching_records(results: Path, pattern: str) -> list[dict[str, Any]]:
    """The finished run records whose run id matches the glob `pattern`, by run id."""
    records = [read_record(p) for p in sorted((results / "runs").glob("*.json"))]
    found = [r for r in records if r is not None and r["status"] == "ok" and fnmatch.fnmatchcase(r["run_id"], pattern)]
    if not found:
        raise ValueError(f"no finished run record in {results / 'runs'} matches {pattern!r}")
    envs = {r["spec"]["env"] for r in found}
    if len(envs) != 1:
        raise ValueError(f"{pattern!r} matches runs of several envs ({', '.join(sorted(envs))}): expected one")
    return found


def episodes_of(env_id: str, run_dir: Path, n: int, seed: int) -> list[Any]:
    """`n` deterministic episodes of a run's final policy."""
    if not (run_dir / "policy.zip").is_file():
        raise FileNotFoundError(f"no final policy in {run_dir}: run the sweep that made this record first")
    return record_demos(env_id, str(run_dir), n, seed=seed).episodes


def last_refit(run_dir: Path) -> int | None:
    """Env steps (the random warm-up included, as the evaluation history counts them) at the run's last reward fit;
    None where the run directory keeps no loop state."""
    state = LoopState.load(run_dir)  # a fresh state where there is none; a corrupt file refused by name
    try:
        fits = [int(f["env_steps"]) for f in state.fit_reports]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{run_dir / STATE_FILE} is corrupt: {exc}") from exc
    return max(fits) + state.warmup_steps if fits else None


def scored(reward: RewardModel, episodes: list[Any]) -> dict[str, float]:
    """Mean true return, learned return (the policy-facing reward summed over each episode) and length."""
    learned = [float(reward.predict(e.obs, e.acts, e.next_obs).sum()) for e in episodes]
    return {"true": float(np.mean([e.true_rewards.sum() for e in episodes])), "learned": float(np.mean(learned)),
            "length": float(np.mean([len(e.true_rewards) for e in episodes]))}


def diagnose(results: Path, runs_dir: Path, pattern: str, refs: int = 3, episodes: int = 3,
             seed: int = 123) -> dict[str, Any]:
    records = matching_records(results, pattern)
    env_id = records[0]["spec"]["env"]
    env_kwargs = records[0]["spec"].get("env_kwargs") or {}
    if env_kwargs:
        raise ValueError(f"runs with env arguments ({env_kwargs}) are not supported here: record_demos makes the "
                         f"env as registered")
    ranked = sorted(records, key=lambda r: r["metrics"]["true_return"], reverse=True)
    references = ranked[:refs]
    play = {r["run_id"]: episodes_of(env_id, runs_dir / r["run_id"], episodes, seed) for r in records}
    env = make_env(env_id)
    rows = []
    for rec in records:
        run_id = rec["run_id"]
        reward = RewardModel.load(runs_dir / run_id / "reward_model.pt", env.observation_space, env.action_space)
        others = [scored(reward, play[r["run_id"]]) for r in references if r["run_id"] != run_id]
        evals = rec["metrics"]["history"]
        history = [h["true_return"] for h in evals]
        best = max(range(len(evals)), key=history.__getitem__) if evals else None
        rows.append({
            "run_id": run_id, "labels": rec["spec"]["labels"], "seed": rec["spec"]["seed"],
            "final": rec["metrics"]["true_return"], "peak": max(history + [rec["metrics"]["true_return"]]),
            "peak_step": None if best is None else evals[best]["env_steps"], "last_refit": last_refit(runs_dir / run_id),
            "history": history, "own": scored(reward, play[run_id]),
            "refs": {k: float(np.mean([o[k] for o in others])) for k in ("true", "learned", "length")},
        })
    env.close()
    ref_true = float(np.mean([r["metrics"]["true_return"] for r in references]))
    for row in rows:
        row["course"] = course(row, ref_true)
        for kind in ("learned", "true"):  # a ratio of returns means nothing below 0
            ref = row["refs"][kind]
            row[f"{kind}_ratio"] = row["own"][kind] / ref if ref > 0 else None
    return {"env": env_id, "pattern": pattern, "references": [r["run_id"] for r in references],
            "reference_mean_return": ref_true, "episodes": episodes, "env_seed": seed, "runs": rows}


def course(row: dict[str, Any], ref_true: float) -> str:
    """How the run's evaluations went: `fell back` from a peak (`on its final reward` where the peak came after the
    last refit), `never took off`, or `climbed`."""
    if row["peak"] < TOOK_OFF * ref_true:
        return "never took off"
    if row["final"] < FELL_BACK * row["peak"]:
        fixed = row.get("last_refit") is not None and row.get("peak_step") is not None \
            and row["peak_step"] >= row["last_refit"]
        return "fell back on its final reward" if fixed else "fell back"
    return "climbed"


def markdown(summary: dict[str, Any], command: str) -> str:
    header = ["labels", "seed", "course", "best / final true return", "own episodes: true, learned",
              "references' episodes: true, learned", "own / references: learned, true"]
    body = []
    for r in sorted(summary["runs"], key=lambda r: (r["labels"], r["seed"])):
        own, ref = r["own"], r["refs"]
        ratios = ", ".join("–" if r[k] is None else f"{r[k]:.2f}" for k in ("learned_ratio", "true_ratio"))
        body.append([r["labels"], r["seed"], r["course"], f"{r['peak']:.0f} / {r['final']:.0f}",
                     f"{own['true']:.0f}, {own['learned']:.0f} ({own['length']:.0f} steps)",
                     f"{ref['true']:.0f}, {ref['learned']:.0f}", ratios])
    refs = ", ".join(f"`{r}`" for r in summary["references"])
    return "\n".join([
        f"# Stalled runs of {summary['env']}: the reward or the policy?", "",
        f"Command: `{command}`", "",
        f"References: the {len(summary['references'])} runs that ended highest ({refs}; mean final true return "
        f"{summary['reference_mean_return']:.0f}). Each policy plays {summary['episodes']} deterministic episodes "
        f"(env seed {summary['env_seed']}); each run's own final reward scores its own policy's episodes and the "
        f"references' (a reference is not its own reference). Course: from the run's evaluation history "
        f"(`never took off`: best below {TOOK_OFF} of the references' mean; `fell back`: final below {FELL_BACK} of "
        f"its best; `on its final reward`: its best came after the reward's last refit).", "",
        *markdown_table(header, body), ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, help="glob of the run ids to diagnose (one env), e.g. "
                   "'Hopper-v5__ppo__oracle__uniform__in_obs+act+act_sq__L*__seed*'")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks/results/efficiency"))
    p.add_argument("--runs-dir", default=str(ROOT / "runs/efficiency"))
    p.add_argument("--refs", type=int, default=3, help="how many of the best runs serve as references")
    p.add_argument("--episodes", type=int, default=3, help="deterministic episodes per policy")
    p.add_argument("--name", default="stalls", help="output files <results-dir>/<name>.json and .md")
    args = p.parse_args(argv)
    results = Path(args.results_dir)
    try:
        summary = diagnose(results, Path(args.runs_dir), args.runs, args.refs, args.episodes)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python benchmarks/stall_diagnosis.py --runs '" + args.runs + "'" + (
        f" --name {args.name}" if args.name != "stalls" else "")
    write_report(results, args.name, command, summary, markdown(summary, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
