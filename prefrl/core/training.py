"""Early stopping on a held-out score, shared by every fit that has one (reward ensembles, behaviour cloning)."""

from __future__ import annotations

import math

from torch import nn


class EarlyStopping:
    """Remembers the module's state at its best held-out score (lower is better) and says when to stop.

    `update(score, epoch)` returns True once `patience` epochs have passed without an improvement of
    more than `min_delta`; `restore()` loads the best state back (if any score was ever seen).
    """

    def __init__(self, module: nn.Module, patience: int, min_delta: float = 1e-4):
        self.module, self.patience, self.min_delta = module, patience, min_delta
        self.best, self.best_epoch, self._state = math.inf, 0, None

    def update(self, score: float, epoch: int) -> bool:
        """Record the score of `epoch`; True when training should stop."""
        if score < self.best - self.min_delta:
            self.best, self.best_epoch = score, epoch
            self._state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            return False
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        """Load the best state seen (nothing happens if no score was recorded)."""
        if self._state is not None:
            self.module.load_state_dict(self._state)
