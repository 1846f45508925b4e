"""The command line generated from the config dataclasses: help text, number forms, custom envs, learner
settings (--algo-kwargs, Zoo --hyperparams), --config files, and the errors bad values get."""

import json
import sys
import textwrap

import pytest
from stable_baselines3 import PPO

from prefrl.runs.cli import main

POINT = "prefrl/PointMass-v0"
SHORT = ["--steps", "2e3", "--labels", "10", "--segment-len", "10", "--evals", "1", "--eval-episodes", "1",
         "--no-progress"]


def _config(out):
    return json.loads((out / "config.json").read_text())


def test_help_comes_from_the_field_docstrings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Steps per compared segment." in text and "--algo-kwargs [KEY=VALUE ...]" in text
    assert "--progress, --no-progress" in text


def test_integers_in_scientific_notation_and_fractions_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--env", POINT, "--out", str(out), *SHORT]) == 0
    assert _config(out)["steps"] == 2000 and json.loads(capsys.readouterr().out.splitlines()[-1])["labels"] == 10
    with pytest.raises(SystemExit):
        main(["train", "--env", POINT, "--out", str(tmp_path / "x"), "--steps", "2500.5"])
    assert "expected an integer, got '2500.5'" in capsys.readouterr().err


def test_custom_env_from_a_module_and_env_kwargs(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        gym.register(id="MyPointMass-v0", entry_point="prefrl_envs.point_mass:PointMassEnv", max_episode_steps=100)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_tasks", None)
    out = tmp_path / "custom"
    assert main(["train", "--env", "my_tasks:MyPointMass-v0", "--out", str(out), *SHORT]) == 0
    assert _config(out)["env"] == "my_tasks:MyPointMass-v0"  # kept as typed, so --resume imports the module again
    assert main(["train", "--env", "no_such_module:X-v0", "--out", str(tmp_path / "y"), *SHORT]) == 2
    assert main(["train", "--env", "Pendulum-v1", "--reward", "true", "--env-kwargs", "g=5.0", "--out",
                 str(tmp_path / "pend"), *SHORT]) == 0
    assert _config(tmp_path / "pend")["resolved"]["env_kwargs"] == {"g": 5.0}
    assert main(["train", "--env", POINT, "--env-kwargs", "no_such_arg=1", "--out", str(tmp_path / "z"), *SHORT]) == 2


@pytest.mark.parametrize("algo, n_envs, kwargs, expected", [
    ("ppo", None, [], (1, 2048)),  # SB3's default rollout on one env
    ("ppo", 4, [], (4, 512)),  # four envs share it
    ("ppo", 3, [], (3, 682)),
    ("ppo", 2, ["n_steps=100"], (2, 100)),  # given n_steps are kept
    ("sac", None, [], (1, None)),
])
def test_the_env_count_and_ppo_rollout_without_a_zoo_file(algo, n_envs, kwargs, expected):
    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import learner_settings

    config = TrainConfig(env=POINT, out="unused", algo=algo, n_envs=n_envs,
                         algo_kwargs=dict(kv.split("=") for kv in kwargs))
    settings = learner_settings(config)
    n_steps = settings.algo_kwargs.get("n_steps")
    assert (settings.n_envs, None if n_steps is None else int(n_steps)) == expected


def test_learner_settings_from_algo_kwargs_and_a_zoo_file(tmp_path, capsys):
    out = tmp_path / "kw"
    # the true-reward baseline: the learner's settings are the point, fitting a reward is not
    assert main(["train", "--env", POINT, "--out", str(out), "--algo-kwargs", "n_steps=256", "batch_size=64",
                 "learning_rate=lin_3e-4", *SHORT, "--reward", "true"]) == 0
    model = PPO.load(out / "policy.zip")
    assert model.n_steps == 256 and model.batch_size == 64 and model.learning_rate(0.5) == pytest.approx(1.5e-4)
    zoo = tmp_path / "ppo.yml"
    zoo.write_text(textwrap.dedent("""
        prefrl/PointMass-v0:
          normalize: false
          n_envs: 2
          policy: 'MlpPolicy'
          n_timesteps: !!float 1e6
          n_steps: 128
          gamma: 0.98
          policy_kwargs: "dict(net_arch=dict(pi=[32], vf=[32]), activation_fn=nn.ReLU)"
    """))
    out = tmp_path / "zoo"
    assert main(["train", "--env", POINT, "--out", str(out), "--hyperparams", str(zoo), "--algo-kwargs",
                 "gamma=0.95", *SHORT, "--reward", "true"]) == 0
    resolved = _config(out)["resolved"]
    assert resolved["n_envs"] == 2 and resolved["normalize"] is None
    assert resolved["zoo_hyperparams"]["key"] == POINT and resolved["zoo_hyperparams"]["n_steps"] == 128
    model = PPO.load(out / "policy.zip")
    assert model.n_steps == 128 and model.gamma == 0.95 and model.n_envs == 2  # --algo-kwargs over the file
    capsys.readouterr()
    assert main(["train", "--env", POINT, "--out", str(tmp_path / "bad"), "--algo-kwargs", "n_stepz=5", *SHORT]) == 2
    assert "n_stepz" in capsys.readouterr().err


def test_config_file_with_command_line_overrides(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("env: prefrl/PointMass-v0\nlabels: 12\nsegment-len: 10\nalgo_kwargs: {n_steps: 256, batch_size: 64}\n")
    out = tmp_path / "c"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--labels", "10", "--algo-kwargs", "batch_size=32",
                 "--steps", "600", "--evals", "1", "--eval-episodes", "1", "--no-progress"]) == 0
    c = _config(out)
    assert c["labels"] == 10 and c["segment_len"] == 10 and c["algo_kwargs"] == {"n_steps": 256, "batch_size": 32}
    cfg.write_text("labelz: 3\n")
    assert main(["train", "--config", str(cfg), "--env", POINT, "--out", str(tmp_path / "d")]) == 2
    assert "unknown option(s) ['labelz']" in capsys.readouterr().err


def test_bad_reward_inputs_are_refused_in_one_line(tmp_path, capsys):
    for bad in (["obs", "obs"], ["obs", "speed"]):
        assert main(["train", "--env", POINT, "--out", str(tmp_path / "r"), "--reward-inputs", *bad, *SHORT]) == 2
        err = capsys.readouterr().err
        assert f"reward_inputs {bad!r} is invalid: expected distinct input kinds of obs, act, act_sq, next_obs" in err
        assert "Traceback" not in err
    assert not (tmp_path / "r" / "labels.npz").exists()
