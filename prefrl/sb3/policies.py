"""Trained policies back in use: loading a run directory (policy.zip + its observation normalization)
or a bare .zip, and recording demonstrations from it (or from any callable policy)."""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from prefrl.core.data import TrajectoryBuffer, atomic_write
from prefrl.core.demos import Demonstrations
from prefrl.core.spaces import describe
from prefrl.core.validation import check_positive_int
from prefrl.sb3.envs import check_env_id, make_vec_env
from prefrl.sb3.wrappers import LearnedRewardVecEnv

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}


def read_normalization(path: Path) -> dict[str, RunningMeanStd]:
    """The running statistics saved in a run's vecnormalize.npz, by name ("obs", "ret")."""
    stats: dict[str, RunningMeanStd] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for name in ("obs", "ret"):
                if f"{name}_mean" in z.files:
                    rms = RunningMeanStd(shape=z[f"{name}_mean"].shape)
                    rms.mean, rms.var, rms.count = z[f"{name}_mean"], z[f"{name}_var"], float(z[f"{name}_count"])
                    stats[name] = rms
    except Exception as exc:  # noqa: BLE001 - zip/npz errors come in many types
        raise ValueError(f"{path} is corrupt: {exc}") from exc
    return stats


def save_normalization(path: Path, stats: dict[str, RunningMeanStd]) -> None:
    """Write running statistics by name ("obs", "ret") to a vecnormalize.npz that read_normalization reads."""
    arrays = {f"{name}_{part}": getattr(rms, part) for name, rms in stats.items() for part in ("mean", "var", "count")}
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def normalization_stats(venv: VecNormalize) -> dict[str, RunningMeanStd]:
    """The running statistics a VecNormalize uses, by name ("obs", "ret"): none for what it does not normalize."""
    return {name: getattr(venv, f"{name}_rms") for name, on in (("obs", venv.norm_obs), ("ret", venv.norm_reward)) if on}


def load_algorithm(path: Path, algo: str | None = None, env: VecEnv | None = None, **kwargs: Any) -> BaseAlgorithm:
    """An SB3 model from policy.zip; with no algo given, every known one is tried."""
    if not path.is_file():
        raise FileNotFoundError(f"policy file {path} does not exist")
    names = [algo] if algo else list(ALGOS)
    errors = []
    for name in names:
        try:
            return ALGOS[name].load(path, env=env, **kwargs)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"policy checkpoint {path} is corrupt: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - SB3 raises many types for a policy of another class
            errors.append(f"{name}: {exc.__class__.__name__}")
    raise ValueError(f"{path} is not a policy of {', '.join(names)} ({'; '.join(errors)})")


@dataclass
class LoadedPolicy:
    """A policy ready to act in `env` (which normalizes observations the way the policy was trained)."""

    model: BaseAlgorithm
    env: VecEnv

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        return self.model.predict(obs, deterministic=deterministic)[0]


def load_policy(path: str | Path, env: VecEnv) -> LoadedPolicy:
    """Load a prefrl run directory (or a policy .zip inside one) to act in `env`.

    A run trained with observation normalization gets the same normalization, frozen, on top of `env`.
    """
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    zip_path = path / "policy.zip" if path.is_dir() else path
    if not zip_path.exists():
        raise FileNotFoundError(f"no policy at {path}: expected a run directory holding policy.zip, or a .zip file")
    algo = None
    if (run_dir / "config.json").is_file():
        try:
            algo = json.loads((run_dir / "config.json").read_text()).get("algo")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{run_dir / 'config.json'} is corrupt: {exc}") from exc
    model = load_algorithm(zip_path, algo if algo in ALGOS else None)
    norm = run_dir / "vecnormalize.npz"
    stats = read_normalization(norm) if norm.is_file() else {}
    if "obs" in stats:
        env = VecNormalize(env, training=False, norm_obs=True, norm_reward=False)
        env.obs_rms = stats["obs"]
    if env.observation_space.shape != model.observation_space.shape:
        raise ValueError(f"policy {zip_path} was trained on observations of shape {model.observation_space.shape}, "
                         f"the env gives {env.observation_space.shape}")
    return LoadedPolicy(model, env)


class FrozenRunningMeanStd(RunningMeanStd):
    """Running statistics that no longer move: a fine-tune keeps its start's observation normalization, so the
    weights of runs from one start can be interpolated (weights trained on different inputs cannot)."""

    def update(self, arr: np.ndarray) -> None:
        """Ignore new data."""


def frozen(rms: RunningMeanStd) -> FrozenRunningMeanStd:
    """A frozen copy of `rms`."""
    out = FrozenRunningMeanStd(shape=np.shape(rms.mean))
    out.mean, out.var, out.count = np.array(rms.mean, dtype=np.float64), np.array(rms.var, dtype=np.float64), rms.count
    return out


