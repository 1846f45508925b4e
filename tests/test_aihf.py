"""AIHF: the joint demonstration + preference reward, its two reductions, IRL, BC, and bad input."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from scripted import FALL, steer

from prefrl.core import losses
from prefrl.core.data import ComparisonDataset
from prefrl.reward.model import RewardModel
from prefrl.reward.trainer import RewardTrainer
from prefrl.runs.bc import BCConfig, behaviour_clone
from prefrl.runs.cli import main
from prefrl.sb3.policies import record_demos


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "fall.npz"
    record_demos(FALL, steer, 2, seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def random_data():
    """Segments of a random policy (which falls within a few dozen steps) and oracle labels on them."""
    from prefrl.core.data import TrajectoryBuffer

    demos = record_demos(FALL, lambda o: np.random.default_rng(len(o)).uniform(-1, 1, (len(o), 2)), 40, seed=1)
    buf: TrajectoryBuffer = demos.buffer()
    rng = np.random.default_rng(0)
    segs = buf.sample_segments(200, 20, rng)
    a, b = segs[:60], segs[60:120]
    ds = ComparisonDataset()
    ds.add(a, b, (a.true_returns() > b.true_returns()).astype(np.float32), "oracle", 0)
    return ds, segs[120:]


def _model():
    env = gym.make(FALL)
    return RewardModel(env.observation_space, env.action_space, seed=0)


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _fit(dataset, policy_segments, **kwargs):
    model = _model()
    trainer = RewardTrainer(model, seed=0, **{"demo_updates": 30, **kwargs})
    report = trainer.fit(dataset, policy_segments)
    return model, report


def test_demo_weight_zero_is_exactly_preference_only(demo_file, random_data):
    from prefrl.core.demos import Demonstrations

    ds, policy = random_data
    demos = Demonstrations.load(demo_file)
    plain, _ = _fit(ds, None)
    zero, _ = _fit(ds, policy, demos=demos, demo_weight=0.0)
    for k, v in _params(plain).items():
        torch.testing.assert_close(_params(zero)[k], v, rtol=0, atol=0)


def test_pref_weight_zero_is_exactly_demonstration_only_irl(demo_file, random_data):
    from prefrl.core.demos import Demonstrations

    ds, policy = random_data
    demos = Demonstrations.load(demo_file)
    irl, report_irl = _fit(ComparisonDataset(), policy, demos=demos, pref_weight=1.0)  # no labels at all
    zero, report_zero = _fit(ds, policy, demos=demos, pref_weight=0.0)  # labels present, weight 0
    for k, v in _params(irl).items():
        torch.testing.assert_close(_params(zero)[k], v, rtol=0, atol=0)
    assert report_irl.demo_gap == report_zero.demo_gap > 0  # demos now score above the policy's segments


def test_joint_steps_raise_demos_against_the_policy_and_fit_the_labels(demo_file, random_data):
    from prefrl.core.demos import Demonstrations

    ds, policy = random_data
    _, first = _fit(ds, policy, demos=Demonstrations.load(demo_file), demo_updates=1, pref_fit="shared")
    model, report = _fit(ds, policy, demos=Demonstrations.load(demo_file), pref_fit="shared")
    # 30 joint steps raise the demonstrations against the policy's segments and fit the labels better than one
    assert report.demo_gap > first.demo_gap + 5
    assert report.train_loss < first.train_loss - 0.1
    assert report.pairs == len(ds)
    with pytest.raises(ValueError, match="needs segments of the current policy"):
        RewardTrainer(model, demos=Demonstrations.load(demo_file)).fit(ds, None)


def test_converge_fits_the_labels_as_preference_only_training_does(demo_file, random_data):
    """pref_fit="converge": after the shared step, the preference term alone runs to held-out convergence."""
    from prefrl.core.demos import Demonstrations

    ds, policy = random_data
    _, shared = _fit(ds, policy, demos=Demonstrations.load(demo_file), demo_updates=1, pref_fit="shared")
    model, converged = _fit(ds, policy, demos=Demonstrations.load(demo_file), demo_updates=1)  # the default
    _, plain = _fit(ds, None)  # preference-only, from the same initialization
    assert converged.epochs > shared.epochs == 1 and converged.pair_updates > 10 * shared.pair_updates
    assert converged.train_loss < shared.train_loss - 0.1
    assert converged.val_accuracy >= shared.val_accuracy
    assert abs(converged.train_loss - plain.train_loss) < 0.1  # the one shared step changes little
    with pytest.raises(ValueError, match="unknown pref_fit 'always': expected one of shared, converge"):
        RewardTrainer(model, pref_fit="always")


def test_absorbing_reward_learns_at_its_own_rate(demo_file, random_data):
    """The random policy falls, so the IRL term pushes the absorbing reward down, as far as its learning rate lets it."""
    from prefrl.core.demos import Demonstrations

    ds, policy = random_data
    moved = {lr: float(_fit(ds, policy, demos=Demonstrations.load(demo_file), pref_weight=0.0, absorbing_lr=lr)[0]
                       .absorbing.detach().abs().max()) for lr in (1e-2, 1e-4)}
    assert moved[1e-2] > 0.1 > 10 * moved[1e-4] > 0


def test_policy_reward_zero_at_the_absorbing_state_the_policy_mean_or_the_raw_output(demo_file, random_data):
    from prefrl.core.demos import Demonstrations

    ds, policy = random_data
    real = [x[policy.mask > 0] for x in (policy.obs, policy.acts, policy.next_obs)]
    for zero in ("absorbing", "policy", "raw"):
        model, _ = _fit(ComparisonDataset(), policy, demos=Demonstrations.load(demo_file), demo_zero=zero)
        absorbing = (model.absorbing.detach() - model.out_shift) / model.out_scale  # what ending an episode is worth
        policy_mean = model.predict(*real).mean()
        if zero == "absorbing":
            torch.testing.assert_close(absorbing, torch.zeros(3))
            assert abs(policy_mean) > 0.5
        elif zero == "policy":
            assert abs(policy_mean) < 1e-4 and (absorbing.abs() > 0.5).all()
        else:
            assert torch.count_nonzero(model.out_shift) == 0 and abs(policy_mean) > 1e-2
    with pytest.raises(ValueError, match="unknown demo_zero 'start': expected one of absorbing, policy, raw"):
        RewardTrainer(model, demo_zero="start")


@pytest.mark.parametrize("kind", ["joint", "preference, inputs fixed", "preference, preserve", "preference"])
def test_a_resumed_run_keeps_the_input_standardization_of_its_first_fit(tmp_path, demo_file, kind):
    """Where the inputs keep their first fit's standardization (the joint objective's default, or
    --reward-renormalize first), a resumed run keeps the saved model's; with preserve it folds its first re-
    standardization into the saved model's, as a run that was never stopped would; by default it redoes it."""
    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import build_feedback, build_teacher
    from prefrl.sb3.callback import LoopState

    mode = {"preference": None, "preference, preserve": "preserve"}.get(kind, "first")
    config = (TrainConfig(env=FALL, demos=str(demo_file), labels=0, out=str(tmp_path)) if kind == "joint" else
              TrainConfig(env=FALL, labels=10, out=str(tmp_path), reward_renormalize=mode))
    for fitted in (False, True):
        feedback = build_feedback(config, tmp_path, _model(), build_teacher(config, tmp_path, None), ComparisonDataset(),
                                  LoopState(fitted=fitted), config.load_demos() if config.demos else None)
        # a fresh run standardizes at its first fit, a resumed one not (unless it standardizes at every fit)
        assert feedback.trainer.inputs_fixed is (fitted and kind != "preference")


