"""The learning loop as an SB3 callback: users keep `model.learn(...)`, PPO and SAC alike.

PreferenceCallback owns the label schedule, samples segments from what the wrapper recorded,
asks the teacher, stores the answers durably, refits the reward ensemble and relabels SAC's
replay buffer. For off-policy learners it can first run PEBBLE's unsupervised pre-training
(a state-entropy reward) so the first queries compare varied behaviour.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from gymnasium import spaces as gym_spaces

from prefrl.core.data import ComparisonDataset, Segments, TrajectoryBuffer, write_json
from prefrl.reward.model import RewardModel
from prefrl.reward.trainer import RewardTrainer
from prefrl.feedback.samplers import SAMPLERS, select_queries
from prefrl.core.spaces import flatten_batch
from prefrl.core.validation import check_choice, check_positive_int
from prefrl.sb3.wrappers import LearnedRewardVecEnv


class Teacher(Protocol):
    """Anything that labels pairs of segments: label = P(a preferred), NaN = skipped."""

    name: str

    def label(self, rewards_a, rewards_b, mask_a=None, mask_b=None, *, rng, scale=None) -> np.ndarray: ...


@dataclass(frozen=True)
class LabelSchedule:
    """How many labels should have been asked by env step t.

    A fraction is spent up front (on random-policy data); the rest at a rate proportional to
    1/(t + c) (Christiano et al.: 2e6/(T + 2e6)), normalized so the whole budget is spent by
    `horizon_fraction` of the run, after which labels barely change the final policy.
    """

    total: int
    total_steps: int
    initial_fraction: float = 0.25
    decay_steps: float | None = None
    horizon_fraction: float = 0.75

    def __post_init__(self) -> None:
        check_positive_int("label budget", self.total)
        check_positive_int("total_steps", self.total_steps)
        if not 0.0 <= self.initial_fraction <= 1.0:
            raise ValueError(f"initial_fraction must be in [0, 1], got {self.initial_fraction}")

    @property
    def initial(self) -> int:
        """Labels asked before any policy learning."""
        return max(1, int(round(self.total * self.initial_fraction)))

    def due(self, step: int) -> int:
        """Labels that should have been asked by env step `step`."""
        c = self.decay_steps or self.total_steps / 5
        end = max(self.horizon_fraction * self.total_steps, 1.0)
        frac = min(1.0, math.log1p(max(step, 0) / c) / math.log1p(end / c))
        return min(self.total, self.initial + int((self.total - self.initial) * frac))


def find_wrapper(venv: VecEnv, cls: type) -> Any:
    """The first wrapper of type `cls` in a stack of VecEnvWrappers."""
    env = venv
    while True:
        if isinstance(env, cls):
            return env
        if not isinstance(env, VecEnvWrapper):
            raise ValueError(f"the training env has no {cls.__name__} in its wrapper stack ({type(venv).__name__})")
        env = env.venv


class StateEntropyReward:
    """PEBBLE's intrinsic reward: distance from next_obs to its k-th nearest recorded state, over its running std."""

    def __init__(self, buffer: TrajectoryBuffer, k: int = 5, reference_size: int = 10_000):
        self.buffer, self.k, self.reference_size = buffer, k, reference_size
        self._count, self._mean, self._m2 = 0, 0.0, 0.0
        self._ref_episodes, self._ref = -1, None

    def _reference(self) -> torch.Tensor | None:
        """Recent recorded states, rebuilt only when an episode has closed since the last call."""
        if self._ref_episodes != len(self.buffer.episodes):
            self._ref_episodes = len(self.buffer.episodes)
            eps = list(self.buffer.iter_recent(self.reference_size))
            self._ref = torch.as_tensor(np.concatenate([e.next_obs for e in eps])[-self.reference_size :]) if eps else None
        return self._ref

    def __call__(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        ref = self._reference()
        if ref is None:
            return np.zeros(len(next_obs))
        k = min(self.k, len(ref))
        dist = torch.cdist(torch.as_tensor(next_obs, dtype=torch.float32), ref).kthvalue(k, dim=1).values.numpy()
        for d in dist:  # Welford running variance, so the scale stays stable as states spread out
            self._count += 1
            delta = d - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (d - self._mean)
        std = math.sqrt(self._m2 / self._count) if self._count > 1 else 1.0
        return dist / max(std, 1e-8)


class PreferenceCallback(BaseCallback):
    """Asks for labels on schedule, refits the reward ensemble, relabels off-policy replay buffers.

    The training env must contain a LearnedRewardVecEnv sharing `reward_model` and recording
    into a TrajectoryBuffer. Every answer is saved to `run_dir/comparisons.npz` the moment it
    arrives, before the reward model is refitted.

    A teacher with `asynchronous = True` (people, through `prefrl.human.HumanTeacher`) gets the
    pairs `submit`ted instead; the loop keeps training on the labels it has, picks new answers up
    at most every `poll_seconds`, and waits for `min_labels` answers before the first reward update.

    With a trainer that uses demonstrations (AIHF, or IRL with `total_labels=0`) the reward is
    also refitted every `refit_every` env steps against segments of the newest `policy_recent`
    transitions, since the demonstration term compares the demos with the current policy.
    """

    def __init__(
        self,
        reward_model: RewardModel,
        teacher: Teacher,
        *,
        total_labels: int,
        total_steps: int,
        sampler: str = "uniform",
        segment_len: int = 50,
        initial_fraction: float = 0.25,
        num_queries: int = 20,
        candidate_factor: int = 10,
        warmup_steps: int | None = None,
        pretrain_steps: int = 0,
        refit_every: int | None = None,
        policy_recent: int = 10_000,
        dataset: ComparisonDataset | None = None,
        trainer: RewardTrainer | None = None,
        run_dir: str | Path | None = None,
        labels_asked: int = 0,
        fitted: bool = False,
        min_labels: int = 0,
        poll_seconds: float = 1.0,
        seed: int = 0,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        check_choice("sampler", sampler, SAMPLERS)
        for name, value in (("segment_len", segment_len), ("num_queries", num_queries), ("candidate_factor", candidate_factor)):
            check_positive_int(name, value)
        self.reward_model, self.teacher = reward_model, teacher
        self.trainer = trainer or RewardTrainer(reward_model, seed=seed)
        if total_labels == 0 and not self.trainer.uses_demos:
            raise ValueError("total_labels is 0 and the trainer has no demonstrations: nothing to learn the reward from")
        self.schedule = LabelSchedule(total_labels, total_steps, initial_fraction) if total_labels else None
        self.sampler, self.segment_len, self.candidate_factor = sampler, segment_len, candidate_factor
        self.total_steps = total_steps
        self.query_every = max(1, int(LabelSchedule.horizon_fraction * total_steps / num_queries))
        self.refit_every = refit_every or max(1000, total_steps // 50)
        check_positive_int("refit_every", self.refit_every)
        check_positive_int("policy_recent", policy_recent)
        self.policy_recent = policy_recent
        self.warmup_steps = warmup_steps
        self.pretrain_steps = pretrain_steps
        self.dataset = dataset if dataset is not None else ComparisonDataset()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.labels_asked, self.fitted = labels_asked, fitted
        self.asynchronous = bool(getattr(teacher, "asynchronous", False))
        if min_labels < 0 or (min_labels and not self.asynchronous):
            raise ValueError(f"min_labels={min_labels}: expected 0, or a positive number with an asynchronous (human) teacher")
        self.min_labels, self.poll_seconds, self._last_poll = min_labels, poll_seconds, -math.inf
        self.rng = np.random.default_rng(seed)
        self.policy_rng = np.random.default_rng([seed, 2])  # the IRL term's policy segments: a stream of their own
        self.seed = seed
        self.last_query_step = self.last_fit_step = -math.inf
        self.first_query_step = 0
        self.warmup_done = 0
        self.fit_reports: list[dict[str, Any]] = []

    # ------------------------------------------------------------ SB3 hooks
    def _init_callback(self) -> None:
        self.wrapper: LearnedRewardVecEnv = find_wrapper(self.training_env, LearnedRewardVecEnv)
        if self.wrapper.reward_model is not self.reward_model:
            raise ValueError("the LearnedRewardVecEnv in the training env uses a different reward model than the callback")
        if self.wrapper.buffer is None:
            raise ValueError("the LearnedRewardVecEnv must record into a TrajectoryBuffer for the callback to sample segments")
        self.buffer = self.wrapper.buffer
        rb = getattr(self.model, "replay_buffer", None)
        if rb is not None and getattr(rb, "optimize_memory_usage", False):
            raise ValueError("replay buffers with optimize_memory_usage=True cannot be relabelled; set it to False")

    def _on_training_start(self) -> None:
        if self.labels_asked > 0 or self.fitted:  # resumed run: the reward model is already trained
            return
        if isinstance(self.model, OffPolicyAlgorithm):
            # SAC: random steps for learning_starts, then optional PEBBLE pre-training, then the first labels.
            self.first_query_step = self.model.num_timesteps + max(self.model.learning_starts, 1) + self.pretrain_steps
            if self.pretrain_steps > 0:
                self.wrapper.set_reward_source(StateEntropyReward(self.buffer))
        else:
            self._warmup()
            if not self.buffer.can_sample(self.segment_len):
                return  # the first labels / fit come at the first rollout end that can
            if self.schedule is not None:
                self._query(self.schedule.initial)
                self._wait_for_labels()
            else:
                self._fit()

    def _on_step(self) -> bool:
        return True

    def _labels_due(self, t: int) -> int:
        """How many labels to ask for now (0 if none)."""
        if self.schedule is None or self.labels_asked >= self.schedule.total:
            return 0
        if self.labels_asked == 0:
            return self.schedule.initial
        if t - self.last_query_step < self.query_every:
            return 0
        return self.schedule.due(t) - self.labels_asked

    def _on_rollout_end(self) -> None:
        t = self.num_timesteps
        if self.asynchronous and time.monotonic() - self._last_poll >= self.poll_seconds:
            self._collect()
        if t < self.first_query_step or not self.buffer.can_sample(self.segment_len):
            return  # still warming up, or no finished episode long enough yet (e.g. just after a resume)
        n = self._labels_due(t)
        if n > 0:
            self._query(n)
            self._wait_for_labels()
        elif self.trainer.uses_demos and t - self.last_fit_step >= self.refit_every:
            self._fit()
        else:
            return
        self.wrapper.set_reward_source("learned")  # ends PEBBLE pre-training, if any

    # -------------------------------------------------------------- the loop
    def _warmup(self) -> None:
        """Random actions (on-policy learners) so the first labels compare varied behaviour."""
        env = self.training_env
        steps = self.warmup_steps
        if steps is None:
            steps = int(np.clip(0.02 * self.total_steps, 20 * self.segment_len, 10_000))
        space = env.action_space
        space.seed(self.seed)
        for _ in range(math.ceil(steps / env.num_envs)):
            env.step(np.stack([space.sample() for _ in range(env.num_envs)]))
            self.warmup_done += env.num_envs
        # SB3 keeps the observation it will act on next: give it a fresh one.
        self.model._last_obs = env.reset()
        self.model._last_episode_starts = np.ones(env.num_envs, dtype=bool)

    def pair_features(self, seg_a: Segments, seg_b: Segments) -> np.ndarray:
        """What k-center compares: both segments' observations, flattened."""
        return np.concatenate([seg_a.obs.reshape(len(seg_a), -1), seg_b.obs.reshape(len(seg_b), -1)], axis=1)

    def _query(self, n: int) -> None:
        """Ask the teacher about n pairs, store the answers, refit the reward, relabel replay data."""
        n = min(n, self.schedule.total - self.labels_asked)
        if n <= 0:
            return
        m = n if self.sampler == "uniform" else n * self.candidate_factor
        # a teacher that can only show recent steps (clips from kept render() frames) says how recent
        segs = self.buffer.sample_segments(2 * m, self.segment_len, self.rng,
                                           recent=getattr(self.teacher, "recent_transitions", None))
        seg_a, seg_b = segs[:m], segs[m:]
        kwargs: dict[str, Any] = {}
        if self.sampler != "uniform":
            kwargs["member_returns_a"] = self.reward_model.segment_member_returns(seg_a)
            kwargs["member_returns_b"] = self.reward_model.segment_member_returns(seg_b)
        if "kcenter" in self.sampler:
            kwargs["features"] = self.pair_features(seg_a, seg_b)
            labelled = self.pair_features(self.dataset.segments_a, self.dataset.segments_b) if len(self.dataset) else None
            kwargs["labelled_features"] = labelled
        idx = select_queries(self.sampler, n, rng=self.rng, **kwargs) if self.sampler != "uniform" else np.arange(n)
        seg_a, seg_b = seg_a[idx], seg_b[idx]
        if self.asynchronous:  # people answer later; _collect picks the answers up
            self.teacher.submit(seg_a, seg_b, int(self.num_timesteps))
            self.labels_asked += n
            self.last_query_step = self.num_timesteps
            if self.run_dir is not None:
                self._write_state(self.run_dir)
            return
        scale = abs(self.buffer.mean_step_reward()) * self.segment_len
        labels = self.teacher.label(seg_a.true_rewards, seg_b.true_rewards, seg_a.mask, seg_b.mask, rng=self.rng, scale=scale)
        kept = self.dataset.add(seg_a, seg_b, labels, self.teacher.name, int(self.num_timesteps))
        self.labels_asked += n
        self.last_query_step = self.num_timesteps
        if self.run_dir is not None:  # durable before anything else can fail
            self.dataset.save(self.run_dir / "comparisons.npz")
            self._write_state(self.run_dir)
        if kept == 0:
            # e.g. B-Pref's skip teacher on a task whose returns are all negative skips every query
            warnings.warn(f"teacher {self.teacher.name!r} answered none of {n} queries at step {self.num_timesteps} "
                          f"({len(self.dataset)} labels so far)", stacklevel=2)
        self._fit(new_labels=kept)

    def _collect(self) -> None:
        """Take in the answers people gave since the last look; refit if there are new ones."""
        self._last_poll = time.monotonic()
        if not self.teacher.changed():
            return
        before = len(self.dataset)
        self.dataset = self.teacher.dataset()
        if self.run_dir is not None:
            self.dataset.save(self.run_dir / "comparisons.npz")  # an export: the label store is the record
        if len(self.dataset) >= max(self.min_labels, 1):
            self._fit(new_labels=len(self.dataset) - before)

    def _wait_for_labels(self) -> None:
        """Block until `min_labels` answers exist (only before the first reward update)."""
        if not self.asynchronous or self.fitted or self.min_labels == 0:
            return
        said = -math.inf
        while True:
            self._collect()
            if self.fitted:
                return
            if self.teacher.outstanding() == 0:  # everything asked is answered (or skipped), still too few
                more = min(self.min_labels - len(self.dataset), self.schedule.total - self.labels_asked)
                if more <= 0:
                    warnings.warn(f"the label budget is spent with {len(self.dataset)} usable answers, fewer than "
                                  f"min_labels={self.min_labels}: training goes on with them", stacklevel=2)
                    if len(self.dataset):
                        self._fit()
                    return
                self._query(more)  # bring later queries forward rather than wait for nothing
            if time.monotonic() - said > 30:
                print(f"prefrl: waiting for {self.min_labels} labels before the first reward update "
                      f"({len(self.dataset)} so far); answer in `prefrl label serve`", file=sys.stderr, flush=True)
                said = time.monotonic()
            time.sleep(self.poll_seconds)

    def _fit(self, new_labels: int = 0) -> None:
        """Refit the reward on every label (and the demonstrations), relabel replay data, save."""
        if len(self.dataset) == 0 and not self.trainer.uses_demos:
            return
        policy_segments = None
        if self.trainer.uses_demos:
            policy_segments = self.buffer.sample_segments(self.trainer.demo_pool, self.segment_len, self.policy_rng,
                                                          recent=self.policy_recent)
        report = self.trainer.fit(self.dataset, policy_segments)
        self.fitted, self.last_fit_step = True, self.num_timesteps
        self.relabel_replay_buffer()
        self.fit_reports.append({"env_steps": int(self.num_timesteps), **report.__dict__})
        for key, value in (
            ("labels_asked", self.labels_asked),
            ("labels_kept", len(self.dataset)),
            ("labels_new", new_labels),
            ("reward_train_loss", report.train_loss),
            ("reward_val_loss", report.val_loss),
            ("reward_val_accuracy", report.val_accuracy),
            ("reward_epochs", report.epochs),
            ("reward_weight_decay", report.weight_decay),
            ("reward_demo_gap", report.demo_gap),
        ):
            self.logger.record(f"pref/{key}", value)
        if self.run_dir is not None:
            self.save_state(self.run_dir)

    def save_state(self, run_dir: Path) -> None:
        """Reward model + loop state (the labels are saved as they arrive)."""
        self.reward_model.save(run_dir / "reward_model.pt")
        self._write_state(run_dir)

    def _write_state(self, run_dir: Path) -> None:
        write_json(
            run_dir / "pref_state.json",
            {
                "labels_asked": self.labels_asked,
                "weight_decay": self.trainer.weight_decay,
                "warmup_steps": self.warmup_done,
                "fit_reports": self.fit_reports,
            },
        )

    @torch.no_grad()
    def relabel_replay_buffer(self) -> None:
        """Recompute every stored reward of an off-policy learner with the current reward model."""
        rb = getattr(self.model, "replay_buffer", None)
        if rb is None:
            return
        size = rb.buffer_size if rb.full else rb.pos
        if size == 0:
            return
        obs_space, act_space = self.wrapper.observation_space, self.wrapper.action_space
        n_envs = rb.n_envs

        def flat(store, space):
            if isinstance(store, dict):
                return flatten_batch(space, {k: v[:size].reshape(size * n_envs, *v.shape[2:]) for k, v in store.items()})
            return flatten_batch(space, store[:size].reshape(size * n_envs, *store.shape[2:]))

        obs, next_obs = flat(rb.observations, obs_space), flat(rb.next_observations, obs_space)
        acts = rb.actions[:size].reshape(size * n_envs, *rb.actions.shape[2:])
        if isinstance(act_space, gym_spaces.Box):  # SAC stores actions squashed to [-1, 1]
            acts = self.model.policy.unscale_action(acts)
        acts = flatten_batch(act_space, acts)  # e.g. DQN stores Discrete actions as indices
        rewards = np.concatenate(
            [
                self.reward_model.predict(obs[s : s + 65536], acts[s : s + 65536], next_obs[s : s + 65536])
                for s in range(0, len(obs), 65536)
            ]
        )
        rb.rewards[:size] = rewards.reshape(size, n_envs).astype(rb.rewards.dtype)
