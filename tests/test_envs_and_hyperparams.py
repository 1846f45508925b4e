"""prefrl.sb3.envs (module:EnvId ids, env kwargs) and prefrl.sb3.hyperparams (RL Baselines3 Zoo files, --algo-kwargs)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.noise import NormalActionNoise

from prefrl.sb3.envs import check_env_id, make_vec_env
from prefrl.sb3.hyperparams import LinearToZero, load_zoo_hyperparams, parse_algo_kwargs, parse_python_literal
from prefrl.sb3.objectives import env_reward_terms

PPO_YML = """
# A Zoo-style file: comments, !!float tags, multi-line policy_kwargs strings.
Hopper-v3:
  policy: 'MlpPolicy'
  n_timesteps: !!float 1e5
  learning_rate: 0.1
Hopper-v4:
  normalize: true
  n_envs: 1
  policy: 'MlpPolicy'
  n_timesteps: !!float 1e6
  batch_size: 32
  n_steps: 512
  gamma: 0.999
  learning_rate: lin_3e-4
  ent_coef: 0.00229519
  clip_range: lin_0.2
  n_epochs: 5
  gae_lambda: 0.99
  max_grad_norm: 0.7
  vf_coef: 0.835671
  policy_kwargs: "dict(
                    log_std_init=-2,
                    ortho_init=False,
                    activation_fn=nn.ReLU,
                    net_arch=dict(pi=[256, 256], vf=[256, 256])
                  )"
Pendulum-v1:
  normalize: "dict(norm_obs=True, norm_reward=False)"
  policy: 'MlpPolicy'
  n_timesteps: !!float 1e5
"""

SAC_YML = """
HalfCheetah-v4: &mujoco-defaults
  n_timesteps: !!float 1e6
  policy: 'MlpPolicy'
  learning_starts: 1000
Hopper-v4:
  <<: *mujoco-defaults
  buffer_size: 2000
  train_freq: [1, "episode"]
  gradient_steps: -1
  learning_rate: 1e-3
  noise_type: 'normal'
  noise_std: 0.1
  policy_kwargs:
    net_arch: [64, 64]
    activation_fn: th.nn.Tanh
"""


@pytest.fixture
def tiny_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module on sys.path that registers a CartPole copy under a fresh id on import; removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    module, env_id = f"tiny_prefrl_envs_{suffix}", f"TinyTestEnv{suffix}-v0"
    (tmp_path / f"{module}.py").write_text(
        "from gymnasium.envs.registration import register\n"
        f"register(id={env_id!r}, entry_point='gymnasium.envs.classic_control:CartPoleEnv', max_episode_steps=50)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module, env_id
    gym.registry.pop(env_id, None)
    sys.modules.pop(module, None)


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A file under tmp_path with this text."""
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- envs
def test_module_form_imports_the_module_and_makes_the_env(tiny_module):
    module, env_id = tiny_module
    assert check_env_id(f"{module}:{env_id}") == env_id
    venv = make_vec_env(f"{module}:{env_id}", 2, seed=3)
    assert venv.num_envs == 2 and venv.reset().shape == (2, 4)
    assert venv.envs[0].spec.id == env_id
    venv.close()


def test_plain_ids_unchanged():
    assert check_env_id("Pendulum-v1") == "Pendulum-v1"
    assert check_env_id("prefrl/PointMass-v0") == "prefrl/PointMass-v0"
    with pytest.raises(ValueError, match="unknown env id 'Hoper-v5'.*did you mean Hopper-v5"):
        check_env_id("Hoper-v5")


def test_missing_module_is_named():
    with pytest.raises(ValueError, match="no_such_prefrl_module_xyz.*ModuleNotFoundError"):
        check_env_id("no_such_prefrl_module_xyz:Reach-v0")
    with pytest.raises(ValueError, match="no_such_prefrl_module_xyz"):
        make_vec_env("no_such_prefrl_module_xyz:Reach-v0", 1, 0)
    with pytest.raises(ValueError, match="expected 'module:EnvId'"):
        check_env_id(":Reach-v0")


