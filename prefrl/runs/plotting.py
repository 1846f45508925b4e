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
    return _save(fig, out)


def _save(fig: plt.Figure, out: str | Path) -> Path:
    """Lay out, write (making the folder) and close a figure."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_fronts(fronts: dict[str, Sequence[Sequence[float]]], out: str | Path, xlabel: str, ylabel: str, *,
                title: str | None = None, marks: dict[str, Sequence[float]] | None = None,
                along: tuple[Sequence[float], dict[str, Sequence[float]]] | None = None) -> Path:
    """Trade-off fronts of two objectives: one line per front (points in the order given, e.g. along lambda),
    single named points in `marks` (a shared start, fine-tuned endpoints); with `along` = (lambdas, {objective:
    values}) a second panel shows each objective along the interpolation."""
    fig, axes = plt.subplots(1, 2 if along else 1, figsize=(11 if along else 5.8, 4.4))
    ax = axes[0] if along else axes
    for name, pts in fronts.items():
        xy = list(zip(*pts)) if len(pts) else ([], [])
        ax.plot(xy[0], xy[1], marker="o", ms=3.5, label=name)
    for name, pt in (marks or {}).items():
        ax.scatter([pt[0]], [pt[1]], marker="*", s=140, zorder=5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if along:
        lambdas, series = along
        for name, values in series.items():
            axes[1].plot(lambdas, values, marker="o", ms=3.5, label=name)
        axes[1].set_xlabel("lambda (weight of the first run)")
        axes[1].set_ylabel("objective")
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, out)
