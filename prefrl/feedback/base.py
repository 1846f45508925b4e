"""What the learning loop talks to: a teacher, answering at once (a script) or later (people).

Both are one interface with an explicit flag, `asynchronous`, so the loop never probes for
methods. A synchronous teacher labels pairs from their true rewards when asked; an asynchronous
one has pairs `submit`ted and hands back whatever answers exist in `dataset()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from prefrl.core.data import ComparisonDataset, Segments


class Teacher(ABC):
    """Labels pairs of segments: label = P(segment a preferred) in [0, 1]; NaN = skipped."""

    name: str
    asynchronous: ClassVar[bool] = False
    recent_transitions: int | None = None
    """Queries must come from the newest this-many recorded transitions (e.g. clips from kept frames); None: any."""

    @abstractmethod
    def label(self, rewards_a: np.ndarray, rewards_b: np.ndarray, mask_a: np.ndarray | None = None,
              mask_b: np.ndarray | None = None, *, rng: np.random.Generator, scale: float | None = None) -> np.ndarray:
        """Labels of N pairs from their true per-step rewards (N, H); `scale` is a typical segment return."""


class AsyncTeacher(Teacher):
    """A teacher that answers later (people): `submit` pairs, read the answers from `dataset()`."""

    asynchronous: ClassVar[bool] = True

    def label(self, *args, **kwargs) -> np.ndarray:
        """Not available: this teacher answers later."""
        raise TypeError(f"teacher {self.name!r} answers asynchronously: submit() pairs and read dataset()")

    @abstractmethod
    def submit(self, seg_a: Segments, seg_b: Segments, env_step: int) -> list[int]:
        """Queue the pairs as queries (the first most urgent); returns their ids at once."""

    @abstractmethod
    def changed(self) -> bool:
        """Whether any answer arrived since the last call."""

    @abstractmethod
    def outstanding(self) -> int:
        """Queries asked but not answered yet."""

    @abstractmethod
    def dataset(self) -> ComparisonDataset:
        """Every answered pair with its (aggregate) label."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (e.g. finish rendering clips)."""
