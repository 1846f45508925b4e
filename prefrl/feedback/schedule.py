"""When to ask: the label schedule of Christiano et al. 2017, spread over a run."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prefrl.core.validation import check_positive_int, check_share


@dataclass(frozen=True)
class LabelSchedule:
    """How many labels should have been asked by env step t, and when to ask the next batch.

    A fraction is spent up front (on random-policy data); the rest at a rate proportional to
    1/(t + c) (Christiano et al.: 2e6/(T + 2e6)), normalized so the whole budget is spent by
    `horizon_fraction` of the run, after which labels barely change the final policy. Later
    batches come at most every `horizon_fraction * total_steps / num_queries` steps.
    """

    total: int
    total_steps: int
    initial_fraction: float = 0.25
    decay_steps: float | None = None
    horizon_fraction: float = 0.75
    num_queries: int = 20

    def __post_init__(self) -> None:
        check_positive_int("label budget", self.total)
        check_positive_int("total_steps", self.total_steps)
        check_positive_int("num_queries", self.num_queries)
        check_share("initial_fraction", self.initial_fraction, whole=True)

    @property
    def initial(self) -> int:
        """Labels asked before any policy learning."""
        return max(1, int(round(self.total * self.initial_fraction)))

    @property
    def query_every(self) -> int:
        """Fewest env steps between two batches of queries after the first."""
        return max(1, int(self.horizon_fraction * self.total_steps / self.num_queries))

    def due(self, step: int) -> int:
        """Labels that should have been asked by env step `step`."""
        c = self.decay_steps or self.total_steps / 5
        end = max(self.horizon_fraction * self.total_steps, 1.0)
        frac = min(1.0, math.log1p(max(step, 0) / c) / math.log1p(end / c))
        return min(self.total, self.initial + int((self.total - self.initial) * frac))

    def to_ask(self, step: int, asked: int, last_query_step: float) -> int:
        """How many labels to ask for at env step `step`, `asked` so far, the last batch at `last_query_step`."""
        if asked >= self.total:
            return 0
        if asked == 0:
            return self.initial
        if step - last_query_step < self.query_every:
            return 0
        return max(0, self.due(step) - asked)