def test_imported_module_without_the_id(tiny_module):
    module, env_id = tiny_module
    with pytest.raises(ValueError, match=f"module '{module}' was imported but 'Nope-v0' is not registered"):
        check_env_id(f"{module}:Nope-v0")


def test_env_kwargs_reach_the_env():
    venv = make_vec_env("Pendulum-v1", 2, 0, env_kwargs={"g": 5.0})
    assert [e.unwrapped.g for e in venv.envs] == [5.0, 5.0]
    venv.close()


def test_bad_env_kwargs_are_named():
    with pytest.raises(ValueError, match=r"'Pendulum-v1' refused the env kwargs \{'bogus': 1\}"):
        make_vec_env("Pendulum-v1", 1, 0, env_kwargs={"bogus": 1})
    with pytest.raises(ValueError, match="render_mode"):
        make_vec_env("Pendulum-v1", 1, 0, env_kwargs={"render_mode": "human"}, render_mode="rgb_array")
    # the other places that build an env from a user's env kwargs name them the same way
    with pytest.raises(ValueError, match=r"'Pendulum-v1' refused the env kwargs \{'bogus': 1\}"):
        env_reward_terms("Pendulum-v1", {"bogus": 1})


# --------------------------------------------------------------------------- Zoo files
def test_zoo_ppo_entry_falls_back_to_newest_version_and_builds_ppo(tmp_path):
    zoo = load_zoo_hyperparams(write(tmp_path, "ppo.yml", PPO_YML), "Hopper-v5")
    assert zoo.source_key == "Hopper-v4"  # newest other version, not Hopper-v3
    assert zoo.n_envs == 1 and zoo.n_timesteps == 1_000_000 and zoo.policy == "MlpPolicy"
    assert zoo.normalize == {"norm_obs": True, "norm_reward": True, "gamma": 0.999}
    kw = zoo.algo_kwargs
    assert kw["learning_rate"] == LinearToZero(3e-4) and kw["learning_rate"](0.5) == pytest.approx(1.5e-4)
    assert kw["policy_kwargs"] == {"log_std_init": -2, "ortho_init": False, "activation_fn": torch.nn.ReLU,
                                   "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    assert not {"normalize", "n_envs", "n_timesteps", "policy"} & set(kw)
    # raw keeps what was written, and config.json can hold it.
    assert zoo.raw["learning_rate"] == "lin_3e-4" and zoo.raw["policy_kwargs"].startswith("dict(")
    json.dumps(zoo.raw)

    venv = make_vec_env("Hopper-v5", 1, 0)
    model = PPO("MlpPolicy", venv, device="cpu", **kw)
    assert model.policy.activation_fn is torch.nn.ReLU
    assert model.lr_schedule(1.0) == pytest.approx(3e-4) and model.clip_range(0.5) == pytest.approx(0.1)
    assert model.n_steps == 512 and model.gamma == 0.999
    venv.close()


def test_zoo_exact_key_wins_and_normalize_string(tmp_path):
    path = write(tmp_path, "ppo.yml", PPO_YML)
    assert load_zoo_hyperparams(path, "Hopper-v3").source_key == "Hopper-v3"
    pend = load_zoo_hyperparams(path, "Pendulum-v1")
    assert pend.normalize == {"norm_obs": True, "norm_reward": False} and pend.n_envs is None


def test_zoo_sac_entry(tmp_path):
    zoo = load_zoo_hyperparams(write(tmp_path, "sac.yml", SAC_YML), "Hopper-v5")
    kw = zoo.algo_kwargs
    assert zoo.source_key == "Hopper-v4" and zoo.normalize is None
    assert kw["train_freq"] == (1, "episode") and kw["learning_starts"] == 1000
    assert kw["learning_rate"] == pytest.approx(1e-3)  # "1e-3" without !!float is a string to PyYAML
    assert kw["policy_kwargs"] == {"net_arch": [64, 64], "activation_fn": torch.nn.Tanh}
    assert isinstance(kw["action_noise"], NormalActionNoise) and kw["action_noise"]().shape == (3,)
    json.dumps(zoo.raw)
    venv = make_vec_env("Hopper-v5", 1, 0)
    model = SAC("MlpPolicy", venv, device="cpu", **kw)
    assert model.train_freq.frequency == 1 and model.buffer_size == 2000
    venv.close()


def test_malicious_policy_kwargs_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = "__import__('os').system('touch PWNED')"
    path = write(tmp_path, "evil.yml", f"Hopper-v4:\n  policy: MlpPolicy\n  policy_kwargs: \"{evil}\"\n")
    with pytest.raises(ValueError, match=r"__import__"):
        load_zoo_hyperparams(path, "Hopper-v4")
    with pytest.raises(ValueError, match="not allowed"):
        parse_algo_kwargs({"policy_kwargs": evil})
    for expr in ("dict(activation_fn=os.system)", "dict(**x)", "[x for x in ()]", "nn.Module.__subclasses__",
                 "dict(a=1 + 1)", "(lambda: 0)"):
        with pytest.raises(ValueError, match="not allowed"):
            parse_python_literal(expr)
    assert not (tmp_path / "PWNED").exists()


def test_unsupported_keys_and_policies_refused(tmp_path):
    text = ("Hopper-v4:\n  policy: MlpPolicy\n  frame_stack: 4\n"
            "  env_wrapper:\n    - sb3_contrib.common.wrappers.TimeFeatureWrapper\n")
    with pytest.raises(ValueError, match="cannot honour env_wrapper.*frame_stack"):
        load_zoo_hyperparams(write(tmp_path, "a.yml", text), "Hopper-v4")
    with pytest.raises(ValueError, match="policy='CnnPolicy'"):
        load_zoo_hyperparams(write(tmp_path, "b.yml", "Hopper-v4:\n  policy: CnnPolicy\n"), "Hopper-v4")


def test_bad_files_refused(tmp_path):
    with pytest.raises(ValueError, match="bad.yml is not valid YAML"):
        load_zoo_hyperparams(write(tmp_path, "bad.yml", "Hopper-v4: [unclosed\n  policy: :\n"), "Hopper-v4")
    with pytest.raises(ValueError, match="list.yml: expected a mapping"):
        load_zoo_hyperparams(write(tmp_path, "list.yml", "- 1\n- 2\n"), "Hopper-v4")
    with pytest.raises(ValueError, match="cannot read hyperparameter file .*missing.yml"):
        load_zoo_hyperparams(tmp_path / "missing.yml", "Hopper-v4")
    with pytest.raises(ValueError, match="no entry for 'Walker2d-v5'.*Hopper-v4"):
        load_zoo_hyperparams(write(tmp_path, "ppo.yml", PPO_YML), "Walker2d-v5")


def test_parse_algo_kwargs():
    kw = parse_algo_kwargs({"learning_rate": "lin_3e-4", "policy_kwargs": "dict(net_arch=[64, 64])",
                            "train_freq": [4, "step"], "batch_size": 64, "clip_range": "linear_0.2"})
    assert kw == {"learning_rate": LinearToZero(3e-4), "policy_kwargs": {"net_arch": [64, 64]},
                  "train_freq": (4, "step"), "batch_size": 64, "clip_range": LinearToZero(0.2)}
    assert parse_algo_kwargs({"policy_kwargs": {"activation_fn": "nn.ELU"}})["policy_kwargs"]["activation_fn"] \
        is torch.nn.ELU
    for bad, match in (({"learning_rate": "cos_3e-4"}, "learning_rate='cos_3e-4'"),
                       ({"learning_rate": "lin_abc"}, "lin_abc"),
                       ({"n_envs": 4}, "n_envs .use --n-envs"),
                       ({"train_freq": [1, "fortnight"]}, "train_freq"),
                       ({"noise_type": "normal", "noise_std": 0.1}, "action space")):
        with pytest.raises(ValueError, match=match):
            parse_algo_kwargs(bad)
    noise = parse_algo_kwargs({"noise_type": "ornstein-uhlenbeck", "noise_std": 0.2}, env_id="Pendulum-v1")
    assert noise["action_noise"]().shape == (1,)
