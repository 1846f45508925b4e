"""The SB3 callback loop: label schedule, PPO and SAC, replay relabelling, PEBBLE pre-training."""

import gymnasium as gym
import numpy as np
import prefrl_envs  # noqa: F401
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from prefrl.core.data import ComparisonDataset, TrajectoryBuffer
from prefrl.feedback.teachers import make_teacher
from prefrl.reward.model import RewardModel
from prefrl.sb3.callback import LabelSchedule, PreferenceCallback, StateEntropyReward
from prefrl.sb3.wrappers import LearnedRewardVecEnv


def test_schedule_spends_a_quarter_up_front_then_a_decaying_rate():
    s = LabelSchedule(total=700, total_steps=300_000)
    assert s.initial == 175 and s.due(0) == 175
    due = [s.due(t) for t in range(0, 300_001, 1000)]
    assert all(b >= a for a, b in zip(due, due[1:]))
    assert s.due(int(0.75 * 300_000)) == 700 and due[-1] == 700
    first_half = s.due(int(0.375 * 300_000)) - 175
    assert first_half > 0.6 * (700 - 175)  # the rate decays: more than half of the rest in the first half
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="label budget must be a positive integer"):
            LabelSchedule(total=bad, total_steps=1000)


def _setup(env_id, algo_cls, n_envs=1, **algo_kw):
    venv = DummyVecEnv([lambda: gym.make(env_id)] * n_envs)
    venv.seed(0)
    model = RewardModel(venv.observation_space, venv.action_space, ensemble_size=2, seed=0)
    wrapped = LearnedRewardVecEnv(venv, model, TrajectoryBuffer(n_envs))
    algo = algo_cls("MlpPolicy", wrapped, seed=0, **algo_kw)
    return model, wrapped, algo


def test_ppo_loop_spends_the_budget_and_saves_every_label(tmp_path):
    model, wrapped, ppo = _setup("prefrl/PointMassFall-v0", PPO, n_envs=2, n_steps=256, batch_size=64, n_epochs=2)
    cb = PreferenceCallback(model, make_teacher("oracle"), total_labels=40, total_steps=6000, segment_len=20,
                            num_queries=5, warmup_steps=1000, run_dir=tmp_path, sampler="disagreement")
    ppo.learn(6000, callback=cb)
    assert cb.labels_asked == 40 and len(cb.dataset) == 40
    assert cb.state.warmup_steps == 1000
    assert len(cb.state.fit_reports) >= 4  # initial fit + decaying queries
    saved = ComparisonDataset.load(tmp_path / "comparisons.npz")
    np.testing.assert_array_equal(saved.labels, cb.dataset.labels)
    assert (tmp_path / "reward_model.pt").exists()
    # the warm-up covered terminations, so the reward is anchored at the absorbing state
    assert (saved.segments_a.mask == 0).any()


def test_sac_replay_buffer_is_relabelled_with_the_current_reward():
    model, wrapped, sac = _setup("InvertedPendulum-v5", SAC, learning_starts=200, buffer_size=5000,
                                 policy_kwargs={"net_arch": [32, 32]}, train_freq=4, gradient_steps=1)
    cb = PreferenceCallback(model, make_teacher("oracle"), total_labels=30, total_steps=1500, segment_len=10,
                            num_queries=3)
    sac.learn(1500, callback=cb)
    assert cb.labels_asked == 30
    rb = sac.replay_buffer
    n = rb.pos
    obs, nxt = rb.observations[:n, 0], rb.next_observations[:n, 0]
    acts = sac.policy.unscale_action(rb.actions[:n, 0])  # InvertedPendulum's actions live in [-3, 3]
    stale = rb.rewards[:n, 0].copy()
    np.testing.assert_allclose(stale, model.predict(obs, acts, nxt), rtol=1e-4, atol=1e-5)
    # one more query (budget raised): every stored reward must be recomputed with the refitted model
    cb.schedule = LabelSchedule(total=35, total_steps=1500)
    cb._query(5)
    fresh = model.predict(obs, acts, nxt)
    np.testing.assert_allclose(rb.rewards[:n, 0], fresh, rtol=1e-4, atol=1e-5)
    assert not np.allclose(stale, fresh)


@pytest.mark.parametrize("learner", ["sac", "ppo"])
def test_pebble_pretraining_uses_state_entropy_before_the_first_labels(learner):
    if learner == "sac":
        model, wrapped, algo = _setup("prefrl/PointMass-v0", SAC, learning_starts=100, buffer_size=3000,
                                      policy_kwargs={"net_arch": [32, 32]}, train_freq=8, gradient_steps=1)
        before, warmup, counted = 100, None, 100  # SAC's random steps are its learning_starts
    else:
        model, wrapped, _ = _setup("prefrl/PointMass-v0", PPO, n_steps=100, batch_size=50, n_epochs=1)
        algo = PPO("MlpPolicy", VecNormalize(wrapped), n_steps=100, batch_size=50, n_epochs=1, seed=0,
                   policy_kwargs={"net_arch": [32, 32]})
        before, warmup, counted = 200, 200, 0  # PPO's random-action warm-up, outside its own step count
    cb = PreferenceCallback(model, make_teacher("oracle"), total_labels=20, total_steps=1200, segment_len=10,
                            num_queries=2, pretrain_steps=400, warmup_steps=warmup)
    sources = _record_sources(wrapped, lambda: algo.learn(1200, callback=cb))
    first_learned = sources.index("learned")
    assert set(sources[:first_learned]) == {"StateEntropyReward"}
    assert first_learned >= before + 400  # random steps + pre-training
    assert cb.state.fit_reports[0]["env_steps"] >= counted + 400
    assert cb.labels_asked == 20 and set(sources[first_learned:]) == {"learned"}
    if learner == "ppo":  # the reward scale of pre-training is forgotten: normalization counts learned rewards only
        assert algo.get_env().ret_rms.count <= len(sources) - first_learned + 1


