"""Objectives as text: a weighted sum of named rewards, `forward`, `energy` or `0.7*forward+0.3*energy`.

The names are an env's reward terms on the MuJoCo path (prefrl.sb3.objectives) and a task's objectives on the
LLM path (prefrl.llm.tasks); MORL's linear scalarization and mixed-label preference sets are such sums.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["COMPOUND_TERMS", "Objective", "parse_objective"]

COMPOUND_TERMS: dict[str, tuple[str, ...]] = {"energy": ("ctrl", "survive", "healthy")}
"""Named groups of terms; each counts the members the env has (energy: the control cost and staying up)."""

_PART = re.compile(r"^\s*(?:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Objective:
    """A weighted sum of named reward terms (names without the `reward_` prefix; compound names allowed)."""

    text: str
    weights: tuple[tuple[str, float], ...]

    def resolve(self, terms: list[str] | tuple[str, ...], env_id: str = "the env") -> dict[str, float]:
        """Weights per term of an env with reward terms `terms`, compound names expanded; ValueError naming an
        unknown term and the env's terms."""
        out: dict[str, float] = {}
        for name, weight in self.weights:
            if name in terms:
                members = (name,)
            elif name in COMPOUND_TERMS and any(m in terms for m in COMPOUND_TERMS[name]):
                members = tuple(m for m in COMPOUND_TERMS[name] if m in terms)
            else:
                compounds = [f"{c} = {' + '.join(m for m in ms if m in terms)}" for c, ms in COMPOUND_TERMS.items()
                             if any(m in terms for m in ms)]
                known = ", ".join(terms) if terms else "none (its info holds no reward_<term> keys)"
                raise ValueError(f"objective {self.text!r}: {env_id} has no reward term {name!r}; its terms are "
                                 f"{known}" + (f" (and {'; '.join(compounds)})" if compounds else ""))
            for m in members:
                out[m] = out.get(m, 0.0) + weight
        return out

    def value(self, term_values: dict[str, float], env_id: str = "the env") -> float:
        """The objective of a step's or an episode's term values (e.g. `info["reward_terms"]`)."""
        return float(sum(w * float(term_values[t]) for t, w in self.resolve(list(term_values), env_id).items()))

    @property
    def names(self) -> list[str]:
        """The term (or compound) names the objective mentions."""
        return [n for n, _ in self.weights]


def parse_objective(text: str) -> Objective:
    """An Objective from `term`, `w*term+w*term...`; ValueError naming a malformed part."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"objective must be a term name or a weighted sum like 0.7*forward+0.3*energy, got {text!r}")
    weights: list[tuple[str, float]] = []
    for part in re.split(r"(?<![0-9][eE])\+", text.replace(" ", "")):
        match = _PART.match(part)
        if not match:
            raise ValueError(f"objective {text!r}: cannot read {part!r}; expected TERM or WEIGHT*TERM joined by +, "
                             f"e.g. 0.7*forward+0.3*energy")
        weight = float(match.group(1)) if match.group(1) is not None else 1.0
        if not math.isfinite(weight):
            raise ValueError(f"objective {text!r}: weight of {match.group(2)!r} must be finite, got {weight}")
        weights.append((match.group(2), weight))
    names = [n for n, _ in weights]
    if len(set(names)) != len(names):
        raise ValueError(f"objective {text!r} names a term twice; expected each term once")
    return Objective(text=text.replace(" ", ""), weights=tuple(weights))
