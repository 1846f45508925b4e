"""`prefrl train`: one run of PPO or SAC on a learned (or, as the baseline, the true) reward.

A run directory holds everything needed to judge and resume it:
config.json, metrics.json, curves.png, tb/ (TensorBoard), policy.zip, vecnormalize.npz,
reward_model.pt, comparisons.npz (every label, saved as it arrives), state.json.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from prefrl.sb3.callback import PreferenceCallback
from prefrl.human.clips import FrameRecorder, FrameStore, is_mujoco_env
from prefrl.core.data import ComparisonDataset, TrajectoryBuffer, atomic_write, write_json
from prefrl.core.demos import Demonstrations, load_demos_for_env
from prefrl.sb3.evaluation import evaluate_policy, reward_model_report
from prefrl.runs.plotting import plot_runs
from prefrl.sb3.policies import ALGOS, read_normalization
from prefrl.reward.model import RewardModel
from prefrl.reward.trainer import RewardTrainer
from prefrl.feedback.samplers import SAMPLERS
from prefrl.feedback.teachers import TEACHERS, make_teacher
from prefrl.core.validation import check_choice, check_positive_int
from prefrl.sb3.wrappers import LearnedRewardVecEnv, check_env_id, make_vec_env  # noqa: F401  (re-exported)

REWARDS = ("learned", "true")


@dataclass
class TrainConfig:
    """Everything that defines a run (saved to config.json, so `--resume` needs only the directory)."""

    env: str
    out: str
    algo: str = "ppo"
    teacher: str = "oracle"
    labels: int = 700
    steps: int = 300_000
    seed: int = 0
    reward: str = "learned"
    sampler: str = "uniform"
    ensemble: int = 3
    segment_len: int = 50
    n_envs: int = 1
    num_queries: int = 20
    eval_episodes: int = 10
    evals: int = 10
    history_episodes: int = 5
    pretrain_steps: int = 0
    reward_hidden: list[int] = field(default_factory=lambda: [64, 64])
    min_labels: int = 0
    serve: bool = False
    port: int = 8765
    demos: str | None = None
    demo_episodes: int | None = None
    demo_weight: float = 1.0
    pref_weight: float = 1.0
    threads: int = 1
    progress: bool = True

    def validate(self) -> None:
        """Refuse bad values before anything is built, naming the value and what was expected."""
        check_env_id(self.env)
        check_choice("algo", self.algo, tuple(ALGOS))
        check_choice("reward", self.reward, REWARDS)
        check_positive_int("steps", self.steps)
        for name in ("ensemble", "segment_len", "n_envs", "eval_episodes", "evals", "history_episodes", "num_queries",
                     "threads"):
            check_positive_int(name, getattr(self, name))
        if self.reward == "learned":
            check_choice("teacher", self.teacher, (*TEACHERS, "human"))
            check_choice("sampler", self.sampler, SAMPLERS)
            limit = gym.spec(self.env).max_episode_steps
            if limit is not None and self.segment_len > limit:
                raise ValueError(f"segment_len {self.segment_len} is longer than {self.env}'s episodes "
                                 f"(time limit {limit} steps): expected at most {limit}")
            self._validate_reward_sources()
        elif self.demos:
            raise ValueError("--demos has no effect with --reward true (the true-reward baseline); drop one of them")
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
        if self.pretrain_steps < 0 or (self.pretrain_steps and self.algo != "sac"):
            raise ValueError(f"pretrain_steps={self.pretrain_steps}: expected 0, or a positive number with --algo sac")

    def _validate_reward_sources(self) -> None:
        """Labels and/or demonstrations, with weights that make sense together."""
        for name in ("demo_weight", "pref_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        if self.demo_weight == 0 and self.pref_weight == 0:
            raise ValueError("demo-weight and pref-weight are both 0: at least one term must train the reward")
        irl_only = self.labels == 0 and bool(self.demos) and self.demo_weight > 0
        if not irl_only:
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
        demos = load_demos_for_env(self.demos, self.env, self.demo_episodes)
        if not demos.buffer().can_sample(self.segment_len):
            raise ValueError(f"the demonstrations' episodes ({[len(e) for e in demos.episodes][:10]} steps) are too short "
                             f"for segments of {self.segment_len} steps: expected an episode of at least that length "
                             f"or one that terminated")
        return demos

    @property
    def method(self) -> str:
        """true_reward, preference, aihf (labels + demos) or irl (demos only)."""
        if self.reward == "true":
            return "true_reward"
        if not self.demos or self.demo_weight == 0:
            return "preference"
        return "irl" if self.labels == 0 else "aihf"

    @classmethod
    def from_json(cls, path: Path) -> "TrainConfig":
        """Read config.json of a run directory."""
        try:
            raw = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path} is missing or corrupt: {exc}") from exc


def prepare_run_dir(out: Path, overwrite: bool, resumable: bool = False) -> Path:
    """Create `out`, refusing to start over an earlier run there unless `overwrite` (then it is deleted)."""
    existing = out / "config.json"
    if existing.exists():
        if not overwrite:
            hint = f"continue it with --resume {out}, or " if resumable else ""
            raise ValueError(f"{out} already holds a prefrl run: {hint}pass --overwrite to delete it and start again")
        try:
            json.loads(existing.read_text())  # only ever delete what is recognizably a prefrl run
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{existing} is corrupt, so {out} is not deleted: {exc}") from exc
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


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

    def __init__(self, run: "Run", every: int):
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


class Run:
    """Builds (or resumes) everything a run needs; `train()` runs it to the end."""

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False):
        config.validate()
        if not resume:
            prepare_run_dir(Path(config.out), overwrite, resumable=True)
        # Small MLPs gain little from more threads, and two runs side by side oversubscribe the cores.
        torch.set_num_threads(config.threads)
        self.config, self.out = config, Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "config.json", asdict(config))
        state = self._load_state() if resume else {}
        self.history: list[dict[str, Any]] = state.get("history", [])
        self.wall_before = float(state.get("wall_seconds", 0.0))

        frames = None
        if config.reward == "learned" and config.teacher == "human" and not is_mujoco_env(config.env):
            frames = FrameStore()  # not MuJoCo: clips come from render() frames kept while training
            venv = make_vec_env(config.env, config.n_envs, config.seed, wrap=lambda e: FrameRecorder(e, frames),
                                render_mode="rgb_array")
        else:
            venv = make_vec_env(config.env, config.n_envs, config.seed)
        obs_space, act_space = venv.observation_space, venv.action_space
        if config.algo == "sac" and not isinstance(act_space, gym.spaces.Box):
            raise ValueError(f"SAC needs a continuous (Box) action space, {config.env} has {act_space}")
        self.reward_model: RewardModel | None = None
        self.buffer = TrajectoryBuffer(config.n_envs)
        self.dataset = ComparisonDataset()
        labels_asked, weight_decay = 0, 1e-4
        self.teacher: Any = None
        self.server: Any = None
        if config.reward == "learned" and config.teacher == "human":
            from prefrl.human.teacher import HumanTeacher

            self.teacher = HumanTeacher(self.out, config.env, frames=frames)
        elif config.reward == "learned":
            self.teacher = make_teacher(config.teacher)
        if config.reward == "learned":
            if resume and config.teacher == "human":
                self.dataset = self.teacher.dataset()  # the label store is the record; comparisons.npz its export
                labels_asked = int(self._read_json("pref_state.json").get("labels_asked", 0))
            elif resume and (self.out / "comparisons.npz").exists():
                self.dataset = ComparisonDataset.load(self.out / "comparisons.npz")
                pref = self._read_json("pref_state.json")
                labels_asked = max(int(pref.get("labels_asked", 0)), len(self.dataset))
                weight_decay = float(pref.get("weight_decay", weight_decay))
            if resume and (self.out / "reward_model.pt").exists():
                self.reward_model = RewardModel.load(self.out / "reward_model.pt", obs_space, act_space)
            else:
                self.reward_model = RewardModel(
                    obs_space, act_space, ensemble_size=config.ensemble, hidden=config.reward_hidden, seed=config.seed
                )
        self.venv = VecNormalize(
            LearnedRewardVecEnv(venv, self.reward_model, self.buffer), norm_obs=config.algo == "ppo",
            norm_reward=config.algo == "ppo",
        )
        self.eval_env = VecNormalize(
            LearnedRewardVecEnv(make_vec_env(config.env, 1, config.seed + 10_000), self.reward_model),
            training=False, norm_obs=config.algo == "ppo", norm_reward=False,
        )
        self.warmup_steps = int(state.get("warmup_steps", 0))
        policy_path = self.out / "policy.zip"
        if resume and policy_path.exists():
            try:
                self.model = ALGOS[config.algo].load(policy_path, env=self.venv, tensorboard_log=str(self.out / "tb"))
            except (zipfile.BadZipFile, KeyError, EOFError) as exc:
                raise ValueError(f"policy checkpoint {policy_path} is corrupt: {exc}") from exc
            self._load_normalization()
        else:
            self.model = ALGOS[config.algo]("MlpPolicy", self.venv, seed=config.seed, verbose=0,
                                            tensorboard_log=str(self.out / "tb"))
        self.pref: PreferenceCallback | None = None
        self.demos = config.load_demos() if config.demos else None
        if self.reward_model is not None:
            trainer = RewardTrainer(self.reward_model, seed=config.seed, weight_decay=weight_decay,
                                    demos=self.demos if config.method in ("aihf", "irl") else None,
                                    demo_weight=config.demo_weight, pref_weight=config.pref_weight)
            fitted = (self.out / "reward_model.pt").exists() and resume
            if labels_asked and not fitted and len(self.dataset) and not trainer.uses_demos:
                trainer.fit(self.dataset)  # labels survived a crash that the model did not
            self.pref = PreferenceCallback(
                self.reward_model, self.teacher, total_labels=config.labels, min_labels=config.min_labels,
                total_steps=config.steps, sampler=config.sampler, segment_len=config.segment_len,
                num_queries=config.num_queries, pretrain_steps=config.pretrain_steps, dataset=self.dataset,
                trainer=trainer, run_dir=self.out, labels_asked=labels_asked, fitted=fitted, seed=config.seed,
            )

    # ---------------------------------------------------------------- state
    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.out / name
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc

    def _load_state(self) -> dict[str, Any]:
        if (self.out / "metrics.json").exists():
            raise ValueError(f"run {self.out} already finished (metrics.json exists): nothing to resume")
        return self._read_json("state.json")

    def _running_stats(self) -> dict[str, Any]:
        """VecNormalize's running mean/std objects in use (none for SAC, which normalizes nothing)."""
        return {name: getattr(self.venv, f"{name}_rms") for name, on in
                (("obs", self.venv.norm_obs), ("ret", self.venv.norm_reward)) if on}

    def _load_normalization(self) -> None:
        path = self.out / "vecnormalize.npz"
        if not path.exists():
            return
        saved = read_normalization(path)
        for name, rms in self._running_stats().items():
            if name not in saved:
                raise ValueError(f"{path} is corrupt: it holds no {name} statistics")
            rms.mean, rms.var, rms.count = saved[name].mean, saved[name].var, saved[name].count

    def env_steps(self) -> int:
        """Env steps so far, the random warm-up included."""
        warm = self.pref.warmup_done if self.pref is not None and self.pref.warmup_done else self.warmup_steps
        return int(self.model.num_timesteps + warm)

    def checkpoint(self) -> None:
        """Save the policy, normalization statistics and progress (labels are saved as they arrive)."""
        atomic_write(self.out / "policy.zip", self.model.save)
        stats = {f"{name}_{field}": getattr(rms, field) for name, rms in self._running_stats().items()
                 for field in ("mean", "var", "count")}
        atomic_write(self.out / "vecnormalize.npz", lambda fh: np.savez(fh, **stats))
        write_json(self.out / "state.json", {
            "num_timesteps": int(self.model.num_timesteps), "warmup_steps": self.env_steps() - self.model.num_timesteps,
            "history": self.history, "wall_seconds": self.wall_before + time.perf_counter() - self.t0,
        })

    def evaluate(self, episodes: int) -> dict[str, Any]:
        """True (and learned) return of the current policy, deterministic actions."""
        res = evaluate_policy(self.model, self._synced_eval_env(), episodes)
        return {"env_steps": self.env_steps(), "true_return": res["true_return"], "learned_return": res["learned_return"]}

    # ---------------------------------------------------------------- train
    def train(self) -> dict[str, Any]:
        """Run to the configured number of steps, then evaluate, save and plot; returns metrics."""
        cfg = self.config
        self.t0 = time.perf_counter()
        remaining = cfg.steps - self.model.num_timesteps
        callbacks: list[BaseCallback] = []
        if self.pref is not None:
            callbacks.append(self.pref)
        callbacks.append(_RunMonitor(self, max(cfg.steps // cfg.evals, 1)))
        if cfg.progress:
            callbacks.append(_Progress(cfg.steps, self.model.num_timesteps, self.pref))
        if cfg.serve:
            from prefrl.human.server import LabelServer

            self.server = LabelServer(self.out, port=cfg.port).start()
            print(f"prefrl: label the clips at {self.server.url}", file=sys.stderr, flush=True)
        try:
            if remaining > 0:
                self.model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False,
                                 tb_log_name="run")
        finally:
            if self.server is not None:
                self.server.shutdown()
            if hasattr(self.teacher, "close"):
                self.teacher.close()
        self.checkpoint()
        final = evaluate_policy(self.model, self._synced_eval_env(), cfg.eval_episodes)
        metrics: dict[str, Any] = {
            "env": cfg.env, "algo": cfg.algo, "seed": cfg.seed, "reward": cfg.reward,
            "teacher": cfg.teacher if cfg.reward == "learned" else None,
            "sampler": cfg.sampler if cfg.reward == "learned" else None,
            "method": cfg.method, "demos": len(self.demos) if self.demos else 0,
            "demo_return": float(self.demos.returns().mean()) if self.demos else None,
            "demo_weight": cfg.demo_weight if cfg.method in ("aihf", "irl") else None,
            "pref_weight": cfg.pref_weight if cfg.method in ("aihf", "preference") else None,
            "env_steps": self.env_steps(), "labels": self.pref.labels_asked if self.pref else 0,
            "labels_answered": len(self.pref.dataset) if self.pref else 0, "true_return": final["true_return"],
            "true_return_std": final["true_return_std"], "learned_return": final["learned_return"],
            "eval_episodes": cfg.eval_episodes, "pref_accuracy_heldout": None, "reward_correlation": None,
        }
        if self.reward_model is not None and self.buffer.can_sample(cfg.segment_len):
            report = reward_model_report(self.reward_model, self.buffer, cfg.segment_len, np.random.default_rng(cfg.seed + 1))
            metrics.update(report)
        self.history.append({"env_steps": self.env_steps(), "true_return": final["true_return"],
                             "learned_return": final["learned_return"]})
        metrics["wall_seconds"] = self.wall_before + time.perf_counter() - self.t0
        metrics["history"] = self.history
        if self.reward_model is not None:
            self.reward_model.save(self.out / "reward_model.pt")
        write_json(self.out / "metrics.json", _json_safe(metrics))
        plot_runs([self.out], self.out / "curves.png")
        return metrics

    def _synced_eval_env(self) -> VecEnv:
        if self.eval_env.norm_obs:
            self.eval_env.obs_rms = self.venv.obs_rms.copy()
        return self.eval_env


def _json_safe(obj: Any) -> Any:
    """NaN -> None so metrics.json stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


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