def test_every_reward_loss_comes_from_the_loss_core(demo_file, random_data, monkeypatch):
    """The reward trainer computes its objective only through prefrl.losses (shared with the LLM path)."""
    from prefrl.core.demos import Demonstrations

    calls = []
    for name in ("bradley_terry_loss", "ml_irl_loss", "aihf_loss"):
        original = getattr(losses, name)
        monkeypatch.setattr(losses, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    ds, policy = random_data
    _fit(ds, policy, demos=Demonstrations.load(demo_file))
    assert {"bradley_terry_loss", "ml_irl_loss", "aihf_loss"} <= set(calls)


@pytest.mark.parametrize("pref_weight, demo_weight, message", [
    (-1.0, 1.0, "pref_weight must be a finite number"),
    (1.0, float("nan"), "demo_weight must be a finite number"),
    (0.0, 0.0, "must not both be zero"),
])
def test_trainer_refuses_bad_weights(pref_weight, demo_weight, message):
    with pytest.raises(ValueError, match=message):
        RewardTrainer(_model(), pref_weight=pref_weight, demo_weight=demo_weight)


def test_ml_irl_l2_term():
    demo, pol = torch.tensor([2.0, 4.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    loss = losses.ml_irl_loss(demo, pol, l2=0.5)
    assert float(loss.detach()) == pytest.approx((1.0 - 3.0) + 0.5 * ((4 + 16) / 2 + 1.0))
    loss.backward()
    torch.testing.assert_close(demo.grad, torch.tensor([-0.5 + 0.5 * 2.0, -0.5 + 0.5 * 4.0]))
    with pytest.raises(ValueError, match="l2 must be a finite number"):
        losses.ml_irl_loss(demo, pol, l2=-1.0)


# ------------------------------------------------------------------- end to end
def _train(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["train", "--env", FALL, "--out", str(out), "--no-progress", "--segment-len", "25",
                 "--evals", "1", "--eval-episodes", "5", *extra]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_demo_weight_zero_run_equals_preference_only_run(tmp_path, demo_file):
    common = ("--labels", "20", "--steps", "3000")
    pref_dir, pref = _train(tmp_path, "pref", *common)
    zero_dir, zero = _train(tmp_path, "zero", *common, "--demos", str(demo_file), "--demo-weight", "0")
    assert zero["method"] == pref["method"] == "preference"
    for key in ("true_return", "learned_return", "reward_correlation", "pref_accuracy_heldout"):
        assert zero[key] == pref[key], key
    a = torch.load(pref_dir / "reward_model.pt", weights_only=True)["state_dict"]
    b = torch.load(zero_dir / "reward_model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_aihf_and_irl_learn_the_early_termination_task(tmp_path, demo_file):
    """A random policy scores ~40 and falls after ~45 steps; the demonstrations score ~560.

    With one demonstration, 10 labels are enough for AIHF, and IRL alone (no labels) learns too. A run of
    16k steps is short for the default schedule (one 1e-4 step every 2000 env steps, set for MuJoCo runs of
    100k+ steps): the reward steps ten times as often here.
    """
    steps = ("--steps", "16000", "--demo-episodes", "1", "--demos", str(demo_file), "--refit-every", "1000",
             "--demo-updates", "5", "--demo-lr", "3e-4")
    _, aihf = _train(tmp_path, "aihf", "--labels", "10", *steps)
    assert aihf["method"] == "aihf" and aihf["demos"] == 1 and aihf["labels"] == 10
    assert aihf["true_return"] > 250
    _, irl = _train(tmp_path, "irl", "--labels", "0", *steps)
    assert irl["method"] == "irl" and irl["labels"] == 0 and irl["labels_answered"] == 0
    assert irl["true_return"] > 250
    state = json.loads((tmp_path / "irl" / "pref_state.json").read_text())
    assert len(state["fit_reports"]) > 5 and all(r["demo_gap"] > 0 for r in state["fit_reports"][1:])


def test_irl_with_sac_from_the_cli_relabels_the_replay_buffer_after_every_reward_update(tmp_path, demo_file,
                                                                                         monkeypatch):
    """`prefrl train --algo sac --demos ...`: each joint refit recomputes every stored reward with the new reward."""
    from prefrl.sb3 import callback

    relabelled = []
    original = callback.relabel_replay_buffer

    def spy(model, reward_model, obs_space, act_space):
        n = original(model, reward_model, obs_space, act_space)
        rb = model.replay_buffer
        size = rb.buffer_size if rb.full else rb.pos
        acts = model.policy.unscale_action(rb.actions[:size, 0])
        expected = reward_model.predict(rb.observations[:size, 0], acts, rb.next_observations[:size, 0])
        np.testing.assert_allclose(rb.rewards[:size, 0], expected, rtol=1e-5, atol=1e-6)
        relabelled.append(n)
        return n

    monkeypatch.setattr(callback, "relabel_replay_buffer", spy)
    _, irl = _train(tmp_path, "sac", "--algo", "sac", "--labels", "0", "--steps", "1500", "--refit-every", "500",
                    "--demos", str(demo_file), "--demo-episodes", "1", "--algo-kwargs", "learning_starts=100")
    assert irl["method"] == "irl" and irl["algo"] == "sac"
    assert len(relabelled) >= 2 and relabelled[-1] > relabelled[0] > 0  # the buffer grows between refits


def test_absorbing_learning_rate_from_the_cli(tmp_path, demo_file):
    """`--demo-absorbing-lr 0` leaves the absorbing reward at its initial 0 while the rest of the reward trains."""
    out, irl = _train(tmp_path, "still", "--labels", "0", "--steps", "1500", "--refit-every", "500", "--demos",
                      str(demo_file), "--demo-absorbing-lr", "0")
    state = torch.load(out / "reward_model.pt", weights_only=True)["state_dict"]
    assert irl["method"] == "irl" and torch.count_nonzero(state["absorbing"]) == 0
    assert json.loads((out / "config.json").read_text())["demo_absorbing_lr"] == 0


def test_behaviour_cloning(tmp_path, demo_file, capsys):
    assert main(["bc", "--demos", str(demo_file), "--env", FALL, "--out", str(tmp_path / "bc"), "--no-progress",
                 "--eval-episodes", "5"]) == 0
    m = json.loads((tmp_path / "bc" / "metrics.json").read_text())
    assert m["method"] == "bc" and m["demos"] == 2 and m["true_return"] > 300
    for name in ("policy.zip", "vecnormalize.npz", "config.json"):
        assert (tmp_path / "bc" / name).is_file()
    # the cloned policy records demonstrations like any other run
    assert main(["demos", "record", "--policy", str(tmp_path / "bc"), "--env", FALL, "--episodes", "1",
                 "--out", str(tmp_path / "again.npz"), "--no-progress"]) == 0
    with pytest.raises(ValueError, match="already holds a prefrl run"):
        behaviour_clone(BCConfig(env=FALL, demos=str(demo_file), out=str(tmp_path / "bc")))
    capsys.readouterr()
    assert main(["bc", "--demos", str(demo_file), "--env", "Hopper-v5", "--out", str(tmp_path / "x")]) == 2
    assert "expects 11" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--labels", "10", "--demo-weight", "-1"], "demo_weight must be a finite number in [0, inf), got -1"),
    (["--labels", "10", "--demo-weight", "0", "--pref-weight", "0"], "must not both be zero"),
    (["--labels", "0", "--demo-absorbing-lr", "nan"], "demo_absorbing_lr must be a finite number >= 0, got nan"),
    (["--labels", "10", "--pref-weight", "0"], "pref-weight is 0, so the 10 labels asked would never be used"),
    (["--labels", "10", "--demo-episodes", "3"], "asked for 3 demonstration episodes, the file has 2"),
    (["--labels", "10", "--reward", "true"], "--demos has no effect with --reward true"),
    (["--labels", "10", "--env", "prefrl/PointMass-v0"], "observations have 3 dimensions"),
    (["--labels", "10", "--segment-len", "201"], "segment_len 201 is longer than"),
])
def test_bad_demo_arguments(tmp_path, demo_file, capsys, extra, message):
    args = ["train", "--env", FALL, "--out", str(tmp_path / "r"), "--demos", str(demo_file), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_demos_file_problems_at_the_front_door(tmp_path, demo_file, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz at all")
    assert main(["train", "--env", FALL, "--out", str(tmp_path / "r"), "--demos", str(bad), "--labels", "5"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    assert main(["train", "--env", FALL, "--out", str(tmp_path / "r"), "--labels", "5", "--demo-episodes", "1"]) == 2
    assert "--demo-episodes needs --demos FILE" in capsys.readouterr().err
