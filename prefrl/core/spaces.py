"""Turn Gymnasium observations and actions into flat float vectors for the reward model.

Box, Discrete, MultiBinary, MultiDiscrete and any Dict/Tuple nest of them are supported; other
spaces (Text, Graph, Sequence, ...) are refused where they enter, with the space named.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

_LEAVES = (spaces.Box, spaces.Discrete, spaces.MultiBinary, spaces.MultiDiscrete)


def check_space(space: spaces.Space, what: str = "observation") -> None:
    """Raise a clear error if the reward model cannot take inputs from this space."""
    if isinstance(space, _LEAVES):
        return
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            check_space(sub, f"{what}[{key!r}]")
        return
    if isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            check_space(sub, f"{what}[{i}]")
        return
    raise TypeError(
        f"{what} space {space} is not supported: expected Box, Discrete, MultiBinary, "
        f"MultiDiscrete or a Dict/Tuple of them"
    )


def flat_dim(space: spaces.Space) -> int:
    """Length of the flat vector `flatten_batch` produces for one element of `space`."""
    check_space(space)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiBinary):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    subs = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
    return sum(flat_dim(s) for s in subs)


def flatten_batch(space: spaces.Space, batch: Any) -> np.ndarray:
    """Flatten a batch (leading dimension B) of elements of `space` into a (B, flat_dim) float32 array."""
    if isinstance(space, spaces.Box):
        arr = np.asarray(batch, dtype=np.float32)
        return arr.reshape(len(arr), -1)
    if isinstance(space, spaces.Discrete):
        idx = np.asarray(batch, dtype=np.int64).reshape(-1) - int(space.start)
        return np.eye(int(space.n), dtype=np.float32)[idx]
    if isinstance(space, spaces.MultiBinary):
        arr = np.asarray(batch, dtype=np.float32)
        return arr.reshape(-1, int(np.prod(space.shape)))
    if isinstance(space, spaces.MultiDiscrete):
        arr = np.asarray(batch, dtype=np.int64).reshape(-1, len(space.nvec))
        return np.concatenate([np.eye(int(n), dtype=np.float32)[arr[:, i]] for i, n in enumerate(space.nvec)], 1)
    if isinstance(space, spaces.Dict):
        return np.concatenate([flatten_batch(sub, batch[key]) for key, sub in space.spaces.items()], axis=1)
    if isinstance(space, spaces.Tuple):
        return np.concatenate([flatten_batch(sub, batch[i]) for i, sub in enumerate(space.spaces)], axis=1)
    check_space(space)
    raise AssertionError("unreachable")


def describe(space: spaces.Space) -> dict[str, Any]:
    """A JSON-able description of a space, saved with models so a mismatch can be named on load."""
    return {"repr": repr(space), "flat_dim": flat_dim(space), "shape": list(space.shape or ())}
