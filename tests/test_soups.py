"""Many rewards at once on MuJoCo: objectives of an env's reward terms, fine-tunes from a shared start, rewarded
soups of their weights, and the front's hypervolume."""

import json

import gymnasium as gym
import numpy as np
import prefrl_envs  # noqa: F401
import pytest
import torch

from prefrl.core.objectives import parse_objective
from prefrl.core.pareto import hypervolume, mix_state_dicts, pareto_mask, simplex_grid
from prefrl.runs.cli import main
from prefrl.runs.config import TrainConfig
from prefrl.sb3.objectives import ObjectiveReward, RewardTerms, env_reward_terms

FALL = "prefrl/PointMassFall-v0"  # terms: forward, healthy, ctrl
SHORT = ["--steps", "512", "--segment-len", "10", "--evals", "1", "--eval-episodes", "2", "--history-episodes", "1",
         "--algo-kwargs", "n_steps=256", "batch_size=64", "--no-progress"]


def test_objectives_are_weighted_sums_of_the_envs_reward_terms():
    assert env_reward_terms(FALL) == ["ctrl", "forward", "healthy"]
    env = RewardTerms(ObjectiveReward(gym.make(FALL), "0.7*forward+0.3*energy"))
    env.reset(seed=0)
    total, sums = 0.0, {}
    for _ in range(400):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        # energy is the control cost plus staying up: healthy on this env
        want = 0.7 * info["reward_forward"] + 0.3 * (info["reward_ctrl"] + info["reward_healthy"])
        assert reward == pytest.approx(want)
        assert info["env_reward"] == pytest.approx(info["reward_forward"] + info["reward_ctrl"] + info["reward_healthy"])
        total += reward
        for k in ("forward", "ctrl", "healthy"):
            sums[k] = sums.get(k, 0.0) + info[f"reward_{k}"]
        if terminated or truncated:
            break
    assert info["reward_terms"] == pytest.approx(sums)
    assert parse_objective("0.7*forward+0.3*energy").value(info["reward_terms"]) == pytest.approx(total)
    bad_env = ObjectiveReward(gym.make(FALL), "speed")
    bad_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"has no reward term 'speed'; its terms are ctrl, forward, healthy"):
        bad_env.step(np.zeros(2))
    for bad in ("", "2**forward", "forward+forward", "inf*forward"):
        with pytest.raises(ValueError, match="objective"):
            parse_objective(bad)


def test_teacher_with_an_objective_and_its_config_errors(tmp_path):
    cfg = TrainConfig(env=FALL, out=str(tmp_path / "r"), teacher="oracle:forward")
    assert (cfg.teacher, cfg.objective) == ("oracle", "forward")
    with pytest.raises(ValueError, match="names objective 'forward' but --objective is 'energy'"):
        TrainConfig(env=FALL, out="x", teacher="oracle:forward", objective="energy")
    with pytest.raises(ValueError, match="no reward term 'speed'"):
        TrainConfig(env=FALL, out="x", objective="speed").validate()
    with pytest.raises(ValueError, match="lacks config.json, policy.zip"):
        TrainConfig(env=FALL, out="x", init_policy=str(tmp_path)).validate()


def test_pareto_front_hypervolume_and_weight_mixing():
    assert hypervolume([[1, 2], [2, 1]], [0, 0]) == pytest.approx(3.0)
    assert hypervolume([[2, 1, 1], [1, 2, 1]], [0, 0, 0]) == pytest.approx(3.0)
    assert hypervolume([[-1, 5]], [0, 0]) == 0.0  # below the reference on one objective
    rng = np.random.default_rng(0)
    pts, probe = rng.random((20, 2)), rng.random((100_000, 2))
    covered = (probe[:, None, :] <= pts[None]).all(axis=2).any(axis=1).mean()
    assert hypervolume(pts, [0, 0]) == pytest.approx(covered, abs=0.01)
    assert pareto_mask([[1, 2], [2, 1], [0.5, 0.5]]).tolist() == [True, True, False]
    assert simplex_grid(2, 3) == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    assert len(simplex_grid(3, 11)) == 66 and all(sum(g) == pytest.approx(1) for g in simplex_grid(3, 11))
    a = {"w": torch.ones(2), "n": torch.tensor(3)}
    b = {"w": torch.zeros(2), "n": torch.tensor(5)}
    mixed = mix_state_dicts([a, b], [0.25, 0.75])
    assert torch.allclose(mixed["w"], torch.full((2,), 0.25)) and int(mixed["n"]) == 3
    with pytest.raises(ValueError, match="shape"):
        mix_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}], [0.5, 0.5])
    with pytest.raises(ValueError, match="at least 2 runs"):
        simplex_grid(1, 11)
    for bad in ([0.7, 0.7], [1.5, -0.5], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="expected numbers >= 0 summing to 1"):
            mix_state_dicts([a, b], bad)
    with pytest.raises(ValueError, match="other parameters than model 0"):
        mix_state_dicts([a, {"v": torch.zeros(2), "n": torch.tensor(1)}], [0.5, 0.5])


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A short true-reward PPO run: the shared start of the fine-tunes."""
    out = tmp_path_factory.mktemp("soups") / "start"
    assert main(["train", "--env", FALL, "--reward", "true", "--out", str(out), *SHORT]) == 0
    return out


def test_fine_tunes_from_a_shared_start_make_a_soup(start, tmp_path, capsys):
    """Two fine-tunes of one start, each on its own objective's teacher: the start's observation normalization
    stays frozen, the soup's endpoints score as the fine-tunes themselves, and mixes score in between."""
    fwd, energy = tmp_path / "fwd", tmp_path / "energy"
    for out, obj in ((fwd, "forward"), (energy, "energy")):
        assert main(["train", "--env", FALL, "--teacher", f"oracle:{obj}", "--labels", "20", "--num-queries", "2",
                     "--init-policy", str(start), "--out", str(out), *SHORT]) == 0
    metrics = json.loads((fwd / "metrics.json").read_text())
    assert metrics["objective"] == "forward" and metrics["true_return"] == pytest.approx(
        metrics["term_returns"]["forward"], rel=1e-5)
    stats = [np.load(d / "vecnormalize.npz") for d in (start, fwd, energy)]
    assert all(np.array_equal(stats[0]["obs_mean"], s["obs_mean"]) for s in stats[1:])
    assert not np.array_equal(stats[0]["ret_var"], stats[1]["ret_var"])  # the reward's statistics still move
    capsys.readouterr()
    assert main(["soup", "--runs", str(fwd), str(energy), "--out", str(tmp_path / "soup"), "--lambdas", "3",
                 "--episodes", "2", "--no-progress"]) == 0
    soup = json.loads((tmp_path / "soup" / "soup.json").read_text())
    assert soup["objectives"] == ["forward", "energy"] and [p["lambda"] for p in soup["points"]] == [
        [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert soup["start"]["run"] == str(start) and soup["hypervolume"] >= 0
    assert (tmp_path / "soup" / "front.png").stat().st_size > 10_000
    from prefrl.runs.soup import evaluate_objectives, load_soup_runs

    run = load_soup_runs([fwd])[0]  # lambda = (1, 0) is the forward fine-tune itself
    own = evaluate_objectives(run.model, run, ["forward", "energy"], 2, seed=0)
    assert soup["points"][0]["objectives"] == own
    # MORL on learned rewards: the frozen reward models of both fine-tunes, weighted
    from prefrl.reward.model import RewardModel
    from prefrl.runs.train import Run

    run_cfg = TrainConfig(env=FALL, out=str(tmp_path / "morl"), reward="frozen", reward_from=[str(fwd), str(energy)],
                          reward_weights=[2.0, -0.5], init_policy=str(start), steps=256, progress=False)
    frozen = Run(run_cfg).venv.venv  # the LearnedRewardVecEnv under the normalization
    frozen.reset()
    obs, act = frozen._last_flat.copy(), np.full((1, 2), 0.3, dtype=np.float32)
    _, reward, _, _ = frozen.step(act)
    models = [RewardModel.load(d / "reward_model.pt", frozen.observation_space, frozen.action_space)
              for d in (fwd, energy)]
    want = sum(w * m.predict(obs, act, frozen._last_flat) for m, w in zip(models, (2.0, -0.5)))
    assert float(reward[0]) == pytest.approx(float(want[0]), rel=1e-5)
    with pytest.raises(ValueError, match="expected 2 finite numbers, one per --reward-from run"):
        TrainConfig(env=FALL, out="x", reward="frozen", reward_from=[str(fwd), str(energy)],
                    reward_weights=[1.0]).validate()
    with pytest.raises(ValueError, match="holds no reward_model.pt"):
        TrainConfig(env=FALL, out="x", reward="frozen", reward_from=[str(start)]).validate()
    capsys.readouterr()
    assert main(["soup", "--runs", str(fwd), str(energy), "--objectives", "forward", "speed", "--out",
                 str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "has no reward term 'speed'; its terms are ctrl, forward, healthy" in capsys.readouterr().err
    # a run that did not start from `start` normalizes observations otherwise: refused
    other = tmp_path / "other"
    assert main(["train", "--env", FALL, "--reward", "true", "--out", str(other), "--seed", "1", *SHORT]) == 0
    capsys.readouterr()
    assert main(["soup", "--runs", str(fwd), str(other), "--objectives", "forward", "energy", "--out",
                 str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "normalize observations differently" in capsys.readouterr().err
    assert main(["train", "--env", "prefrl/PointMass-v0", "--init-policy", str(start), "--out",
                 str(tmp_path / "x"), *SHORT]) == 2
    assert "is a ppo run on prefrl/PointMassFall-v0: expected ppo on prefrl/PointMass-v0" in capsys.readouterr().err
    point = tmp_path / "point"  # another env: other observations, refused before any weight is mixed
    assert main(["train", "--env", "prefrl/PointMass-v0", "--reward", "true", "--out", str(point), *SHORT]) == 0
    capsys.readouterr()
    assert main(["soup", "--runs", str(fwd), str(point), "--objectives", "forward", "energy", "--out",
                 str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "a soup mixes runs of one env and learner" in capsys.readouterr().err


def test_start_from_loads_the_start_policy_exactly(start):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from prefrl.sb3.policies import start_from

    venv = VecNormalize(DummyVecEnv([lambda: gym.make(FALL)]))
    model = PPO("MlpPolicy", venv, seed=5)
    start_from(model, venv, start)
    saved = PPO.load(start / "policy.zip").policy.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.policy.state_dict().items())
    before = venv.obs_rms.mean.copy()
    venv.reset()
    venv.step(np.zeros((1, 2)))
    assert np.array_equal(venv.obs_rms.mean, before)  # frozen
    wide = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": [8]})
    with pytest.raises(ValueError, match="does not fit this run's network"):
        start_from(wide, venv, start)
