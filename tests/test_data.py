"""Segments, the trajectory buffer and the comparisons file format."""

import numpy as np
import pytest

from prefrl.core.data import ComparisonDataset, Segments, TrajectoryBuffer


def _fill(buf: TrajectoryBuffer, lengths_terminated, obs_dim=3, act_dim=2):
    """Record one env's episodes with the given (length, terminated) and rewards = step index."""
    for length, terminated in lengths_terminated:
        for t in range(length):
            last = t == length - 1
            obs = np.full((1, obs_dim), t, np.float32)
            buf.add(obs, np.zeros((1, act_dim)), obs + 1, np.array([float(t)]),
                    np.array([last and terminated]), np.array([last and not terminated]), np.full((1, 4), t, np.float32))


def test_terminated_episode_segments_run_into_absorbing_state():
    buf = TrajectoryBuffer(n_envs=1)
    _fill(buf, [(5, True)])
    segs = buf.sample_segments(200, horizon=8, rng=np.random.default_rng(0))
    # every start in [0, 5) is possible; real steps are a prefix; the rest is masked
    assert set(segs.mask.sum(1).astype(int)) == {1, 2, 3, 4, 5}
    assert np.all(np.diff(segs.mask, axis=1) <= 0)
    assert np.all(segs.true_rewards[segs.mask == 0] == 0)
    # the absorbing steps hold the final observation and pose
    j = int(np.argmin(segs.mask.sum(1)))
    assert np.all(segs.obs[j, 1:] == segs.next_obs[j, 0])
    assert np.all(segs.states[j, 1:] == segs.states[j, 0])


def test_truncated_episodes_only_yield_whole_segments_and_lengths_vary():
    buf = TrajectoryBuffer(n_envs=1)
    _fill(buf, [(3, False), (10, False), (7, False)])
    assert not TrajectoryBuffer(1).can_sample(4)
    segs = buf.sample_segments(500, horizon=6, rng=np.random.default_rng(1))
    assert np.all(segs.mask == 1)
    starts = segs.true_rewards[:, 0].astype(int)
    # 10-step episode: starts 0..4, 7-step: 0..1; the 3-step one is too short
    assert set(starts) == {0, 1, 2, 3, 4}
    assert np.all(segs.true_rewards == starts[:, None] + np.arange(6))
    with pytest.raises(ValueError, match="no segment of 20 steps"):
        buf.sample_segments(1, horizon=20, rng=np.random.default_rng(0))


def test_buffer_capacity_drops_oldest_episodes_and_cut_closes_open_ones():
    buf = TrajectoryBuffer(n_envs=1, capacity=25)
    _fill(buf, [(10, True)] * 4)
    assert buf.num_transitions <= 25 and len(buf.episodes) == 2
    buf.add(np.zeros((1, 3)), np.zeros((1, 2)), np.zeros((1, 3)), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool))
    buf.cut_open_episodes()
    assert len(buf.episodes[-1]) == 1 and not buf.episodes[-1].terminated


def _segments(n, h=4, seed=0):
    rng = np.random.default_rng(seed)
    return Segments(obs=rng.normal(size=(n, h, 3)).astype(np.float32), acts=rng.normal(size=(n, h, 2)).astype(np.float32),
                    next_obs=rng.normal(size=(n, h, 3)).astype(np.float32), mask=np.ones((n, h), np.float32),
                    true_rewards=rng.normal(size=(n, h)).astype(np.float32), states=None)


def test_segments_reject_mismatched_shapes():
    s = _segments(3)
    with pytest.raises(ValueError, match="true_rewards"):
        Segments(obs=s.obs, acts=s.acts, next_obs=s.next_obs, mask=s.mask, true_rewards=np.zeros((3, 5)))


def test_dataset_drops_skipped_labels_and_round_trips(tmp_path):
    ds = ComparisonDataset()
    kept = ds.add(_segments(4), _segments(4, seed=1), np.array([1.0, np.nan, 0.5, 0.0]), "oracle", 100)
    assert kept == 3 and len(ds) == 3
    ds.add(_segments(2, seed=2), _segments(2, seed=3), np.array([0.0, 1.0]), "human:alice", 200)
    path = tmp_path / "c.npz"
    ds.save(path)
    back = ComparisonDataset.load(path)
    np.testing.assert_array_equal(back.labels, [1.0, 0.5, 0.0, 0.0, 1.0])
    assert list(back.teachers) == ["oracle"] * 3 + ["human:alice"] * 2
    np.testing.assert_array_equal(back.env_steps, [100] * 3 + [200] * 2)
    np.testing.assert_array_equal(back.segments_a.obs, ds.segments_a.obs)
    assert back.segments_a.states is None


def test_dataset_rejects_bad_labels_and_lengths():
    ds = ComparisonDataset()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ds.add(_segments(2), _segments(2), np.array([1.5, 0.0]), "oracle", 0)
    with pytest.raises(ValueError, match="3 labels"):
        ds.add(_segments(2), _segments(2), np.array([1.0, 0.0, 1.0]), "oracle", 0)
    ds.add(_segments(2), _segments(2), np.array([1.0, 0.0]), "oracle", 0)
    with pytest.raises(ValueError, match="segment length 5"):
        ds.add(_segments(1, h=5), _segments(1, h=5), np.array([1.0]), "oracle", 0)


def test_load_reports_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ComparisonDataset.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="corrupt"):
        ComparisonDataset.load(bad)
    old = tmp_path / "old.npz"
    np.savez(old, format_version=np.array(99), labels=np.zeros(0))
    with pytest.raises(ValueError, match="format version 99"):
        ComparisonDataset.load(old)
    partial = tmp_path / "partial.npz"
    np.savez(partial, format_version=np.array(1), labels=np.ones(2), teachers=np.array(["a", "b"]), env_steps=np.zeros(2))
    with pytest.raises(ValueError, match="incomplete"):
        ComparisonDataset.load(partial)


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    ds = ComparisonDataset()
    ds.add(_segments(2), _segments(2), np.array([1.0, 0.0]), "oracle", 0)
    path = tmp_path / "c.npz"
    ds.save(path)
    ds.add(_segments(2), _segments(2), np.array([1.0, 0.0]), "oracle", 0)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        ds.save(path)
    monkeypatch.undo()
    assert len(ComparisonDataset.load(path)) == 2  # the earlier file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]
