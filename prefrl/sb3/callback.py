"""The learning loop as an SB3 callback: users keep `model.learn(...)`, PPO and SAC alike.

PreferenceCallback composes the parts of the loop, each in its own module: the label schedule
(`prefrl.feedback.schedule`), query selection and teacher I/O (`prefrl.feedback.queries`),
reward refits (`prefrl.reward.trainer`), replay relabelling (`prefrl.sb3.relabel`) and PEBBLE's
pre-training reward (`prefrl.sb3.exploration`). What it owns is *when* each happens.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from prefrl.core.data import ComparisonDataset, Segments, write_json
from prefrl.core.validation import check_choice, check_positive_int
from prefrl.feedback.base import Teacher
from prefrl.feedback.queries import LabelCollector, QuerySelector
from prefrl.feedback.samplers import SAMPLERS
from prefrl.feedback.schedule import LabelSchedule
from prefrl.reward.model import RewardModel
from prefrl.reward.trainer import RewardTrainer
from prefrl.sb3.exploration import StateEntropyReward, random_warmup, switch_reward
from prefrl.sb3.relabel import check_relabellable, relabel_replay_buffer
from prefrl.sb3.wrappers import LearnedRewardVecEnv, find_wrapper

__all__ = ["FeedbackConfig", "LabelSchedule", "LoopState", "PreferenceCallback", "StateEntropyReward"]

STATE_FILE = "pref_state.json"


@dataclass
class FeedbackConfig:
    """How the loop asks for feedback and refits the reward."""

    total_labels: int
    """Label budget (0 with a trainer that has demonstrations: demonstration-only IRL)."""
    total_steps: int
    """Env steps the learner will take (the schedule spreads the labels over them)."""
    sampler: str = "uniform"
    """Query selection: uniform, disagreement, entropy, kcenter, disagreement_kcenter, entropy_kcenter."""
    segment_len: int = 50
    """Steps per compared segment."""
    initial_fraction: float = 0.25
    """Share of the budget asked up front, on random-policy data."""
    num_queries: int = 20
    """Batches the rest of the budget is asked in."""
    candidate_factor: int = 10
    """Candidate pairs drawn per pair kept by a non-uniform sampler."""
    query_window: int = 5000
    """The policy_aligned sampler's queries come from this many newest transitions (the current policy's)."""
    warmup_steps: int | None = None
    """Random-action steps before an on-policy learner starts (default: 2% of the run, 20 segments to 10k)."""
    pretrain_steps: int = 0
    """PEBBLE state-entropy pre-training steps before the first labels (on-policy learners: after the warm-up)."""
    refit_every: int = 2000
    """With demonstrations: refit every this many env steps (the IRL term follows the policy)."""
    policy_recent: int = 10_000
    """With demonstrations: the IRL term's policy segments come from this many newest transitions."""
    min_labels: int = 0
    """A teacher that answers later: wait for this many answers before the first reward update."""
    poll_seconds: float = 1.0
    """A teacher that answers later: look for new answers at most this often."""
    seed: int = 0
    """Seed of segment sampling, query selection and the teacher's randomness."""

    def validate(self) -> None:
        """Refuse values that cannot work, naming them."""
        check_choice("sampler", self.sampler, SAMPLERS)
        for name in ("total_steps", "segment_len", "num_queries", "candidate_factor", "policy_recent", "refit_every",
                     "query_window"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.total_labels, bool) or not isinstance(self.total_labels, int) or self.total_labels < 0:
            raise ValueError(f"total_labels must be an integer >= 0, got {self.total_labels!r}")
        if self.min_labels < 0:
            raise ValueError(f"min_labels={self.min_labels}: expected a number >= 0")


