"""The reward-swapping wrappers: learned reward out, true reward in info, everything recorded, bad input refused."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl.core.data import TrajectoryBuffer
from prefrl.reward.model import RewardModel
from prefrl.sb3.wrappers import LearnedRewardVecEnv, LearnedRewardWrapper, UncertaintyBonus


class ToyEnv(gym.Env):
    """obs = [t, noise]; reward = t; ends after `length` steps, terminated or truncated."""

    def __init__(self, length=5, terminate=True, bad_step=None, bad_obs_step=None, obs_space=None):
        self.length, self.terminate = length, terminate
        self.bad_step, self.bad_obs_step = bad_step, bad_obs_step
        self.observation_space = obs_space or spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)

    def _obs(self):
        return np.array([self.t, self.np_random.normal()], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        reward = float(self.t)
        if self.bad_step == self.t:
            reward = float("nan")
        obs = self._obs()
        if self.bad_obs_step == self.t:
            obs[0] = np.inf
        done = self.t >= self.length
        return obs, reward, done and self.terminate, done and not self.terminate, {}


def _model(env, seed=0):
    return RewardModel(env.observation_space, env.action_space, ensemble_size=2, seed=seed)


class CountingModel(RewardModel):
    """Records the batch size of every `predict` call (the policy-facing reward forward)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def predict(self, obs, acts, next_obs):
        self.batches.append(len(obs))
        return super().predict(obs, acts, next_obs)


