"""Rewarded soups of language models (Rame et al. 2023): models fine-tuned from one reference, each on its own
objective, are interpolated in weight space, theta(lambda) = sum_i lambda_i theta_i, and every mix is scored on
every objective of the task and by its KL to the reference. Models of other architectures, or tuned from
another reference, are refused: their weights do not live in one space.

`prefrl llm soup --models A B --task sentiment --out DIR` writes soup.json and front.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from prefrl.core.data import write_json
from prefrl.core.pareto import hypervolume, iter_mixes, simplex_grid

__all__ = ["evaluate_objectives", "soup_models", "trained_reference"]


def trained_reference(model: str | Path) -> str:
    """The reference a `prefrl llm train` output was tuned from (its train_log.json)."""
    log = Path(model) / "train_log.json"
    if not log.is_file():
        raise ValueError(f"{model} has no train_log.json naming its reference model: pass --reference DIR")
    try:
        return str(json.loads(log.read_text())["reference"])
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{log} is corrupt: {exc}") from exc


def evaluate_objectives(model, reference, tokenizer, task, objectives: list[str], *, n: int, seed: int) -> dict:
    """Each objective's mean over `n` sampled completions for fresh prompts, and the KL to the reference."""
    from prefrl.llm.tasks import evaluate

    res = evaluate(model, reference, tokenizer, task, n=n, seed=seed, objectives=objectives)
    return {"objectives": res["objectives"], "kl": res["kl"]}


def soup_models(models: list[str | Path], task_name: str, out: str | Path, *, lambdas: int = 11,
                objectives: list[str] | None = None, reference: str | Path | None = None, n: int = 256,
                seed: int = 123, progress: bool = True) -> dict[str, Any]:
    """Evaluate the weight interpolations of `models` on the task's objectives; writes soup.json and front.png."""
    from prefrl.llm.tasks import get_task
    from prefrl.llm.train import load_model
    from prefrl.runs.plotting import plot_fronts

    task = get_task(task_name)
    if len(models) < 2:
        raise ValueError(f"a soup needs at least 2 models, got {len(models)}")
    objectives = list(objectives or (task.objectives or {}))
    if not objectives:
        raise ValueError(f"task {task_name} names no objectives: pass --objectives")
    for o in objectives:
        task.objective(o)
    grid = simplex_grid(len(models), lambdas)
    refs = {trained_reference(m) for m in models} if reference is None else {str(reference)}
    if len(refs) != 1:
        raise ValueError(f"the models were tuned from different references {sorted(refs)}: a soup mixes models "
                         f"fine-tuned from one reference")
    ref_path = refs.pop()
    for path in [*models, ref_path]:
        if not Path(path).is_dir():
            raise FileNotFoundError(f"model path {path} does not exist (expected a save_pretrained directory)")
    ref_model, tokenizer = load_model(ref_path)
    loaded = [load_model(m)[0] for m in models]
    states = [m.state_dict() for m in loaded]
    mixed = loaded[0]
    points = []
    with torch.no_grad():
        for lam, state in iter_mixes(states, grid, progress=progress):
            mixed.load_state_dict(state)
            mixed.eval()
            points.append({"lambda": list(lam), **evaluate_objectives(mixed, ref_model, tokenizer, task, objectives,
                                                                       n=n, seed=seed)})
    start = evaluate_objectives(ref_model, ref_model, tokenizer, task, objectives, n=n, seed=seed)
    means = [[p["objectives"][o] for o in objectives] for p in points]
    ref_point = [min(min(m[i] for m in means), start["objectives"][o]) for i, o in enumerate(objectives)]
    result = {"task": task_name, "models": [str(m) for m in models], "reference": ref_path,
              "objectives": objectives, "samples": n, "seed": seed, "points": points, "start": start,
              "ref": ref_point, "hypervolume": hypervolume(means, ref_point)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "soup.json", result)
    if len(objectives) >= 2:
        along = ([p["lambda"][0] for p in points], {o: [m[i] for m in means] for i, o in enumerate(objectives)}) \
            if len(models) == 2 else None
        plot_fronts({"rewarded soup": [m[:2] for m in means]}, out / "front.png", objectives[0], objectives[1],
                    title=f"{task_name}: rewarded soup of {len(models)} models",
                    marks={"reference": [start["objectives"][o] for o in objectives[:2]]}, along=along)
    return result
