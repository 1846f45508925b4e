"""`prefrl train` / `prefrl plot` end to end, resume after a hard kill, and bad input at the front door."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from prefrl.core.data import ComparisonDataset
from prefrl.runs.cli import main

METRIC_KEYS = {"env", "algo", "seed", "env_steps", "labels", "true_return", "learned_return",
               "pref_accuracy_heldout", "reward_correlation", "wall_seconds", "history"}


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    code = main(["train", "--out", str(out), "--no-progress", *extra])
    assert code == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_preference_ppo_learns_the_early_termination_task(tmp_path):
    """A random policy scores ~40 and falls after ~45 steps; the full-length optimum is ~555."""
    out, m = _train(tmp_path, "pref", "--env", "prefrl/PointMassFall-v0", "--labels", "100", "--steps", "24000",
                    "--segment-len", "25", "--evals", "3", "--eval-episodes", "10", "--sampler", "disagreement")
    assert METRIC_KEYS <= set(m)
    assert m["labels"] == 100 and m["env_steps"] >= 24000
    assert m["true_return"] > 250
    assert m["reward_correlation"] > 0.8 and m["pref_accuracy_heldout"] > 0.85
    assert len(m["history"]) == 4 and all({"env_steps", "true_return", "learned_return"} <= set(h) for h in m["history"])
    for name in ("curves.png", "policy.zip", "reward_model.pt", "comparisons.npz", "config.json"):
        assert (out / name).is_file(), name
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    assert len(ComparisonDataset.load(out / "comparisons.npz")) == 100


def test_surf_run_pseudo_labels_its_own_segments_at_every_fit(tmp_path):
    """`--surf`: every reward fit also learns from unlabelled pairs of the run's own segments (reported per fit), and
    the labels stay the run's own."""
    out, m = _train(tmp_path, "surf", "--env", "prefrl/PointMassFall-v0", "--labels", "40", "--steps", "4000",
                    "--segment-len", "25", "--num-queries", "4", "--evals", "1", "--eval-episodes", "2",
                    "--surf", "0.9")
    fits = json.loads((out / "pref_state.json").read_text())["fit_reports"]
    assert len(fits) >= 3 and all(0 <= f["pseudo_labelled"] <= 1 for f in fits)
    assert fits[-1]["pseudo_labelled"] > 0 and fits[-1]["pairs"] == m["labels"] == 40
    assert json.loads((out / "config.json").read_text())["surf"] == 0.9


def test_a_fitted_label_noise_floor_is_learned_from_a_mistaken_teachers_answers(tmp_path):
    """`--estimate-label-noise`: every fit reports the floor the next one trains with, learned from the held-out
    labels, and the loop's state keeps it for a resumed run."""
    out, _ = _train(tmp_path, "fit", "--env", "prefrl/PointMassFall-v0", "--labels", "120", "--steps", "4000",
                    "--segment-len", "25", "--num-queries", "4", "--evals", "1", "--eval-episodes", "2",
                    "--teacher", "mistake", "--teacher-kwargs", "mistake=0.3", "--estimate-label-noise")
    state = json.loads((out / "pref_state.json").read_text())
    floors = [f["label_noise"] for f in state["fit_reports"]]
    assert len(floors) >= 3 and floors[-1] == state["trainer"]["label_noise"] > 0.2, floors
    assert json.loads((out / "config.json").read_text())["estimate_label_noise"] is True


def test_rune_run_gives_its_policy_the_bonus_and_a_resumed_run_goes_on_where_it_faded(tmp_path):
    """`--rune`: the training env's learned reward carries RUNE's bonus (the evaluation env's does not); a resumed
    run's bonus starts at the learner's step count, not at full weight again."""
    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import Run
    from prefrl.sb3.wrappers import LearnedRewardVecEnv, find_wrapper

    out, m = _train(tmp_path, "rune", "--env", "prefrl/PointMass-v0", "--labels", "20", "--steps", "1024",
                    "--algo-kwargs", "n_steps=512", "batch_size=64", "--evals", "1", "--eval-episodes", "1",
                    "--rune", "0.05", "--rune-decay", "0.001")
    config = TrainConfig.from_json(out / "config.json")
    assert (config.rune, config.rune_decay) == (0.05, 0.001)
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint
    run = Run(config, resume=True)
    bonus = find_wrapper(run.venv, LearnedRewardVecEnv).relabel.bonus
    assert bonus.steps == run.model.num_timesteps >= 1024 and bonus.weight == pytest.approx(0.05 * 0.999 ** bonus.steps)
    assert find_wrapper(run.eval_env, LearnedRewardVecEnv).relabel.bonus is None
    fresh = Run(TrainConfig(env="prefrl/PointMass-v0", out=str(tmp_path / "fresh"), labels=20, steps=1024))
    assert find_wrapper(fresh.venv, LearnedRewardVecEnv).relabel.bonus is None  # off by default


