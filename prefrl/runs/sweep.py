"""Many `prefrl train` runs at once: local worker processes or Ray tasks, resumable, failure-tolerant.

A sweep is a list of tasks, each a TrainConfig plus the path of its record (a JSON file). A
finished run's record holds its metrics; a failed run's record holds the error, so one bad run
never stops the others. Benchmarks build the grid of tasks and aggregate the records.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from prefrl.core.data import write_json

RECORD_FORMAT_VERSION = 1


@dataclass
class Task:
    """One run of a sweep: the train config (as a dict; `kind: "bc"` for a BCConfig), where its record goes,
    and labels for the summary."""

    run_id: str
    config: dict[str, Any]
    record: str
    meta: dict[str, Any] = field(default_factory=dict)


class IncompatibleResults(ValueError):
    """A results directory written by another version of the record format."""


def read_record(path: str | Path) -> dict[str, Any] | None:
    """A run record, or None if missing; ValueError if corrupt, IncompatibleResults if of another version."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        version, status = record["format_version"], record["status"]
        if status == "ok":
            record["metrics"]["true_return"], record["metrics"]["history"]  # noqa: B018
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"run file {path} is corrupt ({exc.__class__.__name__}: {exc})") from exc
    if version != RECORD_FORMAT_VERSION:
        raise IncompatibleResults(
            f"run file {path} has format version {version}, this version writes {RECORD_FORMAT_VERSION}: "
            f"move {path.parent} aside or choose another results directory"
        )
    return record


def run_task(task: Task) -> dict[str, Any]:
    """Train (or resume a killed) run and write its record; a failure is recorded, not raised."""
    import torch

    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import resume, train

    torch.set_num_threads(1)
    out = Path(task.config["out"])
    record: dict[str, Any] = {"format_version": RECORD_FORMAT_VERSION, "run_id": task.run_id, **task.meta}
    t0 = time.time()
    try:
        if (out / "metrics.json").exists():  # finished, but its record was lost: never train it again
            metrics = json.loads((out / "metrics.json").read_text())
        elif task.config.get("kind") == "bc":  # behaviour cloning: minutes at most, so started afresh
            from prefrl.runs.bc import BCConfig, behaviour_clone

            metrics = behaviour_clone(BCConfig(**{**task.config, "progress": False}), overwrite=True)
        elif (out / "config.json").exists():
            metrics = resume(out, progress=False)
        else:
            metrics = train(TrainConfig(**{**task.config, "progress": False}), overwrite=True)
        record.update(status="ok", metrics=metrics)
    except Exception as exc:  # noqa: BLE001 - recorded so one bad run never stops a sweep
        record.update(status="failed", error=f"{exc.__class__.__name__}: {exc}", traceback=traceback.format_exc())
    record["seconds"] = time.time() - t0
    write_json(task.record, record)
    return record


class Progress:
    """Runs done / running / left and time per run, one line per event (so logs read well too)."""

    def __init__(self, total: int, skipped: int, stream=None):
        self.total, self.done, self.running, self.failed = total, skipped, 0, 0
        self.seconds: list[float] = []
        self.t0, self.stream = time.time(), stream

    def _line(self, text: str) -> None:
        left = self.total - self.done - self.running
        per = f"{np.mean(self.seconds):.0f} s/run" if self.seconds else "-- s/run"
        print(f"[{self.done}/{self.total} done, {self.running} running, {left} left, {self.failed} failed, {per}, "
              f"{time.time() - self.t0:.0f} s] {text}", file=self.stream or sys.stderr, flush=True)

    def started(self, task: Task) -> None:
        """A run was handed to a worker."""
        self.running += 1
        self._line(f"start {task.run_id}")

    def finished(self, record: dict[str, Any]) -> None:
        """A run ended, well or not."""
        self.running -= 1
        self.done += 1
        self.seconds.append(float(record.get("seconds", 0.0)))
        if record["status"] == "ok":
            self._line(f"done  {record['run_id']}: true return {record['metrics']['true_return']:.1f}")
        else:
            self.failed += 1
            self._line(f"FAILED {record['run_id']}: {record.get('error')}")


def _lost(task: Task, exc: BaseException) -> dict[str, Any]:
    """The record of a run whose worker died before it could write one."""
    record = {"format_version": RECORD_FORMAT_VERSION, "run_id": task.run_id, **task.meta, "status": "failed",
              "error": f"worker lost: {exc!r}", "seconds": 0.0}
    write_json(task.record, record)
    return record


