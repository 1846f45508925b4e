"""Learned-vs-true reward curves from run directories (matplotlib, headless)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_metrics(run_dir: str | Path) -> dict:
    """metrics.json of a finished run, with a clear error for a missing or corrupt one."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a finished prefrl run: {path} does not exist")
    try:
        metrics = json.loads(path.read_text())
        metrics["history"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is corrupt or not written by prefrl: {exc}") from exc
    return metrics


def run_label(metrics: dict) -> str:
    """A short legend entry: 'ppo, 700 oracle labels' or 'ppo, true reward'."""
    if metrics.get("reward") == "true":
        return f"{metrics['algo']}, true reward (seed {metrics['seed']})"
    return f"{metrics['algo']}, {metrics['labels']} {metrics.get('teacher', '')} labels (seed {metrics['seed']})"


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Overlay runs: true return vs env steps (left), learned return of preference runs (right)."""
    runs = [load_metrics(d) for d in run_dirs]
    fig, (ax_true, ax_learned) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in runs:
        steps = [h["env_steps"] for h in m["history"]]
        line = ax_true.plot(steps, [h["true_return"] for h in m["history"]], marker="o", ms=3, label=run_label(m))[0]
        learned = [h.get("learned_return") for h in m["history"]]
        if any(v is not None for v in learned):
            ax_learned.plot(steps, [float("nan") if v is None else v for v in learned], marker="o", ms=3,
                            color=line.get_color(), label=run_label(m))
    ax_true.set(title="true reward (what we want)", xlabel="env steps", ylabel="episode return")
    ax_learned.set(title="learned reward (what the agent sees)", xlabel="env steps", ylabel="episode return")
    for ax in (ax_true, ax_learned):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title or runs[0]["env"])
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
