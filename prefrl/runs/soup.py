"""`prefrl soup`: rewarded soups of policies (Rame et al. 2023).

Runs fine-tuned from one start (`prefrl train --init-policy START`), each on its own objective, are
interpolated in weight space, theta(lambda) = sum_i lambda_i theta_i, and every interpolated policy is
evaluated on every objective: the front of trade-offs without training anything more. Runs that normalize
observations differently did not share a start, and their weights are refused: an interpolated network would
see inputs neither run was trained on.

Writes soup.json (each lambda with each objective's mean and sample std over the episodes, the endpoints, the
start, the hypervolume) and front.png (objective A vs B along lambda, the endpoints and the start; beside it
each objective along lambda).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from prefrl.core.data import write_json
from prefrl.core.pareto import hypervolume, iter_mixes, simplex_grid
from prefrl.runs.common import json_safe
from prefrl.runs.config import TrainConfig
from prefrl.runs.plotting import plot_fronts
from prefrl.sb3.envs import make_vec_env
from prefrl.sb3.evaluation import evaluate_policy
from prefrl.sb3.objectives import RewardTerms, env_reward_terms, parse_objective
from prefrl.sb3.policies import load_algorithm, read_normalization
from prefrl.sb3.wrappers import LearnedRewardVecEnv

__all__ = ["SoupRun", "evaluate_objectives", "load_soup_runs", "soup"]


@dataclass
class SoupRun:
    """A finished run's policy, config and observation normalization (None if it did not normalize)."""

    path: Path
    config: TrainConfig
    model: BaseAlgorithm
    obs_stats: tuple[np.ndarray, np.ndarray] | None
    env_kwargs: dict[str, Any]


def _load_run(path: str | Path) -> SoupRun:
    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "policy.zip").is_file():
        raise ValueError(f"{path} is not a finished prefrl run: expected config.json and policy.zip in it")
    config = TrainConfig.from_json(path / "config.json")
    resolved = json.loads((path / "config.json").read_text()).get("resolved", {})
    stats = read_normalization(path / "vecnormalize.npz") if (path / "vecnormalize.npz").is_file() else {}
    obs = (np.asarray(stats["obs"].mean), np.asarray(stats["obs"].var)) if "obs" in stats else None
    model = load_algorithm(path / "policy.zip", config.algo, device="cpu")
    return SoupRun(path, config, model, obs, resolved.get("env_kwargs", config.env_kwargs))


def load_soup_runs(paths: list[str | Path]) -> list[SoupRun]:
    """The runs of a soup, checked to share env, learner and observation normalization."""
    runs = [_load_run(p) for p in paths]
    for run in runs[1:]:
        _check_compatible(run, runs[0])
    return runs


def _check_compatible(run: SoupRun, first: SoupRun) -> None:
    """Refuse a run of another env or learner, or one whose observation normalization differs from `first`'s."""
    if (run.config.env_id, run.config.algo) != (first.config.env_id, first.config.algo):
        raise ValueError(f"{run.path} is a {run.config.algo} run on {run.config.env}, {first.path} a "
                         f"{first.config.algo} run on {first.config.env}: a soup mixes runs of one env and learner")
    same = (run.obs_stats is None) == (first.obs_stats is None) and (
        run.obs_stats is None or all(np.array_equal(a, b) for a, b in zip(run.obs_stats, first.obs_stats)))
    if not same:
        raise ValueError(f"{run.path} and {first.path} normalize observations differently: expected runs "
                         f"fine-tuned from one start (prefrl train --init-policy START), whose normalization is "
                         f"frozen, since mixed weights would see inputs neither run was trained on")


def evaluate_objectives(model: BaseAlgorithm, run: SoupRun, objectives: list[str], episodes: int,
                        seed: int) -> dict[str, dict[str, float]]:
    """Mean and sample std (ddof=1) of each objective's episode return, deterministic actions."""
    venv = make_vec_env(run.config.env, 1, seed, wrap=RewardTerms, env_kwargs=run.env_kwargs)
    env = LearnedRewardVecEnv(venv, None)
    if run.obs_stats is not None:
        env = VecNormalize(env, training=False, norm_obs=True, norm_reward=False)
        env.obs_rms.mean, env.obs_rms.var = run.obs_stats
    try:
        res = evaluate_policy(model, env, episodes)
    finally:
        env.close()
    out = {}
    for text in objectives:
        values = [parse_objective(text).value(t, run.config.env_id) for t in res["episode_terms"]]
        out[text] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    return out