def start_from(model: BaseAlgorithm, venv: VecEnv, run_dir: Path, load_policy: bool = True) -> None:
    """Fine-tune from another run: its policy's weights into `model` (unless `load_policy` is False, as when a
    resumed fine-tune has its own checkpoint) and its observation normalization, frozen, into `venv`."""
    stats_path = run_dir / "vecnormalize.npz"
    stats = read_normalization(stats_path) if stats_path.is_file() else {}
    norm_obs = isinstance(venv, VecNormalize) and venv.norm_obs
    if norm_obs != ("obs" in stats):
        raise ValueError(f"init_policy {run_dir} was trained {'with' if 'obs' in stats else 'without'} observation "
                         f"normalization, this run {'normalizes' if norm_obs else 'does not normalize'} observations: "
                         f"expected the same setting (a Zoo file's normalize, or none)")
    if norm_obs:
        if np.shape(stats["obs"].mean) != np.shape(venv.obs_rms.mean):
            raise ValueError(f"init_policy {run_dir} normalized observations of shape {np.shape(stats['obs'].mean)}, "
                             f"this env gives {np.shape(venv.obs_rms.mean)}")
        venv.obs_rms = frozen(stats["obs"])
    if load_policy:
        try:
            model.set_parameters(str(run_dir / "policy.zip"), exact_match=True, device=model.device)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"policy checkpoint {run_dir / 'policy.zip'} is corrupt: {exc}") from exc
        except (RuntimeError, ValueError) as exc:  # state dicts of another network size
            raise ValueError(f"init_policy {run_dir}: its policy does not fit this run's network "
                             f"(same --algo-kwargs policy_kwargs expected): {exc}") from exc


# --------------------------------------------------------------------------- recording
def record_demos(env_id: str, policy: Any, episodes: int, *, seed: int = 0, deterministic: bool = True,
                 min_return: float | None = None, max_attempts: int | None = None,
                 progress: bool = False) -> Demonstrations:
    """Run `policy` for `episodes` episodes of `env_id` and record them (with MuJoCo states).

    `policy` is a run directory or policy .zip written by prefrl (observation normalization
    included), an SB3 model, or any callable mapping a batch of observations to actions. With
    `min_return`, only episodes whose true return reaches it are kept (as ML-IRL/AIHF's data
    collection keeps a stochastic expert's good episodes), trying at most `max_attempts` episodes
    (default 20 per episode wanted).
    """
    check_env_id(env_id)
    check_positive_int("episodes", episodes)
    max_attempts = max_attempts if max_attempts is not None else 20 * episodes
    check_positive_int("max_attempts", max_attempts)
    buffer = TrajectoryBuffer(1)
    base = LearnedRewardVecEnv(make_vec_env(env_id, 1, seed), None, buffer)
    venv = base
    if isinstance(policy, (str, Path)):
        loaded = load_policy(policy, base)
        venv = loaded.env
        act = lambda o: loaded.act(o, deterministic)  # noqa: E731
    elif isinstance(policy, BaseAlgorithm):
        act = lambda o: policy.predict(o, deterministic=deterministic)[0]  # noqa: E731
    elif callable(policy):
        act = policy
    else:
        raise TypeError(f"policy must be a run directory, a policy .zip, an SB3 model or a callable, got {type(policy).__name__}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes, unit="episode")
    kept: list = []
    obs = venv.reset()
    while len(kept) < episodes:
        if len(buffer.episodes) >= max_attempts:
            raise ValueError(f"only {len(kept)} of {len(buffer.episodes)} episodes of {env_id} reached a true return of "
                             f"{min_return} (best {max(float(e.true_rewards.sum()) for e in buffer.episodes):.1f}): "
                             f"expected {episodes}; lower --min-return or use a better policy")
        before = len(buffer.episodes)
        obs, _, _, _ = venv.step(np.asarray(act(obs)))
        for ep in buffer.episodes[before:]:
            if min_return is None or float(ep.true_rewards.sum()) >= min_return:
                kept.append(ep)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    meta = {"env_id": env_id, "observation_space": describe(venv.observation_space),
            "action_space": describe(venv.action_space), "policy": str(policy) if isinstance(policy, (str, Path)) else
            type(policy).__name__, "deterministic": deterministic, "seed": seed, "min_return": min_return,
            "episodes_tried": len(buffer.episodes)}
    demos = Demonstrations(kept[:episodes], meta)
    if not math.isfinite(float(demos.returns().sum())):
        raise ValueError(f"the recorded episodes of {env_id} have non-finite true returns")
    return demos
