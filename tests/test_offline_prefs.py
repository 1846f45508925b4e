"""An offline preference set (`prefrl demos pairs`, `prefrl train --pref-data`): made from several policies' episodes,
fitted beside the run's own labels, and bad input refused."""

import json

import gymnasium as gym
import numpy as np
import pytest
from scripted import FALL, steer

from prefrl.core.data import ComparisonDataset
from prefrl.feedback.offline import offline_comparisons
from prefrl.feedback.teachers import make_teacher
from prefrl.reward.model import RewardModel
from prefrl.runs.cli import main
from prefrl.sb3.policies import record_demos


def _flail(obs):
    return np.random.default_rng(len(obs)).uniform(-1, 1, (len(obs), 2))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Episodes of the scripted expert (runs right the whole episode) and of a random policy (falls within ~45
    steps), saved as demonstration files."""
    root = tmp_path_factory.mktemp("sources")
    expert, flailing = record_demos(FALL, steer, 2, seed=0), record_demos(FALL, _flail, 8, seed=1)
    expert.save(root / "expert.npz")
    flailing.save(root / "flail.npz")
    return expert, flailing, root


def test_pairs_compare_two_different_policies_and_the_teacher_labels_them(sources):
    expert, flailing, _ = sources
    data = offline_comparisons([expert, flailing], 40, make_teacher("oracle"), segment_len=20,
                               rng=np.random.default_rng(0))
    assert len(data) == 40 and data.segments_a.horizon == 20 and set(data.teachers) == {"oracle"}
    # every pair holds one segment of each policy: the expert's earn far more than the flailing one's
    ret_a, ret_b = data.segments_a.true_returns(), data.segments_b.true_returns()
    expert_side_a = ret_a > ret_b
    assert 5 < expert_side_a.sum() < 35  # both orders occur
    np.testing.assert_array_equal(data.labels, expert_side_a.astype(np.float32))
    # the same seed makes the same set
    again = offline_comparisons([expert, flailing], 40, make_teacher("oracle"), segment_len=20,
                                rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again.segments_a.obs, data.segments_a.obs)
    # a teacher that skips some pairs is asked again until the set is full
    skipping = offline_comparisons([expert, flailing], 30, make_teacher("skip"), segment_len=20,
                                   rng=np.random.default_rng(1))
    assert len(skipping) == 30


def test_bad_sources_are_refused(sources):
    expert, flailing, _ = sources
    teacher, rng = make_teacher("oracle"), np.random.default_rng(0)
    with pytest.raises(ValueError, match="expected recorded episodes of at least 2, got 1"):
        offline_comparisons([expert], 10, teacher, rng=rng)
    with pytest.raises(ValueError, match="pairs must be a positive integer, got 0"):
        offline_comparisons([expert, flailing], 0, teacher, rng=rng)
    with pytest.raises(ValueError, match="source 0's episodes are too short for segments of 5000 steps"):
        offline_comparisons([expert, flailing], 10, teacher, segment_len=5000, rng=rng)
    wide = record_demos("prefrl/PointMass-v0", lambda o: np.zeros((len(o), 2)), 1, seed=0)
    with pytest.raises(ValueError, match="source 0 has observations of 3 dimensions and actions of 2, source 1 has"):
        offline_comparisons([expert, wide], 10, teacher, rng=rng)


def test_concatenate_keeps_each_pairs_provenance(sources):
    expert, flailing, _ = sources
    a = offline_comparisons([expert, flailing], 5, make_teacher("oracle"), segment_len=20, rng=np.random.default_rng(0))
    b = offline_comparisons([expert, flailing], 3, make_teacher("noisy"), segment_len=20, rng=np.random.default_rng(1))
    b.env_steps[:] = 7
    both = ComparisonDataset.concatenate([a, ComparisonDataset(), b])
    assert len(both) == 8 and list(both.teachers) == ["oracle"] * 5 + ["noisy"] * 3
    assert list(both.env_steps) == [0] * 5 + [7] * 3
    np.testing.assert_array_equal(both.labels, np.concatenate([a.labels, b.labels]))


def _spaces():
    env = gym.make(FALL)
    return env.observation_space, env.action_space


def test_train_learns_from_an_offline_set_alone_and_beside_demonstrations(sources, tmp_path, capsys):
    expert, flailing, root = sources
    prefs = tmp_path / "prefs.npz"
    assert main(["demos", "pairs", str(root / "expert.npz"), str(root / "flail.npz"), "--pairs", "60",
                 "--segment-len", "20", "--out", str(prefs), "--seed", "3"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["pairs"] == 60 and 0 < made["preferred_a"] < 1
    common = ["train", "--env", FALL, "--labels", "0", "--pref-data", str(prefs), "--segment-len", "20",
              "--steps", "3000", "--evals", "1", "--eval-episodes", "2", "--no-progress"]
    for name, extra, method in (("pref", [], "preference"),
                                ("aihf", ["--demos", str(root / "expert.npz"), "--refit-every", "1000"], "aihf")):
        out = tmp_path / name
        assert main([*common, "--out", str(out), *extra]) == 0
        capsys.readouterr()
        state = json.loads((out / "pref_state.json").read_text())
        fits = state["fit_reports"]
        assert fits and all(f["pairs"] == 60 for f in fits)  # every fit saw the offline pairs (no labels asked)
        assert state["labels_asked"] == 0 and not (out / "comparisons.npz").exists()
        assert json.loads((out / "config.json").read_text())["pref_data"] == str(prefs)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["method"] == method
        if method == "aihf":
            assert len(fits) >= 2  # the IRL term follows the policy: refitted with the pairs every time
        else:
            assert len(fits) == 1  # a fixed set: one fit
        # the reward learned the set: it tells the held-out pairs apart and pays the expert's steps more
        assert fits[0]["val_accuracy"] > 0.9
        model = RewardModel.load(out / "reward_model.pt", *_spaces())
        assert np.mean([model.predict(e.obs, e.acts, e.next_obs).mean() for e in expert.episodes]) > \
            np.mean([model.predict(e.obs, e.acts, e.next_obs).mean() for e in flailing.episodes])


@pytest.mark.parametrize("extra, message", [
    ([], "comparisons file {missing} does not exist"),
    (["--segment-len", "30"], "holds segments of 20 steps: expected --segment-len 20"),
    (["--env", "prefrl/PointMass-v0"], "has observations of 3 dimensions, prefrl/PointMass-v0 expects 6"),
    (["--reward", "true"], "--pref-data has no effect with --reward true"),
    (["--pref-weight", "0", "--demos", "DEMOS"], "pref-weight is 0, so the pairs of --pref-data"),
])
def test_bad_pref_data_is_refused_before_training(sources, tmp_path, capsys, extra, message):
    expert, flailing, root = sources
    prefs = tmp_path / "prefs.npz"
    offline_comparisons([expert, flailing], 10, make_teacher("oracle"), segment_len=20,
                        rng=np.random.default_rng(0)).save(prefs)
    missing = tmp_path / "nothing.npz"
    pref_data = missing if "missing" in message else prefs
    extra = [str(root / "expert.npz") if e == "DEMOS" else e for e in extra]
    args = ["train", "--env", FALL, "--labels", "0", "--pref-data", str(pref_data), "--segment-len", "20",
            "--out", str(tmp_path / "run"), "--no-progress", *extra]
    assert main(args) == 2
    assert message.format(missing=missing) in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_labels_that_survived_a_crash_are_refitted_with_the_offline_set(sources, tmp_path, monkeypatch):
    """A run whose labels were saved but whose reward model was not refits at start-up on the offline pairs and the
    saved labels together, as every later fit does."""
    from prefrl.reward.trainer import RewardTrainer
    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import build_feedback, build_teacher
    from prefrl.sb3.callback import LoopState

    expert, flailing, _ = sources
    prefs = tmp_path / "prefs.npz"
    offline_comparisons([expert, flailing], 12, make_teacher("oracle"), segment_len=20,
                        rng=np.random.default_rng(0)).save(prefs)
    saved = offline_comparisons([expert, flailing], 5, make_teacher("oracle"), segment_len=20,
                                rng=np.random.default_rng(1))
    fitted_on = []
    fit = RewardTrainer.fit
    monkeypatch.setattr(RewardTrainer, "fit", lambda self, data, *a, **k: fitted_on.append(len(data)) or
                        fit(self, data, *a, **k))
    config = TrainConfig(env=FALL, labels=10, pref_data=str(prefs), segment_len=20, out=str(tmp_path))
    for state, fits in ((LoopState(labels_asked=5), [17]), (LoopState(labels_asked=5, fitted=True), [])):
        fitted_on.clear()
        feedback = build_feedback(config, tmp_path, RewardModel(*_spaces()), build_teacher(config, tmp_path, None),
                                  saved, state, None)
        assert fitted_on == fits and state.fitted
        assert len(feedback.dataset) == 5  # the offline pairs are never counted as the run's labels
