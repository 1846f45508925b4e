"""Statistical and validation tests for prefrl.teachers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from prefrl.feedback.teachers import TEACHERS, SyntheticTeacher, make_teacher

N = 10_000
H = 8


def _random_batch(seed: int = 0, n: int = N, h: int = H) -> tuple[np.ndarray, np.ndarray]:
    """Continuous random rewards, so exact return ties have probability zero."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, h)), rng.normal(size=(n, h))


def _oracle(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Deterministic labels from plain return sums."""
    da = ra.sum(axis=1) - rb.sum(axis=1)
    return np.where(da > 0, 1.0, np.where(da < 0, 0.0, 0.5))


def test_named_teachers_match_their_keys() -> None:
    assert set(TEACHERS) == {"oracle", "noisy", "mistake", "myopic", "skip", "equal", "christiano"}
    for key, teacher in TEACHERS.items():
        assert teacher.name == key
        assert make_teacher(key) == teacher
    assert TEACHERS["noisy"].beta == 1.0
    assert TEACHERS["mistake"].mistake == 0.1
    assert TEACHERS["myopic"].gamma == 0.9
    assert TEACHERS["skip"].skip == 0.1
    assert TEACHERS["equal"].equal == 0.1
    assert TEACHERS["christiano"].random_answers == 0.1
    assert math.isinf(TEACHERS["oracle"].beta)


def test_make_teacher_overrides_and_frozen() -> None:
    teacher = make_teacher("mistake", mistake=0.3)
    assert teacher.mistake == 0.3 and teacher.name == "mistake"
    assert TEACHERS["mistake"].mistake == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        teacher.mistake = 0.5  # type: ignore[misc]


def test_oracle_agrees_with_true_ordering_and_ties() -> None:
    ra, rb = _random_batch()
    labels = TEACHERS["oracle"].label(ra, rb, rng=np.random.default_rng(1))
    assert labels.shape == (N,) and labels.dtype == np.float64
    np.testing.assert_array_equal(labels, _oracle(ra, rb))
    # Identical segments are exact ties.
    tied = TEACHERS["oracle"].label(ra[:50], ra[:50].copy(), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(tied, np.full(50, 0.5))


def test_mistake_teacher_flips_about_ten_percent() -> None:
    ra, rb = _random_batch(2)
    labels = TEACHERS["mistake"].label(ra, rb, rng=np.random.default_rng(3))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    wrong = np.mean(labels != _oracle(ra, rb))
    assert abs(wrong - 0.1) < 0.015


def test_mistake_does_not_flip_ties() -> None:
    ra, _ = _random_batch(4, n=500)
    teacher = SyntheticTeacher(name="t", mistake=1.0)
    labels = teacher.label(ra, ra.copy(), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(labels, np.full(500, 0.5))


def test_mistake_one_always_flips() -> None:
    ra, rb = _random_batch(5, n=500)
    labels = SyntheticTeacher(name="t", mistake=1.0).label(ra, rb, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(labels, 1.0 - _oracle(ra, rb))


def test_christiano_teacher_is_wrong_about_five_percent() -> None:
    ra, rb = _random_batch(6)
    labels = TEACHERS["christiano"].label(ra, rb, rng=np.random.default_rng(7))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    wrong = np.mean(labels != _oracle(ra, rb))
    assert abs(wrong - 0.05) < 0.015


def test_noisy_teacher_follows_bradley_terry() -> None:
    rng = np.random.default_rng(8)
    diff = rng.uniform(-4.0, 4.0, size=N)
    ra = np.zeros((N, 1))
    rb = -diff[:, None]  # R_a - R_b = diff
    labels = TEACHERS["noisy"].label(ra, rb, rng=np.random.default_rng(9))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    p = 1.0 / (1.0 + np.exp(-diff))
    assert abs(labels.mean() - p.mean()) < 0.015
    # Per-bin agreement: each bin holds ~1250 labels, std <= 0.014.
    bins = np.digitize(diff, np.linspace(-4.0, 4.0, 9)[1:-1])
    for b in range(8):
        sel = bins == b
        assert abs(labels[sel].mean() - p[sel].mean()) < 0.05


def test_larger_beta_is_more_rational_and_extreme_differences_are_stable() -> None:
    ra, rb = _random_batch(10)
    truth = _oracle(ra, rb)
    acc_low = np.mean(make_teacher("noisy", beta=0.5).label(ra, rb, rng=np.random.default_rng(0)) == truth)
    acc_high = np.mean(make_teacher("noisy", beta=20.0).label(ra, rb, rng=np.random.default_rng(0)) == truth)
    assert acc_high > acc_low + 0.1
    big = np.array([[1e6], [-1e6]])
    with np.errstate(all="raise"):
        labels = TEACHERS["noisy"].label(big, -big, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(labels, [1.0, 0.0])


def test_myopic_teacher_prefers_late_rewards() -> None:
    h = 50
    ra = np.zeros((20, h))
    rb = np.zeros((20, h))
    ra[:, 0] = 10.0  # big reward long ago
    rb[:, -1] = 9.0  # smaller reward just now
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(TEACHERS["oracle"].label(ra, rb, rng=rng), np.ones(20))
    np.testing.assert_array_equal(TEACHERS["myopic"].label(ra, rb, rng=rng), np.zeros(20))


def test_myopic_with_gamma_one_is_oracle() -> None:
    ra, rb = _random_batch(11, n=1000)
    labels = make_teacher("myopic", gamma=1.0).label(ra, rb, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(labels, _oracle(ra, rb))


def test_skip_returns_nan_exactly_below_threshold() -> None:
    ra, rb = _random_batch(12)
    scale = 3.0
    teacher = make_teacher("skip", skip=0.5)
    labels = teacher.label(ra, rb, rng=np.random.default_rng(0), scale=scale)
    should_skip = np.maximum(ra.sum(1), rb.sum(1)) < 0.5 * scale
    assert 0 < should_skip.sum() < N
    np.testing.assert_array_equal(np.isnan(labels), should_skip)
    np.testing.assert_array_equal(labels[~should_skip], _oracle(ra, rb)[~should_skip])


def test_skip_default_scale_is_mean_absolute_return() -> None:
    ra, rb = _random_batch(13)
    scale = np.mean(np.abs(np.concatenate([ra.sum(1), rb.sum(1)])))
    teacher = make_teacher("skip", skip=0.2)
    labels = teacher.label(ra, rb, rng=np.random.default_rng(0))
    should_skip = np.maximum(ra.sum(1), rb.sum(1)) < 0.2 * scale
    np.testing.assert_array_equal(np.isnan(labels), should_skip)


def test_equal_returns_half_exactly_below_threshold() -> None:
    ra, rb = _random_batch(14)
    scale = 4.0
    labels = TEACHERS["equal"].label(ra, rb, rng=np.random.default_rng(0), scale=scale)
    close = np.abs(ra.sum(1) - rb.sum(1)) < 0.1 * scale
    assert 0 < close.sum() < N
    np.testing.assert_array_equal(labels == 0.5, close)
    np.testing.assert_array_equal(labels[~close], _oracle(ra, rb)[~close])


def test_skipped_stay_nan_under_random_answers_and_mistakes() -> None:
    ra, rb = _random_batch(15, n=2000)
    teacher = SyntheticTeacher(name="t", skip=0.5, mistake=0.5, random_answers=1.0)
    labels = teacher.label(ra, rb, rng=np.random.default_rng(0), scale=3.0)
    should_skip = np.maximum(ra.sum(1), rb.sum(1)) < 1.5
    np.testing.assert_array_equal(np.isnan(labels), should_skip)
    assert set(np.unique(labels[~should_skip])) <= {0.0, 1.0}


def test_masks_exclude_padded_steps() -> None:
    n = 100
    ra = np.ones((n, H))
    ra[:, H // 2 :] = 100.0  # junk in the padding must be ignored
    mask_a = np.zeros((n, H))
    mask_a[:, : H // 2] = 1.0  # a's episode ended half way: real return 4
    rb = np.full((n, H), 0.75)  # real return 6
    mask_b = np.ones((n, H))
    labels = TEACHERS["oracle"].label(ra, rb, mask_a, mask_b, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(labels, np.zeros(n))
    # Masks also feed the default scale: mean |R| = (4 + 6) / 2 = 5, so max(R) = 6 vs 5 * skip.
    rng = np.random.default_rng(0)
    kept = make_teacher("skip", skip=1.1).label(ra, rb, mask_a, mask_b, rng=rng)
    np.testing.assert_array_equal(kept, np.zeros(n))
    skipped = make_teacher("skip", skip=1.3).label(ra, rb, mask_a, mask_b, rng=rng)
    assert np.isnan(skipped).all()


def test_seeded_labels_are_reproducible() -> None:
    ra, rb = _random_batch(16, n=1000)
    teacher = SyntheticTeacher(name="t", beta=1.0, mistake=0.2, random_answers=0.2)
    a = teacher.label(ra, rb, rng=np.random.default_rng(42))
    b = teacher.label(ra, rb, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)


def test_empty_batch() -> None:
    labels = TEACHERS["skip"].label(np.zeros((0, H)), np.zeros((0, H)), rng=np.random.default_rng(0))
    assert labels.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rewards_a": np.zeros((4, 3)), "rewards_b": np.zeros((4, 2))}, "rewards_b has shape"),
        ({"rewards_a": np.zeros(4), "rewards_b": np.zeros(4)}, "rewards_a must have shape"),
        ({"rewards_a": np.zeros((4, 3)), "rewards_b": np.zeros((4, 3)), "mask_a": np.ones((4, 2))}, "mask_a has shape"),
        ({"rewards_a": np.zeros((4, 3)), "rewards_b": np.zeros((4, 3)), "mask_b": np.full((4, 3), 0.5)}, "mask_b"),
        ({"rewards_a": np.zeros((4, 3)), "rewards_b": np.zeros((4, 3)), "scale": -1.0}, "scale"),
    ],
)
def test_label_rejects_bad_shapes(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TEACHERS["oracle"].label(rng=np.random.default_rng(0), **kwargs)


def test_label_rejects_non_finite_rewards() -> None:
    ra = np.zeros((4, 3))
    rb = np.zeros((4, 3))
    ra[0, 0] = np.nan
    ra[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rewards_a contains 2 non-finite"):
        TEACHERS["oracle"].label(ra, rb, rng=np.random.default_rng(0))
    rb[1, 1] = np.inf
    with pytest.raises(ValueError, match=r"rewards_b contains 1 non-finite"):
        TEACHERS["oracle"].label(np.zeros((4, 3)), rb, rng=np.random.default_rng(0))


def test_unknown_teacher_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="oracle") as err:
        make_teacher("nope")
    assert "nope" in str(err.value) and "christiano" in str(err.value)
    with pytest.raises(ValueError, match="bogus"):
        make_teacher("oracle", bogus=1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": 0.0},
        {"beta": -1.0},
        {"beta": math.nan},
        {"gamma": 0.0},
        {"gamma": 1.5},
        {"gamma": math.nan},
        {"mistake": -0.1},
        {"mistake": 1.5},
        {"skip": -0.1},
        {"skip": math.inf},
        {"equal": -1.0},
        {"random_answers": 2.0},
        {"random_answers": math.nan},
        {"name": ""},
    ],
)
def test_bad_parameters_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SyntheticTeacher(**kwargs)


def test_a_run_sets_its_teachers_fields_with_teacher_kwargs(tmp_path) -> None:
    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import build_teacher

    config = TrainConfig(env="prefrl/PointMass-v0", out=str(tmp_path), teacher="mistake", teacher_kwargs={"mistake": 0.3})
    config.validate()
    teacher = build_teacher(config, tmp_path, None)
    assert teacher.mistake == 0.3 and TEACHERS["mistake"].mistake == 0.1
