"""Query selection among candidate segment pairs (B-Pref samplers, Lee et al. 2021).

``member_returns_a`` / ``member_returns_b`` are (K, N) arrays: each of K reward-ensemble
members' predicted return of segment a / b for N candidate pairs. ``features`` is an (N, D)
array describing each candidate pair and ``labelled_features`` an (M, D) array for the pairs
already labelled (M may be 0). Every selector returns n unique int64 candidate indices.
"""

from __future__ import annotations

import math

import numpy as np

from prefrl.core.numeric import sigmoid

__all__ = [
    "SAMPLERS",
    "preference_probabilities",
    "select_uniform",
    "select_disagreement",
    "select_entropy",
    "select_kcenter",
    "select_disagreement_kcenter",
    "select_entropy_kcenter",
    "select_queries",
]

SAMPLERS: tuple[str, ...] = (
    "uniform",
    "disagreement",
    "entropy",
    "kcenter",
    "disagreement_kcenter",
    "entropy_kcenter",
    "policy_aligned",
)
"""Names accepted by :func:`select_queries`. `policy_aligned` (QPA, Hu et al. 2024) picks uniformly, like `uniform`,
but among candidates from the newest policy's behaviour only (the query selector draws them from its window)."""

# Cap on the elements of one (N, chunk) distance block so large labelled sets stay memory-bounded.
_DISTANCE_BLOCK_ELEMENTS = 1 << 22


def _check_n(n: int, num_candidates: int) -> int:
    """Validate the number of queries to pick against the number of candidates."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"n must be an integer number of queries, got {n!r}")
    n = int(n)
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > num_candidates:
        raise ValueError(f"n={n} exceeds the number of candidates ({num_candidates}); expected n <= {num_candidates}")
    return n


def _check_returns(member_returns_a: np.ndarray, member_returns_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return both member-return arrays as finite float (K, N) arrays of equal shape."""
    out = []
    for arg, value in (("member_returns_a", member_returns_a), ("member_returns_b", member_returns_b)):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ValueError(f"{arg} must have shape (K, N) with K >= 1 ensemble members, got shape {arr.shape}")
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ValueError(f"{arg} contains {bad} non-finite value(s) (NaN or inf); expected finite returns")
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise ValueError(
            f"member_returns_a has shape {out[0].shape} but member_returns_b has shape {out[1].shape}; "
            "expected equal shapes"
        )
    return out[0], out[1]


def _check_features(
    features: np.ndarray | None, labelled_features: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return finite float (N, D) candidate and (M, D) labelled feature arrays."""
    if features is None:
        raise ValueError("features is None; k-center selection needs an (N, D) feature array")
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got shape {feats.shape}")
    if labelled_features is None:
        labelled = np.empty((0, feats.shape[1]), dtype=np.float64)
    else:
        labelled = np.asarray(labelled_features, dtype=np.float64)
        if labelled.size == 0:
            # An empty list / (0,) array just means nothing is labelled yet.
            labelled = labelled.reshape(0, feats.shape[1])
        if labelled.ndim != 2 or labelled.shape[1] != feats.shape[1]:
            raise ValueError(
                f"labelled_features must have shape (M, {feats.shape[1]}) to match features, got shape {labelled.shape}"
            )
    for arg, arr in (("features", feats), ("labelled_features", labelled)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ValueError(f"{arg} contains {bad} non-finite value(s) (NaN or inf); expected finite features")
    return feats, labelled


def _top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, ties broken by lower index for determinism."""
    return np.argsort(-scores, kind="stable")[:n].astype(np.int64)


def preference_probabilities(member_returns_a: np.ndarray, member_returns_b: np.ndarray) -> np.ndarray:
    """Return each member's P(a preferred) = sigmoid(R_a - R_b), shape (K, N)."""
    ra, rb = _check_returns(member_returns_a, member_returns_b)
    return sigmoid(ra - rb)


def disagreement_scores(member_returns_a: np.ndarray, member_returns_b: np.ndarray) -> np.ndarray:
    """Return the std across ensemble members of P(a preferred), shape (N,)."""
    return preference_probabilities(member_returns_a, member_returns_b).std(axis=0)


def entropy_scores(member_returns_a: np.ndarray, member_returns_b: np.ndarray) -> np.ndarray:
    """Return the binary entropy (nats) of the member-mean P(a preferred), shape (N,)."""
    p = preference_probabilities(member_returns_a, member_returns_b).mean(axis=0)
    # Clipping keeps log finite when the ensemble is certain; such pairs score ~0 anyway.
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))


def select_uniform(n: int, num_candidates: int, *, rng: np.random.Generator) -> np.ndarray:
    """Pick n distinct candidate indices uniformly at random."""
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, (int, np.integer)) or num_candidates < 1:
        raise ValueError(f"num_candidates must be a positive integer, got {num_candidates!r}")
    n = _check_n(n, int(num_candidates))
    return rng.choice(int(num_candidates), size=n, replace=False).astype(np.int64)


def select_disagreement(member_returns_a: np.ndarray, member_returns_b: np.ndarray, n: int) -> np.ndarray:
    """Pick the n pairs whose ensemble members disagree most (std of P across members)."""
    scores = disagreement_scores(member_returns_a, member_returns_b)
    return _top_n(scores, _check_n(n, scores.shape[0]))


