"""Synthetic teachers that label segment pairs from the true reward (B-Pref, Lee et al. 2021).

A batch of N segment pairs is given as true per-step rewards ``rewards_a`` and ``rewards_b``
of shape (N, H) plus optional float masks of the same shape (1 = real step, 0 = padding after
the episode ended). Labels are P(segment a preferred): 1.0 = a better, 0.0 = b better,
0.5 = equally preferable, NaN = the teacher skipped the query.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from prefrl.core.numeric import sigmoid
from prefrl.feedback.base import Teacher

__all__ = ["SyntheticTeacher", "TEACHERS", "make_teacher"]


def _check_rewards(rewards: object, arg: str) -> np.ndarray:
    """Return ``rewards`` as a finite float (N, H) array or raise ValueError naming ``arg``."""
    arr = np.asarray(rewards, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{arg} must have shape (N, H), got shape {arr.shape}")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{arg} contains {bad} non-finite value(s) (NaN or inf); expected finite rewards")
    return arr


def _check_mask(mask: object, shape: tuple[int, ...], arg: str) -> np.ndarray:
    """Return ``mask`` as a float 0/1 array of ``shape`` (all ones if None)."""
    if mask is None:
        return np.ones(shape, dtype=np.float64)
    arr = np.asarray(mask, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{arg} has shape {arr.shape}, expected the rewards' shape {shape}")
    bad = int(np.count_nonzero((arr != 0.0) & (arr != 1.0)))
    if bad:
        raise ValueError(f"{arg} contains {bad} value(s) other than 0 or 1; expected a 0/1 step mask")
    return arr


@dataclass(frozen=True)
class SyntheticTeacher(Teacher):
    """Scripted teacher answering preference queries from the true reward, with B-Pref irrationalities."""

    name: str = "oracle"
    beta: float = math.inf  # Bradley-Terry rationality; inf = deterministic comparison
    gamma: float = 1.0  # myopic discount in (0, 1]; later steps weigh more
    mistake: float = 0.0  # probability of flipping a 0/1 answer
    skip: float = 0.0  # skip threshold as a fraction of the typical segment return
    equal: float = 0.0  # "equally good" threshold as a fraction of the typical segment return
    random_answers: float = 0.0  # Christiano et al.: probability of a uniformly random 0/1 answer

    def __post_init__(self) -> None:
        """Validate the teacher's parameters."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if math.isnan(self.beta) or self.beta <= 0:
            raise ValueError(f"beta must be > 0 (math.inf for a deterministic teacher), got {self.beta}")
        if not (0.0 < self.gamma <= 1.0):
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        for field in ("mistake", "random_answers"):
            value = getattr(self, field)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{field} must be a probability in [0, 1], got {value}")
        for field in ("skip", "equal"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{field} must be a finite threshold fraction >= 0, got {value}")

    def label(
        self,
        rewards_a: np.ndarray,
        rewards_b: np.ndarray,
        mask_a: np.ndarray | None = None,
        mask_b: np.ndarray | None = None,
        *,
        rng: np.random.Generator,
        scale: float | None = None,
    ) -> np.ndarray:
        """Return float labels of shape (N,): P(a preferred), 0.5 for equal, NaN for skipped."""
        ra = _check_rewards(rewards_a, "rewards_a")
        rb = _check_rewards(rewards_b, "rewards_b")
        if ra.shape != rb.shape:
            raise ValueError(
                f"rewards_a has shape {ra.shape} but rewards_b has shape {rb.shape}; expected equal shapes"
            )
        ma = _check_mask(mask_a, ra.shape, "mask_a")
        mb = _check_mask(mask_b, rb.shape, "mask_b")
        if scale is not None and not (math.isfinite(scale) and scale >= 0.0):
            raise ValueError(f"scale must be a finite typical segment return >= 0, got {scale}")

        n, horizon = ra.shape
        # Multiplying by the mask drops padded steps even if the caller left junk rewards there.
        plain_a = (ra * ma).sum(axis=1)
        plain_b = (rb * mb).sum(axis=1)
        # Myopic teacher: weight gamma^(H-1-t), so the most recent steps count most.
        weights = self.gamma ** np.arange(horizon - 1, -1, -1, dtype=np.float64)
        ret_a = (ra * ma) @ weights
        ret_b = (rb * mb) @ weights

        if scale is None and n > 0:
            # Typical segment return, measured without myopic weighting as in B-Pref.
            scale = float(np.mean(np.abs(np.concatenate([plain_a, plain_b]))))
        elif scale is None:
            scale = 0.0

        # B-Pref order: skip, then "equally good", then the (ir)rational answer, then mistakes.
        labels = np.empty(n, dtype=np.float64)
        skipped = np.zeros(n, dtype=bool)
        if self.skip > 0:
            # Thresholds compare plain (undiscounted) returns, as B-Pref does.
            skipped = np.maximum(plain_a, plain_b) < self.skip * scale
        tied = np.zeros(n, dtype=bool)
        if self.equal > 0:
            tied = ~skipped & (np.abs(plain_a - plain_b) < self.equal * scale)
        answered = ~skipped & ~tied

        diff = ret_a - ret_b
        if math.isinf(self.beta):
            rational = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
        else:
            # Draw for every pair so the random stream does not depend on which pairs were skipped.
            rational = (rng.random(n) < sigmoid(self.beta * diff)).astype(np.float64)
        labels[answered] = rational[answered]
        labels[tied] = 0.5
        labels[skipped] = np.nan

        if self.mistake > 0:
            # Only confident 0/1 answers can be flipped; a 0.5 has no "wrong side".
            flip = (rng.random(n) < self.mistake) & ((labels == 0.0) | (labels == 1.0))
            labels[flip] = 1.0 - labels[flip]

        if self.random_answers > 0:
            coin = (rng.random(n) < 0.5).astype(np.float64)
            replace = (rng.random(n) < self.random_answers) & ~skipped
            labels[replace] = coin[replace]
        return labels


TEACHERS: dict[str, SyntheticTeacher] = {
    "oracle": SyntheticTeacher(name="oracle"),
    "noisy": SyntheticTeacher(name="noisy", beta=1.0),
    "mistake": SyntheticTeacher(name="mistake", mistake=0.1),
    "myopic": SyntheticTeacher(name="myopic", gamma=0.9),
    "skip": SyntheticTeacher(name="skip", skip=0.1),
    "equal": SyntheticTeacher(name="equal", equal=0.1),
    "christiano": SyntheticTeacher(name="christiano", random_answers=0.1),
}
"""Named B-Pref / Christiano teachers, keyed by their ``name``."""


def make_teacher(name: str, **overrides: float) -> SyntheticTeacher:
    """Return the named teacher from TEACHERS with some fields overridden."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; expected one of {sorted(TEACHERS)}")
    fields = {f.name for f in dataclasses.fields(SyntheticTeacher)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown teacher field(s) {unknown}; expected some of {sorted(fields)}")
    return dataclasses.replace(TEACHERS[name], **overrides)