@dataclass
class LoopState:
    """Where the loop stands: what a resumed run restores from `pref_state.json`."""

    labels_asked: int = 0
    fitted: bool = False
    warmup_steps: int = 0
    trainer: dict[str, Any] = field(default_factory=dict)  # RewardTrainer.resume_state(): L2 weight, RIME's statistics
    fit_reports: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: str | Path) -> LoopState:
        """The state saved in `run_dir` (a fresh one if there is none)."""
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc
        fitted = (Path(run_dir) / "reward_model.pt").exists()
        trainer = raw.get("trainer", {"weight_decay": raw.get("weight_decay")})  # a state saved before it had more
        return cls(int(raw.get("labels_asked", 0)), fitted, int(raw.get("warmup_steps", 0)), trainer,
                   list(raw.get("fit_reports", [])))

    def save(self, run_dir: Path) -> None:
        """Write `pref_state.json` atomically."""
        write_json(run_dir / STATE_FILE, {k: v for k, v in asdict(self).items() if k != "fitted"})


class PreferenceCallback(BaseCallback):
    """Asks for labels on schedule, refits the reward ensemble, relabels off-policy replay buffers.

    The training env must contain a LearnedRewardVecEnv sharing `reward_model` and recording
    into a TrajectoryBuffer. Every answer is saved to `run_dir/comparisons.npz` the moment it
    arrives, before the reward model is refitted.

    :param reward_model: the ensemble the LearnedRewardVecEnv uses; refitted in place
    :param teacher: a `prefrl.feedback.base.Teacher`; an asynchronous one (people) gets pairs
        submitted, and the loop keeps training on the labels it has while answers come in
    :param config: every knob of the loop (`FeedbackConfig`); or pass its fields as keywords
    :param trainer: fits the reward (default: Bradley-Terry `RewardTrainer`); a trainer with
        demonstrations (AIHF, or IRL with `total_labels=0`) is also refitted every
        `refit_every` env steps, since its IRL term compares the demos with the current policy
    :param dataset: labels gathered before (a resumed run)
    :param prior: an offline preference set (`--pref-data`): fitted beside every label the run gathers, never
        counted against the budget nor written to `comparisons.npz`
    :param run_dir: where labels, the reward model and the loop state are written
    :param state: the loop state of a resumed run (`LoopState.load(run_dir)`)
    """

    def __init__(self, reward_model: RewardModel, teacher: Teacher, config: FeedbackConfig | None = None, *,
                 trainer: RewardTrainer | None = None, dataset: ComparisonDataset | None = None,
                 run_dir: str | Path | None = None, state: LoopState | None = None,
                 prior: ComparisonDataset | None = None, verbose: int = 0, **options: Any):
        super().__init__(verbose)
        if config is not None and options:
            raise TypeError(f"pass either config or its fields as keywords, not both (got {sorted(options)})")
        self.config = config = config if config is not None else FeedbackConfig(**options)
        config.validate()
        self.reward_model = reward_model
        self.trainer = trainer or RewardTrainer(reward_model, seed=config.seed)
        self.prior = prior if prior is not None and len(prior) else None
        if config.total_labels == 0 and not self.trainer.uses_demos and self.prior is None:
            raise ValueError("total_labels is 0, and neither demonstrations nor an offline preference set was given: "
                             "nothing to learn the reward from")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        rng = np.random.default_rng(config.seed)  # one stream for segments, selection and teacher, in that order
        self.schedule = (LabelSchedule(config.total_labels, config.total_steps, config.initial_fraction,
                                       num_queries=config.num_queries) if config.total_labels else None)
        self.selector = QuerySelector(reward_model, sampler=config.sampler, segment_len=config.segment_len,
                                      candidate_factor=config.candidate_factor, window=config.query_window, rng=rng)
        self.labels = LabelCollector(teacher, dataset, self.run_dir / "comparisons.npz" if self.run_dir else None,
                                     rng=rng)
        if config.min_labels and not teacher.asynchronous:
            raise ValueError(f"min_labels={config.min_labels}: expected 0, or a positive number with an "
                             f"asynchronous (human) teacher")
        self.state = state if state is not None else LoopState()
        self.trainer.restore(self.state.trainer)
        self.policy_rng = np.random.default_rng([config.seed, 2])  # the IRL term's policy segments: their own stream
        self.surf_rng = np.random.default_rng([config.seed, 3])  # SURF's unlabelled pairs: theirs
        self.last_query_step = self.last_fit_step = -math.inf
        self.first_query_step = 0
        self._last_poll = -math.inf

    # ---------------------------------------------------------- read-outs
    @property
    def teacher(self) -> Teacher:
        """Who answers."""
        return self.labels.teacher

    @property
    def dataset(self) -> ComparisonDataset:
        """Every label so far."""
        return self.labels.dataset

    @property
    def training_pairs(self) -> ComparisonDataset:
        """What a reward fit learns from: the offline set (if any), then every label so far."""
        if self.prior is None:
            return self.labels.dataset
        return ComparisonDataset.concatenate([self.prior, self.labels.dataset])

    @property
    def labels_asked(self) -> int:
        """Queries asked so far (answered or not)."""
        return self.state.labels_asked

    # ------------------------------------------------------------ SB3 hooks
    def _init_callback(self) -> None:
        self.wrapper: LearnedRewardVecEnv = find_wrapper(self.training_env, LearnedRewardVecEnv)
        if self.wrapper.reward_model is not self.reward_model:
            raise ValueError("the LearnedRewardVecEnv in the training env uses a different reward model than the callback")
        if self.wrapper.buffer is None:
            raise ValueError("the LearnedRewardVecEnv must record into a TrajectoryBuffer for the callback to sample segments")
        self.buffer = self.wrapper.buffer
        check_relabellable(self.model)

    def _on_training_start(self) -> None:
        if self.state.labels_asked > 0 or self.state.fitted:  # resumed run: the reward model is already trained
            return
        if isinstance(self.model, OffPolicyAlgorithm):
            # SAC: random steps for learning_starts, then optional PEBBLE pre-training, then the first labels.
            self.first_query_step = self.model.num_timesteps + max(self.model.learning_starts, 1)
            if self.config.pretrain_steps > 0:
                self._start_pretraining()
            return
        cfg = self.config
        steps = cfg.warmup_steps
        if steps is None:
            steps = int(np.clip(0.02 * cfg.total_steps, 20 * cfg.segment_len, 10_000))
        if cfg.pretrain_steps > 0:  # started before the warm-up, whose states are the reward's first reference
            self.first_query_step = self.model.num_timesteps
            self._start_pretraining()
        self.state.warmup_steps += random_warmup(self.model, steps, cfg.seed)
        if cfg.pretrain_steps > 0 or not self.buffer.can_sample(self.config.segment_len):
            return  # the first labels / fit come at the first rollout end that can (after pre-training, if any)
        if self.schedule is not None:
            self._query(self.schedule.initial)
            self._wait_for_labels()
        else:
            self._fit()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        t = self.num_timesteps
        if self.labels.asynchronous and time.monotonic() - self._last_poll >= self.config.poll_seconds:
            self._collect()
        if t < self.first_query_step or not self.buffer.can_sample(self.config.segment_len):
            return  # still warming up, or no finished episode long enough yet (e.g. just after a resume)
        n = self.schedule.to_ask(t, self.state.labels_asked, self.last_query_step) if self.schedule else 0
        if n > 0:
            self._query(n)
            self._wait_for_labels()
        elif self.trainer.uses_demos and t - self.last_fit_step >= self.config.refit_every:
            self._fit()
        else:
            return
        self._end_pretraining()

    def _start_pretraining(self) -> None:
        """PEBBLE: the state-entropy reward until the first labels, which wait `pretrain_steps` more env steps."""
        self.first_query_step += self.config.pretrain_steps
        self.wrapper.set_reward_source(StateEntropyReward(self.buffer))

    def _end_pretraining(self) -> None:
        """From PEBBLE's state-entropy reward, if it is still on, to the learned reward. Reward normalization's
        statistics of the pre-training reward are dropped rather than left to scale the learned one."""
        switch_reward(self.training_env, self.wrapper, "learned")

    # -------------------------------------------------------------- the loop
    def _query(self, n: int) -> None:
        """Ask about n pairs; with a teacher that answers at once, refit on the answers."""
        n = min(n, self.schedule.total - self.state.labels_asked)
        if n <= 0:
            return
        seg_a, seg_b = self.selector.select(self.buffer, n, self.labels.dataset, recent=self.teacher.recent_transitions)
        scale = abs(self.buffer.mean_step_reward()) * self.config.segment_len
        kept = self.labels.ask(seg_a, seg_b, int(self.num_timesteps), scale=scale)  # durable before anything else
        self.state.labels_asked += n
        self.last_query_step = self.num_timesteps
        self._save_state()
        if not self.labels.asynchronous:
            self._fit(new_labels=kept)

    def _collect(self) -> None:
        """Take in the answers people gave since the last look; refit if there are enough."""
        self._last_poll = time.monotonic()
        new = self.labels.collect()
        if new is not None and len(self.labels.dataset) >= max(self.config.min_labels, 1):
            self._fit(new_labels=new)

    def _wait_for_labels(self) -> None:
        """Block until `min_labels` answers exist (only before the first reward update)."""
        if not self.labels.asynchronous or self.state.fitted or self.config.min_labels == 0:
            return
        said = -math.inf
        while True:
            self._collect()
            have = len(self.labels.dataset)
            if self.state.fitted:
                print(f"prefrl: {have} labels in, training resumes", file=sys.stderr, flush=True)
                return
            if self.labels.outstanding() == 0:  # everything asked is answered (or skipped), still too few
                more = min(self.config.min_labels - have, self.schedule.total - self.state.labels_asked)
                if more <= 0:
                    warnings.warn(f"the label budget is spent with {have} usable answers, fewer than "
                                  f"min_labels={self.config.min_labels}: training goes on with them", stacklevel=2)
                    if have:
                        self._fit()
                    return
                self._query(more)  # bring later queries forward rather than wait for nothing
            if time.monotonic() - said > 30:
                print(f"prefrl: waiting for {self.config.min_labels} labels before the first reward update "
                      f"({have} so far); answer in `prefrl label serve`", file=sys.stderr, flush=True)
                said = time.monotonic()
            time.sleep(self.config.poll_seconds)

    def _unlabelled_pairs(self, labelled: int) -> tuple[Segments, Segments] | None:
        """SURF's unlabelled pairs for a fit: `pool` per labelled pair, drawn from all the run's experience."""
        surf = self.trainer.surf
        if surf is None or labelled == 0 or not self.buffer.can_sample(self.config.segment_len):
            return None
        n = surf.pool * labelled
        return tuple(self.buffer.sample_segments(n, self.config.segment_len, self.surf_rng) for _ in range(2))

    def _fit(self, new_labels: int = 0) -> None:
        """Refit the reward on every label (and the demonstrations), relabel replay data, save."""
        dataset = self.training_pairs
        if len(dataset) == 0 and not self.trainer.uses_demos:
            return
        policy_segments = None
        if self.trainer.uses_demos:
            policy_segments = self.buffer.sample_segments(self.trainer.demo_pool, self.config.segment_len,
                                                          self.policy_rng, recent=self.config.policy_recent)
        report = self.trainer.fit(dataset, policy_segments, self._unlabelled_pairs(len(dataset)))
        self.state.fitted, self.last_fit_step = True, self.num_timesteps
        relabel_replay_buffer(self.model, self.reward_model, self.wrapper.observation_space, self.wrapper.action_space)
        self.state.fit_reports.append({"env_steps": int(self.num_timesteps), **report.__dict__})
        self.logger.record("pref/labels_asked", self.state.labels_asked)
        self.logger.record("pref/labels_kept", len(self.labels.dataset))
        self.logger.record("pref/labels_new", new_labels)
        for key, value in report.__dict__.items():
            if key not in ("pairs", "seconds", "pair_updates"):
                self.logger.record(f"reward/{key}", value)
        if self.run_dir is not None:
            self.reward_model.save(self.run_dir / "reward_model.pt")
            self._save_state()

    def _save_state(self) -> None:
        if self.run_dir is not None:
            self.state.trainer = self.trainer.resume_state()
            self.state.save(self.run_dir)
