"""Tests for prefrl.samplers query selection."""

from __future__ import annotations

import numpy as np
import pytest

from prefrl.feedback.samplers import (
    SAMPLERS,
    preference_probabilities,
    select_disagreement,
    select_disagreement_kcenter,
    select_entropy,
    select_entropy_kcenter,
    select_kcenter,
    select_queries,
    select_uniform,
)

K = 5
N = 200


def _agreeing_members(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Members that agree (confidently) on every pair."""
    rng = np.random.default_rng(seed)
    base_a = rng.normal(size=N)
    sign = np.where(rng.random(N) < 0.5, 1.0, -1.0)
    base_b = base_a + sign * rng.uniform(3.0, 6.0, size=N)  # clear, shared preference
    return np.tile(base_a, (K, 1)), np.tile(base_b, (K, 1))


def _check_indices(idx: np.ndarray, n: int, num_candidates: int) -> None:
    assert idx.dtype == np.int64
    assert idx.shape == (n,)
    assert len(np.unique(idx)) == n
    assert idx.min() >= 0 and idx.max() < num_candidates


def test_preference_probabilities_is_stable_sigmoid() -> None:
    ra = np.array([[0.0, 1e6, -1e6, 2.0]])
    rb = np.array([[0.0, 0.0, 0.0, 1.0]])
    with np.errstate(all="raise"):
        p = preference_probabilities(ra, rb)
    np.testing.assert_allclose(p, [[0.5, 1.0, 0.0, 1.0 / (1.0 + np.exp(-1.0))]])
    assert p.shape == (1, 4)


def test_disagreement_picks_contested_pairs() -> None:
    ra, rb = _agreeing_members()
    contested = np.array([7, 42, 99, 150])
    # Members split: half prefer a strongly, half prefer b strongly.
    ra[:, contested] = 0.0
    rb[:, contested] = np.array([3.0, -3.0, 3.0, -3.0, 3.0])[:, None]
    idx = select_disagreement(ra, rb, len(contested))
    _check_indices(idx, len(contested), N)
    assert set(idx.tolist()) == set(contested.tolist())


def test_entropy_picks_near_equal_pairs() -> None:
    ra, rb = _agreeing_members(1)
    uncertain = np.array([3, 60, 120])
    rb[:, uncertain] = ra[:, uncertain] + np.array([0.01, -0.02, 0.0])
    idx = select_entropy(ra, rb, len(uncertain))
    _check_indices(idx, len(uncertain), N)
    assert set(idx.tolist()) == set(uncertain.tolist())


def test_entropy_uses_member_mean() -> None:
    # Pair 0: members disagree symmetrically -> mean P = 0.5 -> max entropy.
    # Pair 1: members agree confidently.
    ra = np.array([[4.0, 4.0], [-4.0, 4.0]])
    rb = np.zeros((2, 2))
    np.testing.assert_array_equal(select_entropy(ra, rb, 1), [0])


def _clusters(seed: int = 0, per: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Four tight, well-separated clusters in 3-D; returns features and cluster ids."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [50, 0, 0], [0, 50, 0], [0, 0, 50]], dtype=float)
    ids = np.repeat(np.arange(4), per)
    feats = centers[ids] + rng.normal(scale=0.5, size=(len(ids), 3))
    perm = rng.permutation(len(ids))
    return feats[perm], ids[perm]


def test_kcenter_covers_every_cluster_before_repeating() -> None:
    feats, ids = _clusters()
    for seed in range(5):
        idx = select_kcenter(feats, None, 4, rng=np.random.default_rng(seed))
        _check_indices(idx, 4, len(feats))
        assert sorted(ids[idx].tolist()) == [0, 1, 2, 3]
    # Greedy picks are a prefix chain: with more picks the first four still span all clusters.
    idx = select_kcenter(feats, np.empty((0, 3)), 12, rng=np.random.default_rng(0))
    _check_indices(idx, 12, len(feats))
    assert sorted(ids[idx[:4]].tolist()) == [0, 1, 2, 3]


def test_kcenter_avoids_labelled_region() -> None:
    feats, ids = _clusters(1)
    labelled = np.array([[0.0, 0.0, 0.0], [50.0, 0.0, 0.0], [0.0, 50.0, 0.0]])
    idx = select_kcenter(feats, labelled, 1, rng=np.random.default_rng(0))
    assert ids[idx[0]] == 3
    # With clusters 0 and 1 labelled, two picks go to the two unlabelled clusters.
    idx = select_kcenter(feats, labelled[:2], 2, rng=np.random.default_rng(0))
    assert sorted(ids[idx].tolist()) == [2, 3]


def test_kcenter_is_farthest_point_greedy() -> None:
    feats = np.array([[0.0], [1.0], [2.0], [10.0]])
    labelled = np.array([[0.0]])
    # Farthest from 0 is 10; then farthest from {0, 10} is 2 (distance 2 beats 1 and 0).
    np.testing.assert_array_equal(select_kcenter(feats, labelled, 2, rng=np.random.default_rng(0)), [3, 2])


def test_kcenter_handles_duplicate_candidates() -> None:
    feats = np.zeros((6, 2))
    idx = select_kcenter(feats, None, 6, rng=np.random.default_rng(0))
    _check_indices(idx, 6, 6)


def test_kcenter_large_labelled_set_is_chunked() -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(3000, 4))
    labelled = rng.normal(size=(3000, 4))
    idx = select_kcenter(feats, labelled, 10, rng=rng)
    _check_indices(idx, 10, 3000)
    brute = ((feats[:, None, :] - labelled[None, :, :]) ** 2).sum(-1).min(1)
    assert idx[0] == int(np.argmax(brute))


def test_uniform_unique_and_seeded() -> None:
    a = select_uniform(50, 100, rng=np.random.default_rng(3))
    b = select_uniform(50, 100, rng=np.random.default_rng(3))
    c = select_uniform(50, 100, rng=np.random.default_rng(4))
    _check_indices(a, 50, 100)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.sort(select_uniform(100, 100, rng=np.random.default_rng(0))), np.arange(100))


def test_combo_samplers_restrict_to_top_half_then_spread() -> None:
    feats, ids = _clusters(3, per=50)  # 200 candidates
    num = len(feats)
    ra = np.zeros((K, num))
    rb = np.zeros((K, num))
    # Clusters 0 and 1 are contested (high disagreement and entropy); 2 and 3 are confidently agreed on.
    contested = np.isin(ids, [0, 1])
    rb[:, contested] = np.array([2.0, -2.0, 2.0, -2.0, 0.0])[:, None]
    rb[:, ~contested] = 8.0
    for select in (select_disagreement_kcenter, select_entropy_kcenter):
        idx = select(ra, rb, feats, None, 6, rng=np.random.default_rng(0))
        _check_indices(idx, 6, num)
        assert set(ids[idx].tolist()) == {0, 1}
        # Two picks among the contested half land in different clusters.
        idx = select(ra, rb, feats, None, 2, rng=np.random.default_rng(1))
        assert sorted(ids[idx].tolist()) == [0, 1]


def test_combo_keeps_at_least_n_candidates() -> None:
    feats, _ = _clusters(4, per=5)  # 20 candidates
    ra, rb = np.zeros((K, 20)), np.zeros((K, 20))
    idx = select_disagreement_kcenter(ra, rb, feats, None, 15, rng=np.random.default_rng(0))
    _check_indices(idx, 15, 20)


@pytest.mark.parametrize("name", SAMPLERS)
def test_dispatcher_returns_valid_indices(name: str) -> None:
    feats, _ = _clusters(5)
    num = len(feats)
    rng = np.random.default_rng(6)
    ra = rng.normal(size=(K, num))
    rb = rng.normal(size=(K, num))
    idx = select_queries(
        name, 10, member_returns_a=ra, member_returns_b=rb, features=feats, labelled_features=feats[:3], rng=rng
    )
    _check_indices(idx, 10, num)


def test_dispatcher_matches_direct_calls() -> None:
    ra, rb = _agreeing_members(7)
    np.testing.assert_array_equal(
        select_queries("disagreement", 5, member_returns_a=ra, member_returns_b=rb, rng=np.random.default_rng(0)),
        select_disagreement(ra, rb, 5),
    )
    np.testing.assert_array_equal(
        select_queries("uniform", 5, member_returns_a=ra, member_returns_b=rb, rng=np.random.default_rng(0)),
        select_uniform(5, N, rng=np.random.default_rng(0)),
    )


def test_dispatcher_errors() -> None:
    ra, rb = _agreeing_members()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown sampler 'nope'.*entropy_kcenter"):
        select_queries("nope", 1, member_returns_a=ra, member_returns_b=rb, rng=rng)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        select_queries("uniform", 0, member_returns_a=ra, member_returns_b=rb, rng=rng)
    with pytest.raises(ValueError, match=f"n={N + 1} exceeds the number of candidates \\({N}\\)"):
        select_queries("entropy", N + 1, member_returns_a=ra, member_returns_b=rb, rng=rng)
    for name in ("kcenter", "disagreement_kcenter", "entropy_kcenter"):
        with pytest.raises(ValueError, match="features"):
            select_queries(name, 3, member_returns_a=ra, member_returns_b=rb, rng=rng)
    with pytest.raises(ValueError, match="features has shape"):
        select_queries("kcenter", 3, member_returns_a=ra, member_returns_b=rb, features=np.zeros((N - 1, 2)), rng=rng)


def test_input_validation_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="member_returns_b has shape"):
        preference_probabilities(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="member_returns_a must have shape"):
        preference_probabilities(np.zeros(4), np.zeros(4))
    bad = np.zeros((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="member_returns_b contains 1 non-finite"):
        select_entropy(np.zeros((3, 4)), bad, 1)
    with pytest.raises(ValueError, match=r"labelled_features must have shape \(M, 3\)"):
        select_kcenter(np.zeros((5, 3)), np.zeros((2, 4)), 1, rng=rng)
    with pytest.raises(ValueError, match="features contains 1 non-finite"):
        select_kcenter(np.array([[0.0], [np.inf]]), None, 1, rng=rng)
    with pytest.raises(ValueError, match="n must be an integer"):
        select_uniform(2.5, 10, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_candidates"):
        select_uniform(1, 0, rng=rng)


def test_policy_aligned_queries_come_from_the_newest_behaviour() -> None:
    """QPA: every queried segment lies in the newest `window` transitions; uniform queries reach older ones."""
    from gymnasium import spaces

    from prefrl.core.data import ComparisonDataset, TrajectoryBuffer
    from prefrl.feedback.queries import QuerySelector
    from prefrl.reward.model import RewardModel

    buffer = TrajectoryBuffer(1)
    for episode in range(20):  # 20 episodes of 100 steps; the true reward names the episode
        for t in range(100):
            x = np.zeros((1, 2), np.float32)
            buffer.add(x, x, x, np.array([float(episode)]), np.array([False]), np.array([t == 99]))
    model = RewardModel(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (2,)), ensemble_size=2)
    picked = {}
    for sampler in ("policy_aligned", "uniform"):
        selector = QuerySelector(model, sampler=sampler, segment_len=10, window=300, rng=np.random.default_rng(0))
        seg_a, seg_b = selector.select(buffer, 50, ComparisonDataset())
        picked[sampler] = np.concatenate([seg_a.true_rewards[:, 0], seg_b.true_rewards[:, 0]])
    assert picked["policy_aligned"].min() >= 17  # the newest 3 episodes hold the newest 300 transitions
    assert picked["uniform"].min() < 17
    with pytest.raises(ValueError, match="window"):
        QuerySelector(model, sampler="policy_aligned", window=0, rng=np.random.default_rng(0))