def _record_sources(wrapped, run):
    """The reward source of every step `run()` takes through `wrapped` (a name for callables)."""
    sources, orig = [], type(wrapped.relabel).__call__

    def spy(self, *args, **kw):
        sources.append(self.source if isinstance(self.source, str) else type(self.source).__name__)
        return orig(self, *args, **kw)

    type(wrapped.relabel).__call__ = spy
    try:
        run()
    finally:
        type(wrapped.relabel).__call__ = orig
    return sources


def test_pebble_pretraining_before_the_true_reward_is_the_same_pretraining():
    from prefrl.sb3.exploration import StateEntropyPretraining

    venv = DummyVecEnv([lambda: gym.make("prefrl/PointMass-v0")])
    wrapped = LearnedRewardVecEnv(venv, None, TrajectoryBuffer(1))
    ppo = PPO("MlpPolicy", VecNormalize(wrapped), n_steps=100, batch_size=50, n_epochs=1, seed=0,
              policy_kwargs={"net_arch": [32, 32]})
    sources = _record_sources(wrapped, lambda: ppo.learn(800, callback=StateEntropyPretraining(400)))
    first_true = sources.index("true")
    assert first_true == 400 and set(sources[:first_true]) == {"StateEntropyReward"}  # 4 rollouts of 100 steps
    assert set(sources[first_true:]) == {"true"} and len(sources) == 800
    assert ppo.get_env().ret_rms.count <= 400 + 1  # normalization forgot the pre-training reward's scale
    with pytest.raises(ValueError, match="TrajectoryBuffer"):
        PPO("MlpPolicy", LearnedRewardVecEnv(venv, None), n_steps=64).learn(64, callback=StateEntropyPretraining(32))


def test_state_entropy_reward_is_larger_for_novel_states():
    buf = TrajectoryBuffer(1)
    for t in range(50):
        o = np.array([[0.01 * t, 0.0]], np.float32)
        buf.add(o, np.zeros((1, 1)), o, np.zeros(1), np.array([t == 49]), np.zeros(1, bool))
    r = StateEntropyReward(buf, k=3)
    near, far = r(None, None, np.array([[0.2, 0.0], [5.0, 5.0]], np.float32))
    assert far > 10 * near


def test_callback_refuses_a_mismatched_setup():
    model, wrapped, ppo = _setup("prefrl/PointMass-v0", PPO, n_steps=64)
    other = RewardModel(wrapped.observation_space, wrapped.action_space, ensemble_size=1)
    cb = PreferenceCallback(other, make_teacher("oracle"), total_labels=10, total_steps=128)
    with pytest.raises(ValueError, match="different reward model"):
        ppo.learn(128, callback=cb)
    with pytest.raises(ValueError, match="unknown sampler 'best'"):
        PreferenceCallback(model, make_teacher("oracle"), total_labels=10, total_steps=128, sampler="best")
    for bad in ({"candidate_factor": 0}, {"num_queries": -1}, {"segment_len": 2.5}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a positive integer"):
            PreferenceCallback(model, make_teacher("oracle"), total_labels=10, total_steps=128, **bad)


def test_discrete_action_replay_buffers_are_relabelled_with_one_hot_actions():
    from stable_baselines3 import DQN

    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    model = RewardModel(venv.observation_space, venv.action_space, ensemble_size=2, seed=0)
    wrapped = LearnedRewardVecEnv(venv, model, TrajectoryBuffer(2))
    dqn = DQN("MlpPolicy", wrapped, learning_starts=100, buffer_size=2000, seed=0)
    cb = PreferenceCallback(model, make_teacher("oracle"), total_labels=20, total_steps=600, segment_len=10,
                            num_queries=2)
    dqn.learn(600, callback=cb)
    rb = dqn.replay_buffer
    n = rb.pos
    acts = np.eye(2, dtype=np.float32)[rb.actions[:n].reshape(-1).astype(int)]
    fresh = model.predict(rb.observations[:n].reshape(-1, 4), acts, rb.next_observations[:n].reshape(-1, 4))
    np.testing.assert_allclose(rb.rewards[:n].reshape(-1), fresh, rtol=1e-4, atol=1e-5)


def test_a_teacher_that_answers_nothing_is_reported_not_silent():
    """B-Pref's skip teacher skips every pair whose returns are all below its (positive) threshold."""
    model, wrapped, ppo = _setup("prefrl/PointMass-v0", PPO, n_steps=256, batch_size=64, n_epochs=1)
    cb = PreferenceCallback(model, make_teacher("skip"), total_labels=10, total_steps=512, segment_len=20,
                            num_queries=1, warmup_steps=400)
    with pytest.warns(UserWarning, match="teacher 'skip' answered none of"):
        ppo.learn(512, callback=cb)
    assert cb.labels_asked == 10 and len(cb.dataset) == 0
