"""Demonstrations: recording, the npz / HDF5 / Minari formats, validation against the env, the CLI."""

import json

import gymnasium as gym
import numpy as np
import pytest
from scripted import FALL, steer

import prefrl  # noqa: F401  (registers the custom tasks)
from prefrl.core.demos import Demonstrations, load_demos_for_env
from prefrl.runs.cli import main
from prefrl.sb3.policies import record_demos


@pytest.fixture(scope="module")
def demos():
    return record_demos(FALL, steer, 3, seed=0)


def test_recorded_demos_round_trip_and_report_their_return(demos, tmp_path):
    assert len(demos) == 3 and demos.num_transitions == sum(len(e) for e in demos.episodes)
    assert all(len(e) == 200 and not e.terminated for e in demos.episodes)  # the expert never falls
    assert demos.returns().min() > 500  # a random policy scores ~40
    assert demos.episodes[0].states is not None  # MuJoCo qpos+qvel, for clips
    assert demos.meta["env_id"] == FALL
    path = tmp_path / "d.npz"
    demos.save(path)
    back = Demonstrations.load(path)
    for a, b in zip(demos.episodes, back.episodes):
        for field in ("obs", "acts", "next_obs", "true_rewards", "states"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert back.summary()["true_return_mean"] == pytest.approx(demos.returns().mean())
    assert len(back.first(1)) == 1
    with pytest.raises(ValueError, match="asked for 5 demonstration episodes, the file has 3"):
        back.first(5)


def test_hdf5_round_trip(demos, tmp_path):
    pytest.importorskip("h5py")  # installed by `make test` through the [demos] extra
    path = tmp_path / "d.h5"
    demos.save(path)
    back = Demonstrations.load(path)
    np.testing.assert_array_equal(back.arrays()["acts"], demos.arrays()["acts"])
    assert back.meta == demos.meta


def test_local_minari_dataset(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from minari.data_collector import EpisodeBuffer

    env, rng, buffers = gym.make(FALL), np.random.default_rng(0), []
    for ep in range(2):
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        while not (te and te[-1]) and not (tr and tr[-1]):
            act = np.clip(steer(o[-1][None])[0] + rng.normal(0, 0.05, 2), -1, 1).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs), a.append(act), r.append(rew), te.append(term), tr.append(trunc)
        buffers.append(EpisodeBuffer(id=ep, seed=ep, observations=np.array(o), actions=np.array(a), rewards=r,
                                     terminations=te, truncations=tr, infos={}))
    minari.create_dataset_from_buffers("prefrl/fall-expert-v0", buffers, env=FALL, eval_env=FALL, algorithm_name="steer",
                                       author="prefrl", author_email="-", code_permalink="-", description="test")
    demos = Demonstrations.load("minari:prefrl/fall-expert-v0")
    assert len(demos) == 2 and demos.meta["env_id"] == FALL
    assert demos.episodes[0].obs.shape[1] == 3
    np.testing.assert_array_equal(demos.episodes[0].obs[1:], demos.episodes[0].next_obs[:-1])
    with pytest.raises(ValueError, match="no local Minari dataset 'prefrl/missing-v0'"):
        Demonstrations.load("minari:prefrl/missing-v0")


def _write(path, demos, **changes):
    arrays = {**demos.arrays(), **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"obs": None}, r"not a prefrl demonstration file: missing \['obs'\]"),
        ({"format_version": np.array(7)}, "format version 7, expected 1"),
        ({"episode_lengths": np.array([200, 200, 150])}, "truncated or inconsistent"),
        ({"acts": np.zeros((0, 2), np.float32), "obs": np.zeros((0, 3), np.float32),
          "next_obs": np.zeros((0, 3), np.float32), "rewards": np.zeros(0, np.float32),
          "episode_lengths": np.zeros(0, np.int64), "terminated": np.zeros(0, bool), "states": None},
         "holds no transitions"),
        ({"acts": np.zeros((600, 2, 1), np.float32)}, r"acts has shape \(600, 2, 1\)"),
    ],
)
def test_malformed_files_are_refused(demos, tmp_path, changes, message):
    arrays = demos.arrays()
    if "states" in changes and changes["states"] is None:
        arrays.pop("states")
    path = _write(tmp_path / "bad.npz", demos, **changes)
    with pytest.raises(ValueError, match=message):
        Demonstrations.load(path)


def test_nan_truncated_and_missing_files(demos, tmp_path):
    obs = demos.arrays()["obs"].copy()
    obs[250, 1] = np.nan
    with pytest.raises(ValueError, match="obs has NaN/inf at transition 250 \\(episode 1\\)"):
        Demonstrations.load(_write(tmp_path / "nan.npz", demos, obs=obs))
    good = tmp_path / "good.npz"
    demos.save(good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Demonstrations.load(cut)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Demonstrations.load(tmp_path / "nothing.npz")


def test_demos_of_another_env_are_refused(demos, tmp_path):
    path = tmp_path / "d.npz"
    demos.save(path)
    with pytest.raises(ValueError, match=r"observations have 3 dimensions \(recorded in prefrl/PointMassFall-v0\), "
                                         r"the env for Hopper-v5 expects 11"):
        load_demos_for_env(path, "Hopper-v5")
    assert len(load_demos_for_env(path, FALL, 2)) == 2


def test_record_from_a_run_directory_and_cli(tmp_path, capsys):
    run = tmp_path / "expert"
    assert main(["train", "--env", FALL, "--reward", "true", "--steps", "2048", "--evals", "1",
                 "--eval-episodes", "1", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "rec.npz"
    assert main(["demos", "record", "--policy", str(run), "--env", FALL, "--episodes", "2", "--out", str(out),
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["env"] == FALL
    assert main(["demos", "info", str(out), "--env", FALL]) == 0
    assert json.loads(capsys.readouterr().out)["transitions"] == summary["transitions"]
    # bad input: one line on stderr, exit status 2
    assert main(["demos", "info", str(out), "--env", "Hopper-v5"]) == 2
    assert "expects 11" in capsys.readouterr().err
    assert main(["demos", "record", "--policy", str(tmp_path / "none"), "--env", FALL, "--episodes", "1",
                 "--out", str(out)]) == 2
    assert "no policy at" in capsys.readouterr().err
    assert main(["demos", "record", "--policy", str(run), "--env", FALL, "--episodes", "0", "--out", str(out)]) == 2
    assert "episodes must be a positive integer, got 0" in capsys.readouterr().err


def test_record_keeps_only_episodes_reaching_min_return():
    """A noisy steering policy: some episodes fall early, some run long; only the good ones are kept."""
    rng = np.random.default_rng(0)

    def noisy(obs):
        return np.clip(steer(obs) + rng.normal(0, 0.8, (len(obs), 2)), -1, 1)

    everything = record_demos(FALL, noisy, 6, seed=0)
    threshold = float(np.median(everything.returns()))
    good = record_demos(FALL, noisy, 3, seed=0, min_return=threshold)
    assert len(good) == 3 and (good.returns() >= threshold).all()
    assert good.meta["episodes_tried"] >= 3 and good.meta["min_return"] == threshold
    with pytest.raises(ValueError, match=r"only 0 of 4 episodes of prefrl/PointMassFall-v0 reached a true return of 1000000.0 \(best"):
        record_demos(FALL, noisy, 2, seed=0, min_return=1e6, max_attempts=4)