def test_vec_wrapper_swaps_reward_keeps_truth_and_records_episode_ends():
    envs = [ToyEnv(length=3 + i, terminate=i % 2 == 0) for i in range(4)]
    venv = DummyVecEnv([lambda e=e: e for e in envs])
    model = CountingModel(venv.observation_space, venv.action_space, ensemble_size=2, seed=0)
    buf = TrajectoryBuffer(4)
    wrapped = LearnedRewardVecEnv(venv, model, buf)
    obs = wrapped.reset()
    learned_sum, true_sum = np.zeros(4), np.zeros(4)
    for _step in range(6):
        actions = np.full((4, 1), 0.5, np.float32)
        prev = obs
        calls_before = len(model.batches)
        obs, rewards, dones, infos = wrapped.step(actions)
        assert model.batches[calls_before:] == [4]  # one batched forward for the 4 envs
        next_obs = np.stack([info.get("terminal_observation", o) for info, o in zip(infos, obs)])
        np.testing.assert_allclose(rewards, model.predict(prev, actions, next_obs), rtol=1e-6)
        learned_sum += rewards
        true_sum += [info["true_reward"] for info in infos]
        for i in np.flatnonzero(dones):
            assert info_close(infos[i]["learned_return"], learned_sum[i])
            learned_sum[i] = 0
    # env 0 (3 steps, terminated) finished twice; terminal observations were recorded, not the reset ones
    eps0 = [e for e in buf.episodes if len(e) == 3]
    assert len(eps0) == 2 and all(e.terminated for e in eps0)
    np.testing.assert_array_equal(eps0[0].next_obs[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(eps0[0].true_rewards, [1, 2, 3])
    assert any(len(e) == 4 and not e.terminated for e in buf.episodes)  # truncated env 1


@pytest.mark.parametrize("n_envs", [1, 3, 8])
def test_vec_wrapper_makes_one_batched_forward_per_vector_step(n_envs):
    venv = DummyVecEnv([lambda i=i: ToyEnv(length=2 + i % 3, terminate=i % 2 == 0) for i in range(n_envs)])
    model = CountingModel(venv.observation_space, venv.action_space, ensemble_size=2, seed=0)
    wrapped = LearnedRewardVecEnv(venv, model, TrajectoryBuffer(n_envs))
    wrapped.reset()
    assert model.batches == []  # resetting computes no reward
    for _step in range(7):  # across auto-resets of every env
        wrapped.step(np.zeros((n_envs, 1), np.float32))
    assert model.batches == [n_envs] * 7


def info_close(a, b):
    return abs(a - b) < 1e-4 * max(1.0, abs(b))


def test_vec_wrapper_records_render_states_before_each_step():
    venv = DummyVecEnv([lambda: gym.make("InvertedPendulum-v5")])
    buf = TrajectoryBuffer(1)
    wrapped = LearnedRewardVecEnv(venv, _model(venv), buf)
    wrapped.reset()
    data = venv.envs[0].unwrapped.data
    first = np.concatenate([data.qpos, data.qvel]).copy()
    for _ in range(40):
        _, _, dones, _ = wrapped.step(np.array([[0.0]], np.float32))
        if dones[0]:
            break
    wrapped.reset()
    ep = buf.episodes[0]
    assert ep.states.shape == (len(ep), 4)
    np.testing.assert_allclose(ep.states[0], first, rtol=1e-5)


def test_true_reward_source_is_the_baseline_path():
    venv = DummyVecEnv([lambda: ToyEnv()])
    wrapped = LearnedRewardVecEnv(venv, None, TrajectoryBuffer(1))
    wrapped.reset()
    _, rewards, _, infos = wrapped.step(np.zeros((1, 1), np.float32))
    assert rewards[0] == infos[0]["true_reward"] == 1.0
    with pytest.raises(ValueError, match="needs a reward model"):
        wrapped.set_reward_source("learned")
    with pytest.raises(ValueError, match="reward source"):
        wrapped.set_reward_source("bogus")


def test_runes_bonus_adds_the_members_std_with_a_weight_that_fades_per_env_step():
    """The policy's reward is the members' mean plus beta (1 - decay)^t times their std, t counting env steps over
    all envs; the evaluation's learned return (another wrapper, no bonus) is the mean alone."""
    venv = DummyVecEnv([lambda: ToyEnv(length=50) for _ in range(2)])
    model = RewardModel(venv.observation_space, venv.action_space, ensemble_size=3, seed=0)
    wrapped = LearnedRewardVecEnv(venv, model, TrajectoryBuffer(2))
    bonus = UncertaintyBonus(beta=0.5, decay=0.1)
    wrapped.set_exploration_bonus(bonus)
    obs = wrapped.reset()
    act = np.full((2, 1), 0.3, np.float32)
    for step in range(3):
        flat = obs.astype(np.float32)
        members = model.predict_members(flat, act, flat + [[1, 0]])  # the toy env's next t; noise is redrawn
        assert np.allclose(members.mean(0), model.predict(flat, act, flat + [[1, 0]]), atol=1e-5)
        obs, rewards, _, infos = wrapped.step(act)
        nxt = np.array([[step + 1, info_obs[1]] for info_obs in obs], np.float32)
        members = model.predict_members(flat, act, nxt)
        weight = 0.5 * 0.9 ** (2 * step)
        np.testing.assert_allclose(rewards, members.mean(0) + weight * members.std(0), rtol=1e-5)
        assert np.all(members.std(0) > 0)  # an untrained ensemble disagrees: the bonus is not zero
    assert bonus.steps == 6 and bonus.weight == pytest.approx(0.5 * 0.9 ** 6)
    wrapped.set_exploration_bonus(None)
    obs_before = obs.astype(np.float32)
    obs, rewards, _, _ = wrapped.step(act)
    nxt = np.array([[4, o[1]] for o in obs], np.float32)
    np.testing.assert_allclose(rewards, model.predict(obs_before, act, nxt), rtol=1e-5)
    with pytest.raises(ValueError, match="needs a reward model"):
        LearnedRewardVecEnv(DummyVecEnv([lambda: ToyEnv()]), None).set_exploration_bonus(bonus)
    for bad in ({"beta": -0.1}, {"beta": float("nan")}, {"beta": "0.1"}, {"beta": 0.1, "decay": 1.0},
                {"beta": 0.1, "decay": None}):
        with pytest.raises(ValueError, match="exploration bonus"):
            UncertaintyBonus(**bad)


@pytest.mark.parametrize("kind", ["reward", "obs"])
def test_non_finite_reward_or_observation_is_refused(kind):
    env = ToyEnv(length=10, **({"bad_step": 2} if kind == "reward" else {"bad_obs_step": 2}))
    wrapped = LearnedRewardVecEnv(DummyVecEnv([lambda: env]), _model(env), TrajectoryBuffer(1))
    wrapped.reset()
    wrapped.step(np.zeros((1, 1), np.float32))
    with pytest.raises(ValueError, match="nan|NaN/inf"):
        wrapped.step(np.zeros((1, 1), np.float32))


def test_unsupported_observation_space_is_refused():
    env = ToyEnv(obs_space=spaces.Text(8))
    with pytest.raises(TypeError, match="observation space Text"):
        LearnedRewardWrapper(env, None)
    env = ToyEnv(obs_space=spaces.Dict({"ok": spaces.Box(0, 1, (2,)), "caption": spaces.Text(4)}))
    with pytest.raises(TypeError, match=r"observation\['caption'\] space Text"):
        LearnedRewardWrapper(env, None)


def test_model_trained_on_other_spaces_is_refused():
    other = RewardModel(spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (1,)), ensemble_size=1)
    with pytest.raises(ValueError, match=r"trained on observation space .*env gives"):
        LearnedRewardVecEnv(DummyVecEnv([lambda: ToyEnv()]), other)


class DictEnv(ToyEnv):
    def __init__(self):
        super().__init__(length=4)
        self.observation_space = spaces.Dict({"pos": spaces.Box(-np.inf, np.inf, (2,)), "mode": spaces.Discrete(3)})

    def _obs(self):
        return {"pos": np.array([self.t, 0.0], np.float32), "mode": self.t % 3}


def test_dict_observations_are_flattened():
    env = DictEnv()
    model = _model(env)
    assert model.obs_dim == 5
    buf = TrajectoryBuffer(1)
    wrapped = LearnedRewardVecEnv(DummyVecEnv([lambda: env]), model, buf)
    wrapped.reset()
    for _ in range(4):
        wrapped.step(np.zeros((1, 1), np.float32))
    ep = buf.episodes[0]
    # keys in Dict order (sorted): one-hot mode (4 % 3 = 1), then pos; the terminal obs, not the reset one
    np.testing.assert_array_equal(ep.next_obs[-1], [0, 1, 0, 4, 0])


def test_single_env_wrapper_matches_and_records():
    env = ToyEnv(length=3)
    buf = TrajectoryBuffer(1)
    wrapped = LearnedRewardWrapper(env, _model(env), buf)
    obs, _ = wrapped.reset(seed=0)
    total = 0.0
    for _ in range(3):
        act = np.array([0.2], np.float32)
        nxt, r, term, trunc, info = wrapped.step(act)
        assert r == pytest.approx(float(wrapped.relabel.reward_model.predict(obs[None], act[None], nxt[None])[0]), rel=1e-6)
        total += r
        obs = nxt
    assert term and info["true_reward"] == 3.0 and info["learned_return"] == pytest.approx(total)
    assert len(buf.episodes) == 1 and buf.episodes[0].terminated
    with pytest.raises(ValueError, match="n_envs=1"):
        LearnedRewardWrapper(ToyEnv(), None, TrajectoryBuffer(2))


def test_single_env_wrapper_switches_reward_source_and_bonus_as_the_vec_wrapper_does():
    env = ToyEnv(length=20)
    model = RewardModel(env.observation_space, env.action_space, ensemble_size=3, seed=0)
    wrapped = LearnedRewardWrapper(env, model)
    bonus = UncertaintyBonus(beta=0.5, decay=0.1)
    wrapped.set_exploration_bonus(bonus)
    obs, _ = wrapped.reset(seed=0)
    act = np.array([0.3], np.float32)
    for step in range(3):
        nxt, r, _, _, _ = wrapped.step(act)
        members = model.predict_members(obs[None], act[None], nxt[None])[:, 0]
        assert r == pytest.approx(members.mean() + 0.5 * 0.9**step * members.std(), rel=1e-5)
        obs = nxt
    wrapped.set_exploration_bonus(None)
    wrapped.set_reward_source("true")
    _, r, _, _, info = wrapped.step(act)
    assert r == info["true_reward"]
    wrapped.set_reward_source(lambda o, a, n: np.full(len(o), 7.0))
    assert wrapped.step(act)[1] == 7.0
    bare = LearnedRewardWrapper(ToyEnv(), None)
    with pytest.raises(ValueError, match="needs a reward model"):
        bare.set_exploration_bonus(bonus)
    with pytest.raises(ValueError, match="needs a reward model"):
        bare.set_reward_source("learned")


def _qpos_qvel(env):
    data = env.unwrapped.data
    return np.concatenate([data.qpos, data.qvel]).astype(np.float32)


def test_single_env_wrapper_records_mujoco_states_before_each_step():
    import prefrl  # noqa: F401  (registers prefrl/PointMassFall-v0)

    env = gym.make("prefrl/PointMassFall-v0")
    buf = TrajectoryBuffer(1)
    wrapped = LearnedRewardWrapper(env, _model(env), buf)
    rng = np.random.default_rng(0)
    expected, current = [], []
    wrapped.reset(seed=0)
    for _step in range(120):
        current.append(_qpos_qvel(env))  # the state the step starts from
        _, _, term, trunc, _ = wrapped.step(rng.uniform(-1, 1, 2).astype(np.float32))
        if term or trunc:
            expected.append(current)
            current = []
            wrapped.reset()
    wrapped.reset()  # cuts the episode in progress: recorded too
    if current:
        expected.append(current)
    assert [len(e) for e in buf.episodes] == [len(e) for e in expected]
    for ep, states in zip(buf.episodes, expected):
        assert ep.states.shape == (len(ep), 4)
        np.testing.assert_array_equal(ep.states, np.stack(states))
    # the states move from step to step (so "before" and "after" a step are told apart above)
    assert not np.allclose(buf.episodes[0].states[1:], buf.episodes[0].states[:-1])


def test_single_env_wrapper_records_no_states_for_a_non_mujoco_env():
    env = gym.make("Pendulum-v1")
    buf = TrajectoryBuffer(1)
    wrapped = LearnedRewardWrapper(env, _model(env), buf)
    wrapped.reset(seed=0)
    for _ in range(5):
        wrapped.step(np.zeros(1, np.float32))
    wrapped.reset()
    assert len(buf.episodes) == 1 and len(buf.episodes[0]) == 5
    assert buf.episodes[0].states is None


class _ZeroPolicy:
    """What evaluate_policy needs of a learner: predict() for a batch of observations."""

    def predict(self, obs, deterministic=True):
        return np.zeros((len(obs), 1), np.float32), None


def test_evaluation_on_several_envs_gives_each_env_its_share_of_the_episodes():
    """Env 0's episodes last 2 steps (return 3), env 1's 10 (return 55): the first four episodes to end are all
    env 0's, so counting them would report 3; each env's two episodes give (3 + 3 + 55 + 55) / 4."""
    from stable_baselines3.common.monitor import Monitor

    from prefrl.sb3.evaluation import evaluate_policy

    venv = LearnedRewardVecEnv(DummyVecEnv([lambda: Monitor(ToyEnv(length=2)), lambda: Monitor(ToyEnv(length=10))]))
    res = evaluate_policy(_ZeroPolicy(), venv, 4)
    assert sorted(res["true_returns"]) == [3.0, 3.0, 55.0, 55.0]
    assert res["true_return"] == pytest.approx(29.0)
    assert res["learned_return"] is None
    assert sorted(evaluate_policy(_ZeroPolicy(), venv, 3)["true_returns"]) == [3.0, 55.0, 55.0]