def _objectives_of(runs: list[SoupRun], objectives: list[str] | None) -> list[str]:
    if objectives:
        return list(objectives)
    named = list(dict.fromkeys(r.config.objective for r in runs if r.config.objective))
    if len(named) < 2:
        raise ValueError(f"the runs name {len(named)} distinct objective(s) ({named}): give --objectives A B "
                         f"(e.g. forward energy) to evaluate the soup on")
    return named


def soup(paths: list[str | Path], out: str | Path, *, lambdas: int = 11, episodes: int = 10,
         objectives: list[str] | None = None, start: str | Path | None = None, seed: int = 0,
         ref: list[float] | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate the weight interpolations of `paths` on each objective; writes soup.json and front.png in `out`."""
    if len(paths) < 2:
        raise ValueError(f"a soup needs at least 2 runs, got {len(paths)}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 2:
        raise ValueError(f"episodes must be an integer >= 2 (a std needs two), got {episodes!r}")
    grid = simplex_grid(len(paths), lambdas)
    runs = load_soup_runs(list(paths))
    objectives = _objectives_of(runs, objectives)
    terms = env_reward_terms(runs[0].config.env_id, runs[0].env_kwargs)
    for text in objectives:  # refuse an unknown term, naming the env's, before any episode is run
        parse_objective(text).resolve(terms, runs[0].config.env)
    start = start if start is not None else runs[0].config.init_policy
    if start is not None and all(r.config.init_policy == runs[0].config.init_policy for r in runs):
        start_run = _load_run(start)
        _check_compatible(start_run, runs[0])  # the start must share the runs' normalization too
    else:
        start_run = None
    states = [{k: v.detach().clone() for k, v in r.model.policy.state_dict().items()} for r in runs]
    model = runs[0].model
    points = []
    with torch.no_grad():
        for lam, state in iter_mixes(states, grid, progress=progress):
            model.policy.load_state_dict(state)
            points.append({"lambda": list(lam), "objectives": evaluate_objectives(model, runs[0], objectives,
                                                                                  episodes, seed)})
    result: dict[str, Any] = {
        "env": runs[0].config.env, "runs": [str(r.path) for r in runs], "objectives": objectives,
        "episodes": episodes, "seed": seed, "points": points,
        "start": None if start_run is None else {
            "run": str(start_run.path),
            "objectives": evaluate_objectives(start_run.model, start_run, objectives, episodes, seed)},
    }
    means = np.array([[p["objectives"][o]["mean"] for o in objectives] for p in points])
    if ref is None:  # the worst value of each objective seen (start included): a front's own reference
        all_means = means if start_run is None else np.vstack(
            [means, [[result["start"]["objectives"][o]["mean"] for o in objectives]]])
        ref = all_means.min(axis=0).tolist()
    result["ref"] = list(ref)
    result["hypervolume"] = hypervolume(means, ref)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "soup.json", json_safe(result))
    if len(objectives) >= 2:
        ends = {f"{Path(r.path).name} (fine-tuned)": means[[i for i, p in enumerate(points)
                                                            if p["lambda"][j] == 1.0][0], :2]
                for j, r in enumerate(runs)}
        if start_run is not None:
            ends["start"] = [result["start"]["objectives"][o]["mean"] for o in objectives[:2]]
        along = None
        if len(runs) == 2:
            along = ([p["lambda"][0] for p in points], {o: means[:, i].tolist() for i, o in enumerate(objectives)})
        plot_fronts({"rewarded soup": means[:, :2].tolist()}, out / "front.png", objectives[0], objectives[1],
                    title=f"{runs[0].config.env}: rewarded soup of {len(runs)} runs", marks=ends, along=along)
    return result