def run_local(tasks: list[Task], workers: int, progress: Progress) -> None:
    """Run tasks in `workers` processes (in this process when workers == 1)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        for task in tasks:
            progress.started(task)
            progress.finished(run_task(task))
        return
    # spawn, not fork: MuJoCo's GL context and torch's thread pools must not be forked mid-use
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        queue, pending = list(tasks), {}
        while queue or pending:
            while queue and len(pending) < workers:
                task = queue.pop(0)
                pending[pool.submit(run_task, task)] = task
                progress.started(task)
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                try:
                    progress.finished(fut.result())
                except Exception as exc:  # noqa: BLE001 - the worker process itself died
                    progress.finished(_lost(task, exc))


def run_ray(tasks: list[Task], address: str | None, progress: Progress) -> None:
    """Run each task as a Ray task with one CPU, on the cluster at `address` or a local Ray."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError("the Ray backend needs Ray: pip install 'prefrl[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_task)
    pending = {}
    for task in tasks:
        task.config = {**task.config, "out": os.path.abspath(task.config["out"])}
        task.record = os.path.abspath(task.record)
        pending[remote.remote(task)] = task
        progress.started(task)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            task = pending.pop(ref)
            try:
                progress.finished(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - the Ray worker died
                progress.finished(_lost(task, exc))


# --------------------------------------------------------------------------- summaries over seeds
def group_records(records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], tuple]) -> dict[tuple, list]:
    """Records grouped by `key(record)` (e.g. everything but the seed), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return groups


def seed_stats(values: Iterable[float]) -> tuple[float, float | None]:
    """(mean, sample std with ddof=1) over seeds; the std is None for a single seed."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to summarize")
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def iqm(values: Iterable[float]) -> float:
    """Interquartile mean, rliable's aggregate: int(n/4) values trimmed from each end of the sorted values, the
    rest averaged (scipy.stats.trim_mean(values, 0.25))."""
    x = np.sort(np.asarray(list(values), dtype=np.float64))
    if x.size == 0:
        raise ValueError("no values to aggregate")
    k = int(0.25 * x.size)
    return float(x[k:x.size - k].mean())


def stratified_bootstrap_ci(scores: dict[str, list[float]], statistic=iqm, *, reps: int = 2000, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high) of `statistic` over all runs, with a percentile bootstrap that resamples runs
    within each stratum (task), as rliable does (Agarwal et al. 2021)."""
    strata = [np.asarray(v, dtype=np.float64) for v in scores.values() if len(v)]
    if not strata:
        raise ValueError("no scores to aggregate")
    rng = np.random.default_rng(seed)
    point = statistic(np.concatenate(strata))
    stats = np.empty(reps)
    for r in range(reps):
        stats[r] = statistic(np.concatenate([s[rng.integers(0, s.size, s.size)] for s in strata]))
    return (point, *_percentiles(stats, level))


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def probability_of_improvement(x: dict[str, list[float]], y: dict[str, list[float]], *, reps: int = 2000,
                               level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high) of rliable's average probability of improvement P(X > Y) (Agarwal et al. 2021):
    per task, the chance that a run of X scores above a run of Y (ties count half, the Mann-Whitney U over m n),
    averaged over the tasks both have; the CI from a percentile bootstrap that resamples each method's runs within
    each task. 0.5: no better, no worse. Tasks only one of them ran are left out."""
    tasks = [t for t in x if t in y and len(x[t]) and len(y[t])]
    if not tasks:
        raise ValueError(f"no task with runs of both methods (X: {sorted(x)}, Y: {sorted(y)})")
    pairs = [(np.asarray(x[t], dtype=np.float64), np.asarray(y[t], dtype=np.float64)) for t in tasks]
    poi = lambda samples: float(np.mean([chance_above(a, b) for a, b in samples]))  # noqa: E731
    rng = np.random.default_rng(seed)
    draw = lambda v: v[rng.integers(0, v.size, v.size)]  # noqa: E731
    stats = np.array([poi([(draw(a), draw(b)) for a, b in pairs]) for _ in range(reps)])
    return (poi(pairs), *_percentiles(stats, level))


def chance_above(a: Iterable[float], b: Iterable[float]) -> float:
    """On one task: the share of (a run of a, a run of b) pairs where a's run scores higher, ties counting half."""
    a, b = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    return float(((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])).mean())


def mean_or_none(values: Iterable[Any]) -> float | None:
    """Mean of the values that are not None (None if there are none)."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def mean_std_text(mean: float, std: float | None, fmt: str = "{:.1f}") -> str:
    """'mean ± std' ('mean' alone for one seed)."""
    return fmt.format(mean) if std is None else f"{fmt.format(mean)} ± {fmt.format(std)}"


def write_report(results: Path, name: str, command: str, summary: dict[str, Any], text: str) -> None:
    """A diagnosis's outputs: `<results>/<name>.json` (the summary with the command that made it) and `<name>.md`
    (`text`), which is also printed."""
    write_json(results / f"{name}.json", {"command": command, **summary})
    (results / f"{name}.md").write_text(text)
    print(text)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines
