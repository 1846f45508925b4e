"""`prefrl train`: one run of PPO or SAC on a learned (or, as the baseline, the true) reward.

A run directory holds everything needed to judge and resume it:
config.json, metrics.json, curves.png, tb/ (TensorBoard), policy.zip, vecnormalize.npz,
reward_model.pt, comparisons.npz (every label, saved as it arrives), state.json.

`Run` is assembled by one small builder per concern (envs, teacher, labels, reward, learner,
feedback loop); each takes what it needs and returns what it built.
"""

from __future__ import annotations

import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from prefrl.core.data import ComparisonDataset, TrajectoryBuffer, atomic_write, write_json
from prefrl.core.demos import Demonstrations
from prefrl.feedback.base import Teacher
from prefrl.feedback.teachers import make_teacher
from prefrl.human.clips import FrameRecorder, FrameStore, is_mujoco_env
from prefrl.reward.model import RewardModel
from prefrl.reward.trainer import RewardTrainer, Surf
from prefrl.runs.common import json_safe, prepare_run_dir, read_json
from prefrl.runs.config import TrainConfig
from prefrl.runs.plotting import plot_runs
from prefrl.sb3.callback import FeedbackConfig, LoopState, PreferenceCallback
from prefrl.sb3.envs import make_vec_env
from prefrl.sb3.evaluation import evaluate_policy, reward_model_report
from prefrl.sb3.exploration import StateEntropyPretraining
from prefrl.sb3.hyperparams import ZooHyperparams, load_zoo_hyperparams, parse_algo_kwargs
from prefrl.sb3.objectives import objective_wrapper
from prefrl.sb3.policies import ALGOS, normalization_stats, read_normalization, save_normalization, start_from
from prefrl.sb3.wrappers import LearnedRewardVecEnv, UncertaintyBonus

__all__ = ["Run", "TrainConfig", "resume", "train"]


# --------------------------------------------------------------------------- builders
@dataclass
class LearnerSettings:
    """The learner's constructor arguments, env count and normalization, after --hyperparams and --algo-kwargs."""

    algo_kwargs: dict[str, Any]
    n_envs: int
    normalize: dict[str, Any] | None
    env_kwargs: dict[str, Any]
    policy: str = "MlpPolicy"
    zoo: ZooHyperparams | None = None


PPO_ROLLOUT = 2048
"""Env steps of one PPO rollout, shared by its envs (n_steps = 2048 // n_envs unless set): SB3's default on one env,
so the env count changes the wall time, not how much PPO sees between updates."""


def ppo_n_steps(n_envs: int) -> int:
    """PPO's n_steps (per env) on `n_envs` envs: PPO_ROLLOUT shared among them."""
    return max(PPO_ROLLOUT // n_envs, 1)


def learner_settings(config: TrainConfig) -> LearnerSettings:
    """Zoo file first, then --algo-kwargs over it; without a Zoo file PPO normalizes obs and reward, SAC nothing,
    and PPO's rollout stays PPO_ROLLOUT env steps whatever the env count."""
    zoo = load_zoo_hyperparams(config.hyperparams, config.env_id) if config.hyperparams else None
    kwargs = {**(zoo.algo_kwargs if zoo else {}), **parse_algo_kwargs(config.algo_kwargs, env_id=config.env_id)}
    n_envs = config.n_envs or (zoo.n_envs if zoo and zoo.n_envs else 1)
    if config.algo == "ppo" and zoo is None and "n_steps" not in kwargs:
        kwargs["n_steps"] = ppo_n_steps(n_envs)
    if zoo is not None:
        normalize = zoo.normalize
        if normalize is not None and "gamma" in kwargs:
            normalize = {**normalize, "gamma": kwargs["gamma"]}  # returns are discounted as the learner discounts
    else:
        normalize = {"norm_obs": True, "norm_reward": True} if config.algo == "ppo" else None
    env_kwargs = {**(zoo.env_kwargs if zoo else {}), **config.env_kwargs}
    return LearnerSettings(kwargs, n_envs, normalize, env_kwargs, zoo.policy if zoo else "MlpPolicy", zoo)


def build_envs(config: TrainConfig, settings: LearnerSettings) -> tuple[VecEnv, VecEnv, FrameStore | None]:
    """Training envs, the evaluation envs, and (people labelling a non-MuJoCo env) the store of kept frames."""
    frames, n_envs, env_kwargs = None, settings.n_envs, settings.env_kwargs
    wrap = objective_wrapper(config.objective)
    if config.reward == "learned" and config.teacher == "human" and not is_mujoco_env(config.env_id):
        frames = FrameStore()  # not MuJoCo: clips come from render() frames kept while training
        venv = make_vec_env(config.env, n_envs, config.seed, wrap=lambda e: FrameRecorder(wrap(e), frames),
                            env_kwargs=env_kwargs, render_mode="rgb_array")
    else:
        venv = make_vec_env(config.env, n_envs, config.seed, wrap=wrap, env_kwargs=env_kwargs)
    if config.algo == "sac" and not isinstance(venv.action_space, gym_spaces.Box):
        raise ValueError(f"SAC needs a continuous (Box) action space, {config.env} has {venv.action_space}")
    # Evaluation episodes run side by side, one env per episode of a mid-run evaluation: a batched policy forward
    # costs about what a single one does, so five envs step 2.7x as fast as one (HalfCheetah-v5, here).
    eval_envs = min(config.history_episodes, config.eval_episodes)
    eval_venv = make_vec_env(config.env, eval_envs, config.seed + 10_000, wrap=wrap, env_kwargs=env_kwargs)
    return venv, eval_venv, frames


def build_teacher(config: TrainConfig, out: Path, frames: FrameStore | None) -> Teacher | None:
    """The synthetic teacher, people (`--teacher human`), or None for the true-reward baseline."""
    if config.reward != "learned":
        return None
    if config.teacher == "human":
        from prefrl.human.teacher import HumanTeacher

        return HumanTeacher(out, config.env_id, frames=frames)
    return make_teacher(config.teacher, **config.teacher_kwargs)


def restore_labels(config: TrainConfig, out: Path, teacher: Teacher | None,
                   resume: bool) -> tuple[ComparisonDataset, LoopState]:
    """The labels and loop state a resumed run had (the label store is the record for people's labels)."""
    if teacher is None or not resume:
        return ComparisonDataset(), LoopState()
    state = LoopState.load(out)
    if teacher.asynchronous:
        return teacher.dataset(), state
    dataset = ComparisonDataset()
    if (out / "comparisons.npz").exists():
        dataset = ComparisonDataset.load(out / "comparisons.npz")
        state.labels_asked = max(state.labels_asked, len(dataset))
    return dataset, state


def build_reward_model(config: TrainConfig, out: Path, venv: VecEnv, resume: bool) -> RewardModel | None:
    """The reward ensemble (loaded from a resumed run's reward_model.pt if there is one)."""
    if config.reward != "learned":
        return None
    if resume and (out / "reward_model.pt").exists():
        return RewardModel.load(out / "reward_model.pt", venv.observation_space, venv.action_space)
    return RewardModel(venv.observation_space, venv.action_space, ensemble_size=config.ensemble,
                       hidden=config.reward_hidden, inputs=config.inputs, seed=config.seed)


def frozen_reward(models: list[tuple[Path, float]], venv: VecEnv) -> Callable[..., np.ndarray]:
    """sum_i w_i * r_i(obs, act, next_obs) of saved reward models (each checked against the env's spaces)."""
    loaded = [(RewardModel.load(path, venv.observation_space, venv.action_space), w) for path, w in models]
    return lambda obs, acts, next_obs: sum(w * m.predict(obs, acts, next_obs) for m, w in loaded)


def build_learner(config: TrainConfig, settings: LearnerSettings, venv: VecNormalize | VecEnv, out: Path,
                  resume: bool) -> BaseAlgorithm:
    """The SB3 learner: a resumed run's policy.zip, or a new one with the settings' arguments."""
    policy_path = out / "policy.zip"
    if resume and policy_path.exists():
        try:
            return ALGOS[config.algo].load(policy_path, env=venv, tensorboard_log=str(out / "tb"))
        except (zipfile.BadZipFile, KeyError, EOFError) as exc:
            raise ValueError(f"policy checkpoint {policy_path} is corrupt: {exc}") from exc
    try:
        return ALGOS[config.algo](settings.policy, venv, seed=config.seed, verbose=0, tensorboard_log=str(out / "tb"),
                                  **settings.algo_kwargs)
    except TypeError as exc:  # an argument the learner does not take
        raise ValueError(f"{config.algo.upper()} refused the learner arguments {sorted(settings.algo_kwargs)}: {exc}") \
            from exc


def build_feedback(config: TrainConfig, out: Path, reward_model: RewardModel, teacher: Teacher,
                   dataset: ComparisonDataset, state: LoopState, demos: Demonstrations | None) -> PreferenceCallback:
    """The preference loop (and AIHF's demonstration term when the run has demonstrations)."""
    trainer = RewardTrainer(reward_model, seed=config.seed,
                            demos=demos if config.method in ("aihf", "irl") else None,
                            demo_weight=config.demo_weight, pref_weight=config.pref_weight,
                            demo_lr=config.demo_lr, demo_updates=config.demo_updates, demo_batch=config.demo_batch,
                            demo_weight_decay=config.demo_weight_decay, demo_l2=config.demo_l2,
                            renormalize_inputs=config.reward_renormalize, absorbing_lr=config.demo_absorbing_lr,
                            demo_zero=config.demo_zero, pref_fit=config.pref_fit, robust=config.robust,
                            rime_grace=config.rime_grace, label_noise=config.label_noise,
                            estimate_label_noise=config.estimate_label_noise,
                            holdout_fraction=config.reward_holdout,
                            surf=Surf(threshold=config.surf) if config.surf is not None else None)
    if state.fitted and trainer.renormalize_inputs != "every":
        trainer.inputs_fixed = True  # the saved model is standardized: `first` keeps it, `preserve` folds changes in
    feedback = FeedbackConfig(total_labels=config.labels, total_steps=config.steps, sampler=config.sampler,
                              segment_len=config.segment_len, num_queries=config.num_queries,
                              initial_fraction=config.labels_upfront,
                              pretrain_steps=config.pretrain_steps, min_labels=config.min_labels, seed=config.seed,
                              refit_every=config.refit_every, policy_recent=config.policy_recent,
                              query_window=config.query_window)
    callback = PreferenceCallback(reward_model, teacher, feedback, trainer=trainer, dataset=dataset, run_dir=out,
                                  state=state, prior=config.load_pref_data() if config.pref_data else None)
    if state.labels_asked and not state.fitted and len(dataset) and not trainer.uses_demos:
        trainer.fit(callback.training_pairs)  # labels survived a crash that the model did not
        state.fitted = True
    return callback


# --------------------------------------------------------------------------- callbacks of a run
class _Progress(BaseCallback):
    """A tqdm bar over env steps showing labels gathered and the latest true episode return."""

    def __init__(self, total: int, initial: int, pref: PreferenceCallback | None):
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.05)
        self.pref = pref

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_rollout_end(self) -> None:
        post = {}
        if self.pref is not None:
            post["labels"] = self.pref.labels_asked
        if self.model.ep_info_buffer:
            post["true_return"] = f"{np.mean([e['r'] for e in self.model.ep_info_buffer]):.1f}"
        self.bar.set_postfix(post, refresh=False)

    def _on_training_end(self) -> None:
        self.bar.close()


class _RunMonitor(BaseCallback):
    """Evaluates on the true reward at regular steps (the history) and checkpoints the run."""

    def __init__(self, run: Run, every: int):
        super().__init__()
        self.run, self.every = run, every
        self.next_eval = (run.model.num_timesteps // every + 1) * every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.every
            entry = self.run.evaluate(self.run.config.history_episodes)
            self.run.history.append(entry)
            self.logger.record("eval/true_return", entry["true_return"])
            if entry["learned_return"] is not None:
                self.logger.record("eval/learned_return", entry["learned_return"])
            self.run.checkpoint()
        return True


# --------------------------------------------------------------------------- the run
@dataclass
class RunState:
    """A run's progress outside the learner (state.json): evaluations so far and time spent."""

    history: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0

    @classmethod
    def load(cls, out: Path) -> RunState:
        """The progress saved in `out`; refuses a finished run."""
        if (out / "metrics.json").exists():
            raise ValueError(f"run {out} already finished (metrics.json exists): nothing to resume")
        raw = read_json(out / "state.json")
        return cls(raw.get("history", []), float(raw.get("wall_seconds", 0.0)))


class Run:
    """Builds (or resumes) everything a run needs; `train()` runs it to the end."""

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False):
        config.validate()
        out = Path(config.out)
        if not resume:
            prepare_run_dir(out, overwrite, resumable=True)
        # Small MLPs gain little from more threads, and two runs side by side oversubscribe the cores.
        torch.set_num_threads(config.threads)
        out.mkdir(parents=True, exist_ok=True)
        settings = learner_settings(config)
        write_json(out / "config.json", {**asdict(config), "resolved": {
            "n_envs": settings.n_envs, "normalize": settings.normalize, "env_kwargs": settings.env_kwargs,
            "zoo_hyperparams": None if settings.zoo is None else {"key": settings.zoo.source_key, **settings.zoo.raw}}})
        self.config, self.out, self.settings = config, out, settings
        self.state = RunState.load(out) if resume else RunState()
        self.started = time.perf_counter()

        venv, eval_venv, frames = build_envs(config, settings)
        self.teacher = build_teacher(config, out, frames)
        self.dataset, loop_state = restore_labels(config, out, self.teacher, resume)
        self.reward_model = build_reward_model(config, out, venv, resume)
        self.buffer = TrajectoryBuffer(settings.n_envs)
        norm = settings.normalize or {"norm_obs": False, "norm_reward": False}
        train_env, eval_env = LearnedRewardVecEnv(venv, self.reward_model, self.buffer), \
            LearnedRewardVecEnv(eval_venv, self.reward_model)
        if config.reward == "frozen":
            frozen = frozen_reward(config.frozen_rewards(), venv)
            train_env.set_reward_source(frozen)
            eval_env.set_reward_source(frozen)
        self.venv = VecNormalize(train_env, **norm)
        self.eval_env = VecNormalize(eval_env, training=False, norm_obs=self.venv.norm_obs, norm_reward=False)
        self.model = build_learner(config, settings, self.venv, out, resume)
        if config.rune:  # a resumed run's bonus has faded as far as its steps say
            train_env.set_exploration_bonus(UncertaintyBonus(config.rune, config.rune_decay, self.model.num_timesteps))
        if config.init_policy is not None:
            start_from(self.model, self.venv, Path(config.init_policy), load_policy=not resume)
        if resume:
            self._load_normalization()
        self.demos = config.load_demos() if config.demos else None
        self.pref = None
        if self.reward_model is not None:
            self.pref = build_feedback(config, out, self.reward_model, self.teacher, self.dataset, loop_state,
                                       self.demos)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Evaluations during the run."""
        return self.state.history

    # ---------------------------------------------------------------- state
    def _load_normalization(self) -> None:
        path = self.out / "vecnormalize.npz"
        if not path.exists():
            return
        saved = read_normalization(path)
        for name, rms in normalization_stats(self.venv).items():
            if name not in saved:
                raise ValueError(f"{path} is corrupt: it holds no {name} statistics")
            rms.mean, rms.var, rms.count = saved[name].mean, saved[name].var, saved[name].count

    def env_steps(self) -> int:
        """Env steps so far, the random warm-up included."""
        warm = self.pref.state.warmup_steps if self.pref is not None else 0
        return int(self.model.num_timesteps + warm)

    def wall_seconds(self) -> float:
        """Seconds this run has taken, over every resume."""
        return self.state.wall_seconds + time.perf_counter() - self.started

    def checkpoint(self) -> None:
        """Save the policy, normalization statistics and progress (labels are saved as they arrive)."""
        atomic_write(self.out / "policy.zip", self.model.save)
        save_normalization(self.out / "vecnormalize.npz", normalization_stats(self.venv))
        write_json(self.out / "state.json", {
            "num_timesteps": int(self.model.num_timesteps), "warmup_steps": self.env_steps() - self.model.num_timesteps,
            "history": self.history, "wall_seconds": self.wall_seconds(),
        })

    def evaluate(self, episodes: int) -> dict[str, Any]:
        """True (and learned) return of the current policy, deterministic actions."""
        res = evaluate_policy(self.model, self._synced_eval_env(), episodes)
        return {"env_steps": self.env_steps(), "true_return": res["true_return"], "learned_return": res["learned_return"]}

    def _synced_eval_env(self) -> VecEnv:
        if self.eval_env.norm_obs:
            self.eval_env.obs_rms = self.venv.obs_rms.copy()
        return self.eval_env

    # ---------------------------------------------------------------- train
    def train(self) -> dict[str, Any]:
        """Run to the configured number of steps, then evaluate, save and plot; returns metrics."""
        cfg = self.config
        callbacks: list[BaseCallback] = [self.pref] if self.pref is not None else []
        if cfg.reward == "true" and cfg.pretrain_steps:
            callbacks.append(StateEntropyPretraining(cfg.pretrain_steps))
        callbacks.append(_RunMonitor(self, max(cfg.steps // cfg.evals, 1)))
        if cfg.progress:
            callbacks.append(_Progress(cfg.steps, self.model.num_timesteps, self.pref))
        server = None
        if cfg.serve:
            from prefrl.human.server import LabelServer

            server = LabelServer(self.out, port=cfg.port).start()
            print(f"prefrl: label the clips at {server.url}", file=sys.stderr, flush=True)
        try:
            remaining = cfg.steps - self.model.num_timesteps
            if remaining > 0:
                self.model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False,
                                 tb_log_name="run")
        finally:
            if server is not None:
                server.shutdown()
            if self.teacher is not None and self.teacher.asynchronous:
                self.teacher.close()
        self.checkpoint()
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        """Final evaluation, metrics.json, the reward model and the curves."""
        cfg = self.config
        final = evaluate_policy(self.model, self._synced_eval_env(), cfg.eval_episodes)
        metrics: dict[str, Any] = {
            "env": cfg.env, "algo": cfg.algo, "seed": cfg.seed, "reward": cfg.reward,
            "teacher": cfg.teacher if cfg.reward == "learned" else None, "objective": cfg.objective,
            "init_policy": cfg.init_policy, "reward_from": cfg.reward_from, "reward_weights": cfg.reward_weights,
            "sampler": cfg.sampler if cfg.reward == "learned" else None,
            "method": cfg.method, "demos": len(self.demos) if self.demos else 0,
            "demo_return": float(self.demos.returns().mean()) if self.demos else None,
            "demo_weight": cfg.demo_weight if cfg.method in ("aihf", "irl") else None,
            "pref_weight": cfg.pref_weight if cfg.method in ("aihf", "preference") else None,
            "env_steps": self.env_steps(), "labels": self.pref.labels_asked if self.pref else 0,
            "labels_answered": len(self.pref.dataset) if self.pref else 0, "true_return": final["true_return"],
            "true_return_std": final["true_return_std"], "learned_return": final["learned_return"],
            "term_returns": final["term_returns"],
            "eval_episodes": cfg.eval_episodes, "pref_accuracy_heldout": None, "reward_correlation": None,
        }
        if self.reward_model is not None and self.buffer.can_sample(cfg.segment_len):
            report = reward_model_report(self.reward_model, self.buffer, cfg.segment_len, np.random.default_rng(cfg.seed + 1))
            metrics.update(report)
        self.history.append({"env_steps": self.env_steps(), "true_return": final["true_return"],
                             "learned_return": final["learned_return"]})
        metrics["wall_seconds"] = self.wall_seconds()
        metrics["history"] = self.history
        if self.reward_model is not None:
            self.reward_model.save(self.out / "reward_model.pt")
        write_json(self.out / "metrics.json", json_safe(metrics))
        plot_runs([self.out], self.out / "curves.png")
        return metrics


def train(config: TrainConfig, overwrite: bool = False) -> dict[str, Any]:
    """Train a new run; returns the metrics written to metrics.json."""
    return Run(config, overwrite=overwrite).train()


def resume(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Continue a run that was stopped, keeping every label it had gathered."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"cannot resume {run_dir}: not a prefrl run directory (no config.json)")
    config = TrainConfig.from_json(run_dir / "config.json")
    config.out, config.progress = str(run_dir), progress
    return Run(config, resume=True).train()
