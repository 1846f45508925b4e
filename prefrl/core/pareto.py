"""Fronts of trade-offs between objectives (all maximized): which points are Pareto-optimal, the hypervolume they
dominate above a reference point (the usual one-number summary of a front), and the weight interpolation of
rewarded soups (Rame et al. 2023): theta(lambda) = sum_i lambda_i theta_i over a grid of the simplex."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

__all__ = ["hypervolume", "iter_mixes", "mix_state_dicts", "pareto_mask", "simplex_grid"]


def _points(points: object, what: str = "points") -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{what} must have shape (N, objectives), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contain non-finite values; expected finite objective values")
    return arr


def pareto_mask(points: object) -> np.ndarray:
    """Boolean mask of the points no other point dominates (>= on every objective, > on one)."""
    p = _points(points)
    ge = (p[:, None, :] >= p[None, :, :]).all(axis=2)
    gt = (p[:, None, :] > p[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)
    return ~dominated


def hypervolume(points: object, ref: object) -> float:
    """Volume dominated by `points` (N, d) and bounded below by `ref` (d,); points not above ref add nothing."""
    p = _points(points)
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if r.shape != (p.shape[1],) or not np.all(np.isfinite(r)):
        raise ValueError(f"ref must be {p.shape[1]} finite values (one per objective), got {np.asarray(ref).tolist()}")
    p = p[(p > r).all(axis=1)]
    if len(p) == 0:
        return 0.0
    return float(_hv(p[pareto_mask(p)], r))


def _hv(p: np.ndarray, r: np.ndarray) -> float:
    if p.shape[1] == 1:
        return float(p[:, 0].max() - r[0])
    # Slice along the last objective: between consecutive levels, the points at or above the level dominate a
    # (d-1)-dimensional volume.
    order = np.argsort(-p[:, -1])
    p = p[order]
    total = 0.0
    for i in range(len(p)):
        top = p[i, -1]
        bottom = p[i + 1, -1] if i + 1 < len(p) else r[-1]
        if top > bottom:
            total += (top - bottom) * _hv(p[: i + 1, :-1], r[:-1])
    return total


def simplex_grid(n: int, points: int) -> list[tuple[float, ...]]:
    """Weights of n runs on a grid of the simplex, `points` per edge (n=2, points=11: (1, 0), (0.9, 0.1) ... (0, 1))."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"a soup needs at least 2 runs, got {n!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"lambdas must be an integer >= 2 (points per edge of the simplex), got {points!r}")
    k = points - 1
    grid = [c for c in itertools.product(range(k, -1, -1), repeat=n) if sum(c) == k]
    return [tuple(x / k for x in c) for c in grid]


def mix_state_dicts(states: Sequence[Mapping[str, torch.Tensor]], lambdas: Sequence[float]) -> dict[str, torch.Tensor]:
    """sum_i lambda_i * states[i] for floating tensors; other entries (step counters) are taken from the first.
    Refuses lambdas off the simplex and state dicts of other keys or shapes, naming the first difference."""
    if len(states) != len(lambdas):
        raise ValueError(f"{len(states)} state dicts but {len(lambdas)} lambdas; expected one lambda per state dict")
    lam = np.asarray(lambdas, dtype=np.float64)
    if not np.all(np.isfinite(lam)) or (lam < 0).any() or abs(lam.sum() - 1.0) > 1e-6:
        raise ValueError(f"lambdas {lam.tolist()}: expected numbers >= 0 summing to 1 (a point of the simplex)")
    keys = list(states[0])
    for i, st in enumerate(states[1:], 1):
        if list(st) != keys:
            extra = sorted(set(st) ^ set(keys))[:3]
            raise ValueError(f"model {i} has other parameters than model 0 (e.g. {extra}): expected one architecture")
        for k in keys:
            if st[k].shape != states[0][k].shape:
                raise ValueError(f"parameter {k!r} has shape {tuple(st[k].shape)} in model {i}, "
                                 f"{tuple(states[0][k].shape)} in model 0: expected one architecture")
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        first = states[0][k]
        if torch.is_floating_point(first):
            out[k] = sum(float(lam) * st[k].to(torch.float32) for lam, st in zip(lambdas, states)).to(first.dtype)
        else:
            out[k] = first.clone()
    return out


def iter_mixes(states: Sequence[Mapping[str, torch.Tensor]], grid: Sequence[Sequence[float]], *,
               progress: bool = False) -> Iterator[tuple[tuple[float, ...], dict[str, torch.Tensor]]]:
    """(lambda, mixed state dict) for each lambda of `grid`, with a progress bar if asked: a soup's loop."""
    if progress:
        from tqdm.auto import tqdm

        grid = tqdm(grid, desc="soup", unit="lambda")
    for lam in grid:
        yield tuple(lam), mix_state_dicts(states, lam)
