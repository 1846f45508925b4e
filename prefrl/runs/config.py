"""What defines a `prefrl train` run: `TrainConfig`, saved to config.json and turned into the command line."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym

from prefrl.core import losses
from prefrl.core.data import ComparisonDataset
from prefrl.core.demos import Demonstrations, load_demos_for_env
from prefrl.core.spaces import flat_dim
from prefrl.core.validation import check_choice, check_positive_int, check_share
from prefrl.feedback.samplers import SAMPLERS
from prefrl.feedback.teachers import TEACHERS, make_teacher
from prefrl.reward.model import DEFAULT_INPUTS, input_kinds
from prefrl.reward.trainer import DEMO_ZEROS, HOLDOUT, PREF_FITS, RENORMALIZE, ROBUST, Surf, check_rime_grace
from prefrl.sb3.envs import check_env_id, make_env
from prefrl.sb3.objectives import env_reward_terms, parse_objective
from prefrl.sb3.policies import ALGOS
from prefrl.sb3.wrappers import UncertaintyBonus

REWARDS = ("learned", "true", "frozen")


@dataclass
class TrainConfig:
    """Everything that defines a run (saved to config.json, so `--resume` needs only the directory)."""

    env: str
    """Gymnasium env id, e.g. Hopper-v5 or prefrl/PointMass-v0; `module:EnvId` imports the module that registers it."""
    out: str
    """Run directory."""
    algo: str = "ppo"
    """The SB3 learner: ppo or sac."""
    teacher: str = "oracle"
    """oracle, noisy, mistake, myopic, skip, equal, christiano, or human (people, through `prefrl label serve`);
    `NAME:OBJECTIVE` (oracle:forward) also sets --objective."""
    teacher_kwargs: dict[str, Any] = field(default_factory=dict)
    """Fields of the synthetic teacher over its named values, e.g. mistake=0.3 (B-Pref: beta, gamma, skip, equal,
    mistake, random_answers)."""
    objective: str | None = None
    """Judge the run (teacher, evaluations, true-reward baseline) by these reward terms of the env instead of its
    reward: forward, ctrl, survive, energy (ctrl + survive), or a weighted sum such as 0.7*forward+0.3*energy."""
    init_policy: str | None = None
    """Start from this run directory's policy, with its observation normalization frozen (soups' shared start)."""
    labels: int = 700
    """Label budget (number of queries)."""
    steps: int = 300_000
    """Env steps of policy training."""
    seed: int = 0
    """Seed of the env, the learner, the reward model and every sampling."""
    reward: str = "learned"
    """learned, true for the true-reward baseline (same code path), or frozen: the saved reward models of the
    --reward-from runs, weighted by --reward-weights, and no labels (MORL on learned rewards)."""
    reward_from: list[str] | None = None
    """--reward frozen: run directories whose reward_model.pt give the reward."""
    reward_weights: list[float] | None = None
    """--reward frozen: the weight of each --reward-from model (default 1 each)."""
    sampler: str = "uniform"
    """Query selection: uniform, disagreement, entropy, kcenter, disagreement_kcenter, entropy_kcenter, or
    policy_aligned (uniform among the newest --query-window transitions: the current policy's behaviour, QPA)."""
    query_window: int = 5000
    """--sampler policy_aligned: queries come from this many newest transitions."""
    ensemble: int = 3
    """Reward ensemble members."""
    segment_len: int = 50
    """Steps per compared segment."""
    n_envs: int | None = None
    """Envs stepped side by side (default 1, or the --hyperparams file's). PPO shares its 2048-step rollout among
    them (n_steps = 2048 // N unless set), so N changes the wall time, not how often PPO updates: 4 envs take ~0.6x
    the time of one, and scored a little lower at 200 labels (benchmarks/README.md, "Vectorized envs")."""
    num_queries: int = 20
    """Batches the label budget is asked in (reward updates over the run)."""
    labels_upfront: float = 0.25
    """Share of the label budget asked before any policy learning, on the random-action warm-up's segments (and
    PEBBLE's pre-training's, with --pretrain-steps); the rest comes in --num-queries batches over the run."""
    eval_episodes: int = 10
    """Episodes of the final true-reward evaluation."""
    evals: int = 10
    """Evaluations during the run (the history)."""
    history_episodes: int = 5
    """Episodes per evaluation during the run."""
    pretrain_steps: int = 0
    """PEBBLE unsupervised pre-training: env steps on a state-entropy reward before the first labels (PPO: after
    the random-action warm-up); with --reward true, before the true reward (the control of a run with labels)."""
    rune: float = 0.0
    """RUNE's exploration bonus (Liang et al. 2022): the policy's reward is the learned reward plus this weight times
    the std of the ensemble members' rewards, where they disagree (0: off; the authors' PEBBLE setting: 0.05)."""
    rune_decay: float = 1e-5
    """With --rune: the bonus's weight shrinks by this share per env step (1e-5: to 5% after 300k steps)."""
    reward_hidden: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of each reward ensemble member."""
    reward_inputs: list[str] | None = None
    """What the reward sees, any of obs, act, act_sq (the action squared, as control costs use it), next_obs
    (default: obs act act_sq; obs alone with --demos, which IRL needs)."""
    min_labels: int = 0
    """--teacher human: wait for this many answers before the first reward update."""
    serve: bool = False
    """--teacher human: serve the labelling page from this process."""
    port: int = 8765
    """Port of --serve (on 127.0.0.1)."""
    pref_data: str | None = None
    """An offline preference set (a comparisons .npz as prefrl writes it, e.g. `prefrl demos pairs`): its labelled
    pairs join every reward fit beside the run's own labels; with --labels 0 the reward learns from them alone."""
    demos: str | None = None
    """Demonstrations (npz, HDF5 or minari:ID): trains the AIHF joint reward (IRL with --labels 0)."""
    demo_episodes: int | None = None
    """Use only the first N episodes of --demos."""
    demo_weight: float = 1.0
    """AIHF weight W_D of the demonstration term."""
    pref_weight: float = 1.0
    """AIHF weight W_P of the preference term."""
    refit_every: int = 2000
    """With --demos: refit the reward every this many env steps (the IRL term follows the policy)."""
    demo_updates: int = 1
    """With --demos: gradient steps of the joint objective per refit."""
    demo_lr: float = 1e-4
    """With --demos: Adam learning rate of the joint objective."""
    demo_weight_decay: float = 1e-3
    """With --demos: Adam weight decay of the joint objective."""
    demo_absorbing_lr: float = 1e-2
    """With --demos: Adam learning rate of the absorbing state's reward (one scalar per member)."""
    demo_zero: str = "absorbing"
    """With --demos: the policy's reward is 0 at the learned absorbing reward (absorbing), its own mean (policy) or the
    reward network's output 0 (raw, as ML-IRL)."""
    robust: str = "none"
    """Noisy teachers: screen the labelled pairs at every training epoch as RIME does (rime: distrust the pairs the reward
    contradicts, train on the confidently contradicted ones reversed) or not (none). Stored labels never change."""
    rime_grace: int = 0
    """With --robust rime: fits in which a new label is trusted before the screen judges it (0: judged from its first
    fit, as RIME does; 1: once the reward has trained on it)."""
    label_noise: float = 0.0
    """The Bradley-Terry loss's floor: the model's preference is mixed with this share of coin flips (0 = plain; a
    teacher that flips a share m of its answers is matched by 2m)."""
    estimate_label_noise: bool = False
    """Learn the floor from the labels: after every reward fit, the next fit's floor is the one under which the held-out
    labels are likeliest (starting from --label-noise; for a teacher whose mistake rate is not known)."""
    reward_holdout: float = HOLDOUT
    """Share of the labels held out of reward training for early stopping and the L2 tuning (Christiano et al.:
    1/e); 0 trains on every label, until each member ranks 97% of its pairs right (PEBBLE, B-Pref)."""
    surf: float | None = None
    """SURF (semi-supervised reward learning): label unlabelled pairs of the run's own segments where the reward is at
    least this sure (e.g. 0.95, the authors' code's default) and crop every pair in time; off by default."""
    pref_fit: str = "converge"
    """With --demos and labels: the preference term is also fitted to held-out convergence at every refit, as in
    preference-only training (converge), or only shares the joint steps (shared, as the authors' code)."""
    demo_batch: int | None = None
    """With --demos: segments per side in a step of the IRL term (default: all of them, a full batch)."""
    demo_l2: float = 0.0
    """With --demos: penalty on the squared segment returns in the IRL term."""
    reward_renormalize: str | None = None
    """When the reward's inputs are standardized: at every refit from its data (every), at the first fit only (first),
    or at every refit with the network's first layer taking the change in, so the reward stays the same function of
    its inputs (preserve). Default: every without --demos, first with them (ML-IRL's schedule)."""
    policy_recent: int = 10_000
    """With --demos: the IRL term's policy segments come from this many newest transitions."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of gym.make, e.g. terminate_when_unhealthy=false."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Arguments of the SB3 learner, e.g. n_steps=512 batch_size=64 learning_rate=lin_3e-4 (over --hyperparams)."""
    hyperparams: str | None = None
    """RL Baselines3 Zoo YAML file: the env's tuned learner settings, n_envs and normalization."""
    threads: int = 1
    """Torch threads."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        """`--teacher oracle:forward` is `--teacher oracle --objective forward`."""
        if isinstance(self.teacher, str) and ":" in self.teacher:
            teacher, _, objective = self.teacher.partition(":")
            if self.objective not in (None, objective):
                raise ValueError(f"--teacher {self.teacher} names objective {objective!r} but --objective is "
                                 f"{self.objective!r}: expected one of them, or both the same")
            self.teacher, self.objective = teacher, objective

    def validate(self) -> None:
        """Refuse bad values before anything is built, naming the value and what was expected."""
        env_id = self.env_id  # imports the module of a `module:EnvId` (config.json keeps the form typed)
        if self.objective is not None:
            parse_objective(self.objective).resolve(env_reward_terms(env_id, self.env_kwargs, self.seed), env_id)
        if self.init_policy is not None:
            self.init_config()
        check_choice("algo", self.algo, tuple(ALGOS))
        check_choice("demo_zero", self.demo_zero, DEMO_ZEROS)
        check_choice("pref_fit", self.pref_fit, PREF_FITS)
        check_choice("robust", self.robust, ROBUST)
        if self.reward_renormalize is not None:
            check_choice("reward_renormalize", self.reward_renormalize, RENORMALIZE)
        check_rime_grace(self.rime_grace, self.robust)
        check_share("label_noise", self.label_noise)
        check_share("reward_holdout", self.reward_holdout)
        check_share("labels_upfront", self.labels_upfront, whole=True)
        if self.surf is not None:
            Surf(threshold=self.surf)
            if self.reward != "learned" or (self.labels == 0 and self.pref_data is None):
                raise ValueError(f"surf {self.surf}: SURF labels unlabelled pairs beside the run's labels; expected "
                                 f"labels (--labels N or --pref-data) and --reward learned")
        check_choice("reward", self.reward, REWARDS)
        check_positive_int("steps", self.steps)
        for name in ("ensemble", "segment_len", "eval_episodes", "evals", "history_episodes", "num_queries", "threads",
                     "query_window"):
            check_positive_int(name, getattr(self, name))
        if self.n_envs is not None:
            check_positive_int("n_envs", self.n_envs)
        for name in ("env_kwargs", "algo_kwargs", "teacher_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of keyword arguments, got {getattr(self, name)!r}")
        if self.reward_inputs is not None:
            input_kinds(self.reward_inputs if isinstance(self.reward_inputs, list) else "",
                        f"reward_inputs {self.reward_inputs!r}", how=" in a list")
        for name in ("refit_every", "demo_updates", "policy_recent"):
            check_positive_int(name, getattr(self, name))
        if self.demo_batch is not None:
            check_positive_int("demo_batch", self.demo_batch)
        for name in ("demo_lr", "demo_weight_decay", "demo_l2", "demo_absorbing_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.hyperparams is not None and not Path(self.hyperparams).is_file():
            raise ValueError(f"hyperparameter file {self.hyperparams} does not exist")
        if self.reward == "learned":
            check_choice("teacher", self.teacher, (*TEACHERS, "human"))
            if self.teacher_kwargs:
                if self.teacher == "human":
                    raise ValueError(f"teacher_kwargs {self.teacher_kwargs!r} set a synthetic teacher's answers: "
                                     "expected none with --teacher human")
                make_teacher(self.teacher, **self.teacher_kwargs)  # unknown fields and out-of-range values
            check_choice("sampler", self.sampler, SAMPLERS)
            limit = gym.spec(env_id).max_episode_steps
            if limit is not None and self.segment_len > limit:
                raise ValueError(f"segment_len {self.segment_len} is longer than {self.env}'s episodes "
                                 f"(time limit {limit} steps): expected at most {limit}")
            self._validate_reward_sources()
        elif self.demos or self.pref_data:
            flag = "--demos" if self.demos else "--pref-data"
            raise ValueError(f"{flag} has no effect with --reward {self.reward} (no reward is learned); drop one of them")
        if self.reward == "frozen":
            self.frozen_rewards()
        elif self.reward_from or self.reward_weights:
            raise ValueError(f"--reward-from and --reward-weights belong to --reward frozen, not --reward {self.reward}")
        human = self.reward == "learned" and self.teacher == "human"
        if isinstance(self.min_labels, bool) or not isinstance(self.min_labels, int) or self.min_labels < 0 or \
                (self.min_labels and not human):
            raise ValueError(f"min_labels={self.min_labels!r}: expected 0, or a positive number with --teacher human")
        if self.min_labels > self.labels:
            raise ValueError(f"min_labels={self.min_labels} is more than the label budget ({self.labels})")
        if self.serve and not human:
            raise ValueError("--serve starts the labelling page of a --teacher human run: add --teacher human")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if isinstance(self.pretrain_steps, bool) or not isinstance(self.pretrain_steps, int) or \
                not 0 <= self.pretrain_steps < self.steps:
            raise ValueError(f"pretrain_steps={self.pretrain_steps!r}: expected 0, or a number of env steps below "
                             f"--steps ({self.steps})")
        UncertaintyBonus(self.rune, self.rune_decay)  # refuses a weight or decay it could not use
        if self.rune and self.reward != "learned":
            raise ValueError(f"rune {self.rune}: the bonus is on the learned reward's members, expected --reward "
                             f"learned, got {self.reward!r}")
        if self.pretrain_steps and not (self.reward == "true" or (self.reward == "learned" and self.labels > 0)):
            raise ValueError(f"pretrain_steps={self.pretrain_steps}: pre-training comes before the first labels, "
                             "expected --reward learned with --labels N, or --reward true (the same pre-training "
                             "before the true reward)")

    def _validate_reward_sources(self) -> None:
        """Labels and/or demonstrations, with weights that make sense together."""
        for name in ("demo_weight", "pref_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        losses.check_aihf_weights(self.pref_weight, self.demo_weight)
        irl_only = self.labels == 0 and bool(self.demos) and self.demo_weight > 0
        if self.pref_data is not None:
            self.load_pref_data()
            if self.pref_weight == 0:
                raise ValueError(f"pref-weight is 0, so the pairs of --pref-data {self.pref_data} would never be used: "
                                 f"drop --pref-data or give the preference term a weight")
        if not irl_only and not (self.pref_data and self.labels == 0):
            hint = " (the label budget; use --reward true for the baseline, or --demos FILE --labels 0 for IRL)"
            check_positive_int("labels", self.labels, hint=hint)
        if self.labels > 0 and self.pref_weight == 0:
            raise ValueError(f"pref-weight is 0, so the {self.labels} labels asked would never be used: "
                             f"set --labels 0 for demonstration-only IRL")
        if self.demo_episodes is not None:
            if not self.demos:
                raise ValueError("--demo-episodes needs --demos FILE")
            check_positive_int("demo_episodes", self.demo_episodes)
        if self.demos:
            self.load_demos()

    def load_demos(self) -> Demonstrations:
        """The demonstrations of this run (the first demo_episodes of the file), checked against the env."""
        demos = load_demos_for_env(self.demos, self.env_id, self.demo_episodes)
        if not demos.buffer().can_sample(self.segment_len):
            raise ValueError(f"the demonstrations' episodes ({[len(e) for e in demos.episodes][:10]} steps) are too short "
                             f"for segments of {self.segment_len} steps: expected an episode of at least that length "
                             f"or one that terminated")
        return demos

    def load_pref_data(self) -> ComparisonDataset:
        """The --pref-data pairs, checked against the env's spaces and this run's segment length."""
        try:
            data = ComparisonDataset.load(self.pref_data)
        except FileNotFoundError as exc:
            raise ValueError(f"--pref-data: {exc}") from exc
        if not len(data):
            raise ValueError(f"--pref-data {self.pref_data} holds no labelled pairs")
        space = make_env(self.env_id, self.env_kwargs)
        want = {"observation": flat_dim(space.observation_space), "action": flat_dim(space.action_space)}
        space.close()
        got = {"observation": data.segments_a.obs.shape[-1], "action": data.segments_a.acts.shape[-1]}
        for what in want:
            if got[what] != want[what]:
                raise ValueError(f"--pref-data {self.pref_data} has {what}s of {got[what]} dimensions, {self.env} "
                                 f"expects {want[what]}")
        if data.segments_a.horizon != self.segment_len:
            raise ValueError(f"--pref-data {self.pref_data} holds segments of {data.segments_a.horizon} steps: expected "
                             f"--segment-len {data.segments_a.horizon} to match them (it is {self.segment_len})")
        return data

    def init_config(self) -> TrainConfig:
        """The config of the --init-policy run, checked to be a finished run of the same env and learner."""
        init = Path(self.init_policy)
        missing = [n for n in ("config.json", "policy.zip") if not (init / n).is_file()]
        if missing:
            raise ValueError(f"init_policy {self.init_policy}: expected a prefrl run directory with a saved policy, "
                             f"it lacks {', '.join(missing)}")
        start = TrainConfig.from_json(init / "config.json")
        if start.env_id != self.env_id or start.algo != self.algo:
            raise ValueError(f"init_policy {self.init_policy} is a {start.algo} run on {start.env}: expected "
                             f"{self.algo} on {self.env}")
        return start

    @property
    def inputs(self) -> list[str]:
        """The reward model's inputs: as given, else RewardModel's default (obs, act, act_sq), or obs alone for IRL
        and AIHF (the ablation in benchmarks/aihf.md: with actions the demonstration term learns to tell the
        demonstrator's exact actions apart, and the policy never reaches the demonstrated states)."""
        if self.reward_inputs is not None:
            return list(self.reward_inputs)
        return ["obs"] if self.method in ("aihf", "irl") else list(DEFAULT_INPUTS)

    @property
    def env_id(self) -> str:
        """The registered id of `env` (`module:EnvId` imports the module first)."""
        return check_env_id(self.env)

    def frozen_rewards(self) -> list[tuple[Path, float]]:
        """(reward_model.pt, weight) of each --reward-from run, checked."""
        runs = list(self.reward_from or [])
        if not runs:
            raise ValueError("--reward frozen needs --reward-from RUN_DIR [RUN_DIR ...] (runs with a reward_model.pt)")
        weights = [1.0] * len(runs) if self.reward_weights is None else list(self.reward_weights)
        if len(weights) != len(runs) or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights):
            raise ValueError(f"--reward-weights {self.reward_weights}: expected {len(runs)} finite numbers, one per "
                             f"--reward-from run")
        missing = [r for r in runs if not (Path(r) / "reward_model.pt").is_file()]
        if missing:
            raise ValueError(f"--reward-from {missing[0]} holds no reward_model.pt: expected a finished "
                             f"learned-reward run")
        return [(Path(r) / "reward_model.pt", float(w)) for r, w in zip(runs, weights)]

    @property
    def method(self) -> str:
        """true_reward, frozen_reward, preference, aihf (labels + demos) or irl (demos only)."""
        if self.reward == "true":
            return "true_reward"
        if self.reward == "frozen":
            return "frozen_reward"
        if not self.demos or self.demo_weight == 0:
            return "preference"
        return "irl" if self.labels == 0 and not self.pref_data else "aihf"

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        """Read config.json of a run directory."""
        try:
            raw = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path} is missing or corrupt: {exc}") from exc