def select_entropy(member_returns_a: np.ndarray, member_returns_b: np.ndarray, n: int) -> np.ndarray:
    """Pick the n pairs whose member-mean preference is most uncertain (max binary entropy)."""
    scores = entropy_scores(member_returns_a, member_returns_b)
    return _top_n(scores, _check_n(n, scores.shape[0]))


def _min_sq_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each point to its nearest center, computed in blocks."""
    best = np.full(points.shape[0], np.inf)
    if centers.shape[0] == 0:
        return best
    chunk = max(1, _DISTANCE_BLOCK_ELEMENTS // max(1, points.shape[0]))
    point_sq = np.einsum("ij,ij->i", points, points)
    for start in range(0, centers.shape[0], chunk):
        block = centers[start : start + chunk]
        block_sq = np.einsum("ij,ij->i", block, block)
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; clip tiny negatives from cancellation.
        sq = point_sq[:, None] - 2.0 * points @ block.T + block_sq[None, :]
        np.minimum(best, np.maximum(sq, 0.0).min(axis=1), out=best)
    return best


def select_kcenter(
    features: np.ndarray,
    labelled_features: np.ndarray | None,
    n: int,
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Greedy k-center: repeatedly pick the candidate farthest from the labelled and already-picked ones."""
    feats, labelled = _check_features(features, labelled_features)
    num_candidates = feats.shape[0]
    n = _check_n(n, num_candidates)

    picks = np.empty(n, dtype=np.int64)
    min_sq = _min_sq_distances(feats, labelled)
    if labelled.shape[0] == 0:
        # No reference set yet: every candidate is infinitely far, so seed with a random one.
        first = int(rng.integers(num_candidates))
    else:
        first = int(np.argmax(min_sq))
    picks[0] = first
    chosen = np.zeros(num_candidates, dtype=bool)
    for i in range(n):
        if i > 0:
            # Exclude picked candidates explicitly: duplicates elsewhere can also sit at distance 0.
            masked = np.where(chosen, -np.inf, min_sq)
            picks[i] = int(np.argmax(masked))
        chosen[picks[i]] = True
        diff = feats - feats[picks[i]]
        np.minimum(min_sq, np.einsum("ij,ij->i", diff, diff), out=min_sq)
    return picks


def _score_then_kcenter(
    scores: np.ndarray,
    features: np.ndarray | None,
    labelled_features: np.ndarray | None,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """B-Pref combo: keep the top half (at least n) by score, then k-center among them."""
    num_candidates = scores.shape[0]
    n = _check_n(n, num_candidates)
    feats, labelled = _check_features(features, labelled_features)
    if feats.shape[0] != num_candidates:
        raise ValueError(
            f"features has {feats.shape[0]} rows but there are {num_candidates} candidate pairs; "
            "expected one row per pair"
        )
    keep = _top_n(scores, max(n, math.ceil(num_candidates / 2)))
    local = select_kcenter(feats[keep], labelled, n, rng=rng)
    return keep[local]


def select_disagreement_kcenter(
    member_returns_a: np.ndarray,
    member_returns_b: np.ndarray,
    features: np.ndarray | None,
    labelled_features: np.ndarray | None,
    n: int,
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Keep the most-disagreed-on half of the candidates (at least n), then pick n by k-center."""
    scores = disagreement_scores(member_returns_a, member_returns_b)
    return _score_then_kcenter(scores, features, labelled_features, n, rng)


def select_entropy_kcenter(
    member_returns_a: np.ndarray,
    member_returns_b: np.ndarray,
    features: np.ndarray | None,
    labelled_features: np.ndarray | None,
    n: int,
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Keep the highest-entropy half of the candidates (at least n), then pick n by k-center."""
    scores = entropy_scores(member_returns_a, member_returns_b)
    return _score_then_kcenter(scores, features, labelled_features, n, rng)


def select_queries(
    name: str,
    n: int,
    *,
    member_returns_a: np.ndarray,
    member_returns_b: np.ndarray,
    features: np.ndarray | None = None,
    labelled_features: np.ndarray | None = None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pick n candidate indices with the sampler called ``name`` (one of SAMPLERS)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {list(SAMPLERS)}")
    ra, rb = _check_returns(member_returns_a, member_returns_b)
    num_candidates = ra.shape[1]
    n = _check_n(n, num_candidates)
    if name in ("uniform", "policy_aligned"):
        return select_uniform(n, num_candidates, rng=rng)
    if name == "disagreement":
        return select_disagreement(ra, rb, n)
    if name == "entropy":
        return select_entropy(ra, rb, n)
    if features is None:
        raise ValueError(f"sampler {name!r} needs features of shape (N, D) = ({num_candidates}, D), got None")
    feats = np.asarray(features)
    if feats.ndim < 1 or feats.shape[0] != num_candidates:
        raise ValueError(
            f"features has shape {feats.shape} but there are {num_candidates} candidate pairs; "
            f"expected {num_candidates} rows"
        )
    if name == "kcenter":
        return select_kcenter(feats, labelled_features, n, rng=rng)
    if name == "disagreement_kcenter":
        return select_disagreement_kcenter(ra, rb, feats, labelled_features, n, rng=rng)
    return select_entropy_kcenter(ra, rb, feats, labelled_features, n, rng=rng)