def test_true_reward_after_pebble_pretraining(tmp_path):
    from prefrl.runs.config import TrainConfig
    from prefrl.sb3.policies import read_normalization

    out, m = _train(tmp_path, "pre", "--env", "prefrl/PointMass-v0", "--reward", "true", "--steps", "1024",
                    "--pretrain-steps", "512", "--algo-kwargs", "n_steps=512", "batch_size=64", "--evals", "1",
                    "--eval-episodes", "1")
    assert m["reward"] == "true" and json.loads((out / "config.json").read_text())["pretrain_steps"] == 512
    # the first rollout trained on the state-entropy reward; reward normalization counts only the true one's steps
    assert read_normalization(out / "vecnormalize.npz")["ret"].count == pytest.approx(512, abs=1)
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    (frozen / "reward_model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="pre-training comes before the first labels, expected --reward learned "
                                         "with --labels N, or --reward true"):
        TrainConfig(env="prefrl/PointMass-v0", out=str(tmp_path / "x"), reward="frozen", reward_from=[str(frozen)],
                    pretrain_steps=500).validate()


def test_true_reward_baseline_and_overlay_plot(tmp_path, capsys):
    base, m = _train(tmp_path, "true", "--env", "prefrl/PointMass-v0", "--reward", "true", "--steps", "2048",
                     "--evals", "1", "--eval-episodes", "2")
    assert m["reward"] == "true" and m["labels"] == 0 and m["learned_return"] is None
    assert m["reward_correlation"] is None and not (base / "comparisons.npz").exists()
    pref, _ = _train(tmp_path, "pref", "--env", "prefrl/PointMass-v0", "--labels", "20", "--steps", "800",
                     "--evals", "1", "--eval-episodes", "2", "--segment-len", "20", "--algo", "sac")
    png = tmp_path / "both.png"
    assert main(["plot", str(base), str(pref), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "Hoper-v5"], "unknown env id 'Hoper-v5'.*did you mean Hopper-v5"),
        (["--env", "prefrl/PointMass-v0", "--labels", "0"], "labels must be a positive integer, got 0"),
        (["--env", "prefrl/PointMass-v0", "--labels", "-3"], "labels must be a positive integer, got -3"),
        (["--env", "prefrl/PointMass-v0", "--teacher", "genius"], "unknown teacher 'genius'.*oracle"),
        (["--env", "prefrl/PointMass-v0", "--algo", "dqn"], "unknown algo 'dqn'"),
        (["--env", "prefrl/PointMass-v0", "--steps", "0"], "steps must be a positive integer"),
        (["--env", "prefrl/PointMass-v0", "--robust", "rim"], "unknown robust 'rim': expected one of none, rime"),
        (["--env", "prefrl/PointMass-v0", "--rime-grace", "1"],
         "rime_grace=1: a grace period belongs to RIME's screen, expected robust rime"),
        (["--env", "prefrl/PointMass-v0", "--robust", "rime", "--rime-grace", "-2"],
         "rime_grace=-2: expected a number of fits >= 0"),
        (["--env", "prefrl/PointMass-v0", "--label-noise", "nan"], "label_noise nan: expected a share in \\[0, 1\\)"),
        (["--env", "prefrl/PointMass-v0", "--reward-holdout", "1"], "reward_holdout 1.0: expected a share in \\[0, 1\\)"),
        (["--env", "prefrl/PointMass-v0", "--labels-upfront", "1.5"],
         "labels_upfront 1.5: expected a share in \\[0, 1\\]"),
        (["--env", "prefrl/PointMass-v0", "--teacher-kwargs", "mistake=2"], "mistake must be a probability in \\[0, 1\\], got 2"),
        (["--env", "prefrl/PointMass-v0", "--teacher-kwargs", "bogus=1"], "unknown teacher field\\(s\\) \\['bogus'\\]"),
        (["--env", "prefrl/PointMass-v0", "--teacher", "human", "--teacher-kwargs", "mistake=0.3"],
         "set a synthetic teacher's answers: expected none with --teacher human"),
        (["--env", "prefrl/PointMass-v0", "--pref-fit", "x"], "unknown pref_fit 'x': expected one of shared, converge"),
        (["--env", "prefrl/PointMass-v0", "--reward-renormalize", "never"],
         "unknown reward_renormalize 'never': expected one of every, first, preserve"),
        (["--env", "prefrl/PointMass-v0", "--surf", "0.3"], "surf threshold 0.3: expected a probability in \\[0.5, 1\\]"),
        (["--env", "prefrl/PointMass-v0", "--surf", "0.95", "--reward", "true"],
         "surf 0.95: SURF labels unlabelled pairs beside the run's labels; expected labels"),
        (["--env", "prefrl/PointMass-v0", "--rune", "0.05", "--reward", "true"],
         "rune 0.05: the bonus is on the learned reward's members, expected --reward learned, got 'true'"),
        (["--env", "prefrl/PointMass-v0", "--rune", "-1"], "exploration bonus weight -1.0: expected a finite number >= 0"),
        (["--env", "prefrl/PointMass-v0", "--rune", "0.05", "--rune-decay", "1"],
         "exploration bonus decay 1.0: expected a share in \\[0, 1\\)"),
        (["--env", "prefrl/PointMass-v0", "--steps", "1000", "--pretrain-steps", "1000"],
         "pretrain_steps=1000: expected 0, or a number of env steps below --steps \\(1000\\)"),
        (["--env", "prefrl/PointMass-v0", "--segment-len", "150"],
         "segment_len 150 is longer than prefrl/PointMass-v0's episodes \\(time limit 100 steps\\)"),
    ],
)
def test_bad_train_options_get_one_clear_line(tmp_path, capsys, args, message):
    assert main(["train", "--out", str(tmp_path / "x"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err


@pytest.mark.parametrize("upfront, first_batch", [("0.25", 10), ("1", 40)])
def test_labels_upfront_sets_the_first_batch_before_any_policy_learning(tmp_path, upfront, first_batch):
    out, m = _train(tmp_path, f"up{upfront}", "--env", "prefrl/PointMass-v0", "--labels", "40", "--steps", "4096",
                    "--evals", "1", "--eval-episodes", "1", "--segment-len", "20", "--labels-upfront", upfront)
    fits = json.loads((out / "pref_state.json").read_text())["fit_reports"]
    assert m["labels_answered"] == 40 and fits[0]["pairs"] == first_batch  # the first fit: the up-front batch
    assert len(fits) == 1 if upfront == "1" else len(fits) > 1  # with all of them up front, no later batch


def test_an_earlier_run_is_never_overwritten_by_accident(tmp_path, capsys):
    out, _ = _train(tmp_path, "r", "--env", "prefrl/PointMass-v0", "--labels", "10", "--steps", "1024",
                    "--evals", "1", "--eval-episodes", "1", "--segment-len", "20")
    labels = (out / "comparisons.npz").read_bytes()
    assert main(["train", "--env", "prefrl/PointMass-v0", "--out", str(out), "--no-progress"]) == 2
    assert "already holds a prefrl run" in capsys.readouterr().err
    assert (out / "comparisons.npz").read_bytes() == labels
    _train(tmp_path, "r", "--env", "prefrl/PointMass-v0", "--reward", "true", "--steps", "1024", "--evals", "1",
           "--eval-episodes", "1", "--overwrite")
    assert not (out / "comparisons.npz").exists()


def test_bad_run_directories_are_named(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "not a prefrl run directory" in capsys.readouterr().err
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "p.png")]) == 2
    assert "is not a finished prefrl run" in capsys.readouterr().err


def _wait_for(path: Path, predicate, timeout: float = 240.0):
    start = time.time()
    while time.time() - start < timeout:
        if path.exists():
            try:
                if predicate():
                    return
            except (ValueError, OSError):
                pass  # caught mid-rename; look again
        time.sleep(0.2)
    raise TimeoutError(f"{path} not ready after {timeout}s")


def test_killed_run_resumes_without_losing_labels(tmp_path, capsys):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "prefrl", "train", "--env", "prefrl/PointMass-v0", "--labels", "60",
           "--steps", "12000", "--segment-len", "20", "--evals", "6", "--eval-episodes", "2", "--num-queries", "6",
           "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, env={**os.environ, "MUJOCO_GL": "egl"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # kill hard once a policy checkpoint exists and labels beyond the initial batch are stored
        _wait_for(out / "state.json", lambda: len(ComparisonDataset.load(out / "comparisons.npz")) > 15)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = ComparisonDataset.load(out / "comparisons.npz")
    fits_before = json.loads((out / "pref_state.json").read_text())["trainer"]["fit_sizes"]
    assert not (out / "metrics.json").exists()

    # a corrupt label file is reported, never silently replaced
    good = (out / "comparisons.npz").read_bytes()
    (out / "comparisons.npz").write_bytes(good[: len(good) // 2])
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "corrupt" in capsys.readouterr().err
    (out / "comparisons.npz").write_bytes(good)

    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    after = ComparisonDataset.load(out / "comparisons.npz")
    m = json.loads((out / "metrics.json").read_text())
    assert len(after) == 60 and m["labels"] == 60
    np.testing.assert_array_equal(after.labels[: len(before)], before.labels)  # every earlier label kept
    np.testing.assert_array_equal(after.segments_a.obs[: len(before)], before.segments_a.obs)
    assert m["env_steps"] >= 12000
    fits_after = json.loads((out / "pref_state.json").read_text())["trainer"]["fit_sizes"]
    assert fits_before and fits_after[: len(fits_before)] == fits_before and fits_after[-1] == 60  # the trainer went on
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "already finished" in capsys.readouterr().err


def test_resume_refuses_a_reward_model_trained_on_other_spaces(tmp_path, capsys):
    out, _ = _train(tmp_path, "pm", "--env", "prefrl/PointMass-v0", "--labels", "10", "--steps", "1024",
                    "--evals", "1", "--eval-episodes", "1", "--segment-len", "20")
    (out / "metrics.json").unlink()
    cfg = json.loads((out / "config.json").read_text())
    cfg["env"] = "prefrl/PointMassFall-v0"  # obs shape (3,) instead of (6,)
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "trained on observation space" in err and "(6,)" in err and "(3,)" in err
