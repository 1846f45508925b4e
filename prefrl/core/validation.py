"""Checks for values that enter at the boundary, with errors that name the value and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def check_positive_int(name: str, value: Any, hint: str = "") -> None:
    """Raise ValueError unless value is an int (not a bool) >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}{hint}")


def check_share(name: str, value: Any, whole: bool = False) -> None:
    """Raise ValueError unless value is a share in [0, 1), or in [0, 1] with `whole` (NaN is neither)."""
    if not (0 <= value <= 1 if whole else 0 <= value < 1):
        raise ValueError(f"{name} {value!r}: expected a share in [0, 1{']' if whole else ')'}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    """Raise ValueError unless value is one of choices, listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(choices)}")
