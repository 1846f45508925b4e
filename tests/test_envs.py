"""Tests for the point-mass MuJoCo environments registered by ``prefrl_envs``."""

from __future__ import annotations

import importlib
import os
import warnings

# Headless renderer; the Makefile exports the same, this covers a bare `pytest` run.
# Must be set before the first MuJoCo GL context is created.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import prefrl_envs
import pytest
from gymnasium.utils.env_checker import check_env

POINT_MASS = "prefrl/PointMass-v0"
FALL = "prefrl/PointMassFall-v0"


def _pd_reach(obs: np.ndarray) -> np.ndarray:
    """Hand-coded P-D controller for PointMass: push toward the target, damp velocity."""
    return np.clip(5.0 * obs[4:6] - 1.0 * obs[2:4], -1.0, 1.0).astype(np.float32)


def _pd_ridge(obs: np.ndarray) -> np.ndarray:
    """Hand-coded controller for PointMassFall: full throttle in x, P-D on y."""
    return np.array([1.0, np.clip(-4.0 * obs[0] - 1.0 * obs[2], -1.0, 1.0)], dtype=np.float32)


def _rollout(env: gym.Env, policy, seed: int) -> tuple[float, int]:
    """Run one episode; ``policy=None`` samples random actions. Return (return, length)."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, steps = 0.0, 0
    while True:
        action = env.action_space.sample() if policy is None else policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
        if terminated or truncated:
            return total, steps


def test_ids_registered_and_reimport_is_quiet() -> None:
    """Importing registers both ids with their time limits; reloading neither warns nor raises."""
    assert prefrl_envs.ENV_IDS == (POINT_MASS, FALL)
    assert gym.spec(POINT_MASS).max_episode_steps == 100
    assert gym.spec(FALL).max_episode_steps == 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(prefrl_envs)
    assert all(env_id in gym.registry for env_id in prefrl_envs.ENV_IDS)


# Unbounded observation boxes are the MuJoCo convention; the checker's hint about them is noise.
@pytest.mark.filterwarnings("ignore:.*Box observation space m.*infinity")
@pytest.mark.parametrize("env_id", [POINT_MASS, FALL])
def test_gymnasium_env_checker(env_id: str) -> None:
    """Gymnasium's own API checker (spaces, seeding, reset/step contract) passes."""
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize(("env_id", "obs_dim"), [(POINT_MASS, 6), (FALL, 3)])
def test_spaces_and_shapes(env_id: str, obs_dim: int) -> None:
    """Observations are float64 of the documented size; actions are 2-D in [-1, 1]; dt is 0.04 s."""
    env = gym.make(env_id)
    assert env.observation_space.shape == (obs_dim,)
    assert env.observation_space.dtype == np.float64
    assert env.action_space.shape == (2,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert env.unwrapped.dt == pytest.approx(0.04)
    assert env.metadata["render_fps"] == 25
    obs, info = env.reset(seed=0)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float64 and isinstance(info, dict)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (obs_dim,) and np.all(np.isfinite(obs))
    assert isinstance(reward, float) and not truncated and isinstance(info, dict)
    env.close()


@pytest.mark.parametrize("env_id", [POINT_MASS, FALL])
def test_same_seed_same_trajectory(env_id: str) -> None:
    """Equal seeds give identical observation and reward sequences; another seed differs."""

    def trajectory(seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        actions = np.random.default_rng(123).uniform(-1, 1, size=(30, 2)).astype(np.float32)
        observations, rewards = [obs], []
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                break
        env.close()
        return np.array(observations), np.array(rewards)

    obs_a, rew_a = trajectory(7)
    obs_b, rew_b = trajectory(7)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    obs_c, _ = trajectory(8)
    assert not np.array_equal(obs_a[0], obs_c[0])


def test_point_mass_reward_and_target() -> None:
    """Reward is -||pos - target|| - 0.1 ||a||^2; the target is fixed per episode and drawn into the model."""
    env = gym.make(POINT_MASS)
    unwrapped = env.unwrapped
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        target = info["target"]
        assert np.all(np.abs(target) <= 0.9)
        site_pos = unwrapped.data.site("target").xpos[:2]
        np.testing.assert_allclose(site_pos, target)
        np.testing.assert_allclose(obs[:2] + obs[4:], target)
        for _ in range(20):
            action = rng.uniform(-1, 1, size=2).astype(np.float32)
            obs, reward, terminated, _, info = env.step(action)
            pos = unwrapped.data.qpos[:2]
            expected = -np.linalg.norm(pos - target) - 0.1 * np.sum(np.square(action.astype(np.float64)))
            assert reward == pytest.approx(expected, abs=1e-12)
            assert not terminated
            np.testing.assert_allclose(obs[:2] + obs[4:], target)
            # Joint limits act as walls: the mass stays in the arena (small constraint softness).
            assert np.all(np.abs(pos) < 1.02)
    env.close()


def test_point_mass_controller_beats_random() -> None:
    """A P-D controller scores far above random actions (scale: about -10 vs -80 per episode)."""
    env = gym.make(POINT_MASS)
    random_returns, random_lengths = zip(*(_rollout(env, None, seed) for seed in range(5)))
    pd_returns = [_rollout(env, _pd_reach, seed)[0] for seed in range(5)]
    assert set(random_lengths) == {100}  # no termination, only the time limit
    assert np.mean(pd_returns) > -20.0
    assert np.mean(random_returns) < -40.0
    env.close()


def test_fall_reward_termination_and_controller() -> None:
    """Random play falls off early; the controller survives 200 steps; reward matches its formula."""
    env = gym.make(FALL)
    unwrapped = env.unwrapped
    lengths = [_rollout(env, None, seed)[1] for seed in range(10)]
    # Measured over 200 seeds: mean 46, min 23, max 147 steps.
    assert np.mean(lengths) < 100 and max(lengths) < 200

    obs, _ = env.reset(seed=0)
    total = 0.0
    for _step in range(200):
        action = _pd_ridge(obs)
        x_before = float(unwrapped.data.qpos[0])
        obs, reward, terminated, truncated, info = env.step(action)
        expected = (info["x_position"] - x_before) / 0.04 + 1.0 - 0.1 * np.sum(np.square(action.astype(np.float64)))
        assert reward == pytest.approx(expected, abs=1e-9)
        total += reward
        assert not terminated and abs(obs[0]) <= 0.5
    assert truncated
    assert total > 500.0  # measured 555 (random play: about 43)

    # Steering hard sideways ends the episode with no alive bonus on the falling step.
    env.reset(seed=0)
    for _ in range(200):
        obs, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
        if terminated:
            break
    assert terminated and not truncated and obs[0] > 0.5
    assert info["reward_healthy"] == 0.0
    env.close()


@pytest.mark.parametrize("env_id", [POINT_MASS, FALL])
def test_render_rgb_array(env_id: str) -> None:
    """rgb_array rendering (EGL here) returns a non-blank (H, W, 3) uint8 frame that shows the state."""
    env = gym.make(env_id, render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    first = env.render()
    assert isinstance(first, np.ndarray)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert first.std() > 5.0
    if env_id == POINT_MASS:
        env.reset(seed=1)  # a new target must show up in the picture
    else:
        for _ in range(5):  # the tracking camera moves, so the floor pattern shifts
            env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert not np.array_equal(first, env.render())
    env.close()


def test_ppo_true_reward_improves() -> None:
    """SB3 PPO on the true reward of PointMassFall learns to stay on in ~8k steps (about 2 s)."""
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # tiny MLP: threads only add overhead on 2 cores
    venv = make_vec_env(FALL, n_envs=4, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=64, seed=0, device="cpu", verbose=0)
    env = gym.make(FALL)

    def mean_return() -> float:
        """Mean deterministic-policy return over five seeded episodes."""
        policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
        return float(np.mean([_rollout(env, policy, 100 + seed)[0] for seed in range(5)]))

    before = mean_return()
    model.learn(8192)
    after = mean_return()
    # Measured: about 56 before and 159 after; 20k steps reach ~465, 40k reach the optimum ~555.
    assert after > before + 50.0, (before, after)
    env.close()
    venv.close()
