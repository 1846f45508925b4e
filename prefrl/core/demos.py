"""Demonstrations: recorded episodes of a policy acting in an env, for AIHF, IRL and BC.

File format (npz, no pickled objects; an HDF5 file holds the same datasets in its root group,
with `meta` as a root attribute):

    format_version  int, currently 1
    obs             (N, obs_dim) float32   flat observations (prefrl.spaces.flatten_batch)
    acts            (N, act_dim) float32   flat actions
    next_obs        (N, obs_dim) float32   the observation each action led to
    rewards         (N,) float32           the env's true reward (to report the demos' return)
    episode_lengths (E,) int64             the N transitions are E episodes laid end to end
    terminated      (E,) bool              episode ended by termination (else: time limit / cut)
    states          (N, S) float32         optional: MuJoCo qpos+qvel, to render clips
    meta            JSON string            env id and the observation/action spaces

A local Minari dataset loads as `minari:DATASET_ID` (needs `pip install minari`; nothing is
downloaded). `Demonstrations.check_env` refuses demonstrations of other spaces than the env's.
`prefrl.policies.record_demos` records them from a trained policy or any callable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces as gym_spaces

from prefrl.core.data import Episode, TrajectoryBuffer, atomic_write
from prefrl.core.spaces import describe, flat_dim, flatten_batch

DEMO_FORMAT_VERSION = 1
_REQUIRED = ("obs", "acts", "next_obs", "rewards", "episode_lengths", "terminated")
MINARI_PREFIX = "minari:"


@dataclass
class Demonstrations:
    """Episodes of flat transitions, with the env id and spaces they were recorded in (if known)."""

    episodes: list[Episode]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.episodes:
            raise ValueError("demonstrations need at least one episode, got none")

    # ------------------------------------------------------------ summary
    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def num_transitions(self) -> int:
        """Transitions over all episodes."""
        return sum(len(e) for e in self.episodes)

    def returns(self) -> np.ndarray:
        """True return of each episode, shape (E,)."""
        return np.array([float(e.true_rewards.sum()) for e in self.episodes])

    def summary(self) -> dict[str, Any]:
        """Episodes, transitions and true return (mean, std, min, max), as plain JSON values."""
        r = self.returns()
        return {
            "env": self.meta.get("env_id"), "episodes": len(self), "transitions": self.num_transitions,
            "true_return_mean": float(r.mean()), "true_return_std": float(r.std()),
            "true_return_min": float(r.min()), "true_return_max": float(r.max()),
            "episode_length_mean": float(np.mean([len(e) for e in self.episodes])),
        }

    def first(self, n: int) -> Demonstrations:
        """The first n episodes (e.g. the 1-demo setting of a benchmark)."""
        if not 1 <= n <= len(self):
            raise ValueError(f"asked for {n} demonstration episodes, the file has {len(self)}: expected 1..{len(self)}")
        return Demonstrations(self.episodes[:n], dict(self.meta))

    def buffer(self) -> TrajectoryBuffer:
        """The episodes in a TrajectoryBuffer, to cut segments exactly as from the policy's data."""
        buf = TrajectoryBuffer(n_envs=1)
        buf.episodes = list(self.episodes)
        buf.num_transitions = self.num_transitions
        return buf

    # --------------------------------------------------------- validation
    def check_env(self, observation_space: gym_spaces.Space, action_space: gym_spaces.Space,
                  env_id: str | None = None) -> None:
        """Raise a ValueError naming both shapes if these demonstrations do not fit the env's spaces."""
        first = self.episodes[0]
        where = f" for {env_id}" if env_id else ""
        recorded = f" (recorded in {self.meta['env_id']})" if self.meta.get("env_id") else ""
        for what, space, arr in (("observation", observation_space, first.obs), ("action", action_space, first.acts)):
            want = flat_dim(space)
            if arr.shape[1] != want:
                raise ValueError(
                    f"demonstration {what}s have {arr.shape[1]} dimensions{recorded}, the env{where} expects "
                    f"{want} ({describe(space)['repr']})"
                )
            saved = self.meta.get(f"{what}_space")
            if saved and saved.get("repr") != describe(space)["repr"]:
                raise ValueError(
                    f"demonstrations were recorded with {what} space {saved['repr']}{recorded}, the env{where} has "
                    f"{describe(space)['repr']}"
                )

    # ------------------------------------------------------------ save/load
    def arrays(self) -> dict[str, np.ndarray]:
        """The file's datasets (see the module docstring)."""
        eps = self.episodes
        out = {
            "format_version": np.array(DEMO_FORMAT_VERSION),
            "obs": np.concatenate([e.obs for e in eps]).astype(np.float32),
            "acts": np.concatenate([e.acts for e in eps]).astype(np.float32),
            "next_obs": np.concatenate([e.next_obs for e in eps]).astype(np.float32),
            "rewards": np.concatenate([e.true_rewards for e in eps]).astype(np.float32),
            "episode_lengths": np.array([len(e) for e in eps], dtype=np.int64),
            "terminated": np.array([e.terminated for e in eps], dtype=bool),
            "meta": np.array(json.dumps(self.meta)),
        }
        if all(e.states is not None for e in eps):
            out["states"] = np.concatenate([e.states for e in eps]).astype(np.float32)
        return out

    def save(self, path: str | Path) -> None:
        """Write an npz (or, for a .h5/.hdf5 path, an HDF5 file) atomically."""
        path = Path(path)
        arrays = self.arrays()
        if path.suffix in (".h5", ".hdf5"):
            h5py = _import("h5py", "HDF5 demonstrations")

            def write(fh):
                with h5py.File(fh, "w") as f:
                    for k, v in arrays.items():
                        if k == "meta":
                            f.attrs["meta"] = str(v)
                        else:
                            f.create_dataset(k, data=v)

            atomic_write(path, write)
        else:
            atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, source: str | Path) -> Demonstrations:
        """Load an npz or HDF5 file, or `minari:DATASET_ID`; ValueError naming what is wrong."""
        text = str(source)
        if text.startswith(MINARI_PREFIX):
            return _load_minari(text[len(MINARI_PREFIX):])
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"demonstration file {path} does not exist")
        try:
            if path.suffix in (".h5", ".hdf5"):
                h5py = _import("h5py", "HDF5 demonstrations")
                with h5py.File(path, "r") as f:
                    arrays = {k: np.asarray(f[k]) for k in f.keys()}
                    if "meta" in f.attrs:
                        arrays["meta"] = np.array(f.attrs["meta"])
            else:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
        except ImportError:
            raise
        except Exception as exc:  # noqa: BLE001 - zip, HDF5 and npy errors come in many types
            raise ValueError(f"demonstration file {path} is corrupt or truncated: {exc.__class__.__name__}: {exc}") from exc
        return cls.from_arrays(arrays, str(path))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], name: str = "demonstrations") -> Demonstrations:
        """Check a file's datasets and split them into episodes."""
        missing = [k for k in _REQUIRED if k not in arrays]
        if missing:
            raise ValueError(f"{name} is not a prefrl demonstration file: missing {missing} (expected {list(_REQUIRED)})")
        version = int(arrays["format_version"]) if "format_version" in arrays else None
        if version != DEMO_FORMAT_VERSION:
            raise ValueError(f"{name} has demonstration format version {version}, expected {DEMO_FORMAT_VERSION}")
        obs, acts, next_obs = (np.asarray(arrays[k], dtype=np.float32) for k in ("obs", "acts", "next_obs"))
        rewards = np.asarray(arrays["rewards"], dtype=np.float32)
        lengths = np.asarray(arrays["episode_lengths"], dtype=np.int64).reshape(-1)
        terminated = np.asarray(arrays["terminated"], dtype=bool).reshape(-1)
        states = np.asarray(arrays["states"], dtype=np.float32) if "states" in arrays else None
        n = len(acts)
        if n == 0 or len(lengths) == 0:
            raise ValueError(f"{name} holds no transitions: expected at least one episode")
        for key, arr, ndim in (("obs", obs, 2), ("acts", acts, 2), ("next_obs", next_obs, 2), ("rewards", rewards, 1)):
            if arr.ndim != ndim or len(arr) != n:
                raise ValueError(f"{name}: {key} has shape {arr.shape}, expected {ndim} dims with {n} rows (one per transition)")
        if obs.shape != next_obs.shape:
            raise ValueError(f"{name}: obs {obs.shape} and next_obs {next_obs.shape} must have the same shape")
        if states is not None and len(states) != n:
            raise ValueError(f"{name}: states has {len(states)} rows, expected {n}")
        if (lengths < 1).any() or int(lengths.sum()) != n or len(terminated) != len(lengths):
            raise ValueError(
                f"{name}: episode_lengths {lengths.tolist()[:10]} (sum {int(lengths.sum())}) and terminated "
                f"({len(terminated)} entries) do not describe the {n} transitions: the file is truncated or inconsistent"
            )
        for key, arr in (("obs", obs), ("acts", acts), ("next_obs", next_obs), ("rewards", rewards)):
            bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
            if bad.any():
                t = int(np.argmax(bad))
                ep = int(np.searchsorted(np.cumsum(lengths), t, side="right"))
                raise ValueError(f"{name}: {key} has NaN/inf at transition {t} (episode {ep}); expected finite values")
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        episodes = [
            Episode(obs=obs[s:e], acts=acts[s:e], next_obs=next_obs[s:e], true_rewards=rewards[s:e],
                    states=None if states is None else states[s:e], terminated=bool(term))
            for s, e, term in zip(bounds[:-1], bounds[1:], terminated)
        ]
        try:
            meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: meta is not valid JSON ({exc})") from exc
        return cls(episodes, meta if isinstance(meta, dict) else {})

    @classmethod
    def from_buffer(cls, buffer: TrajectoryBuffer, meta: dict[str, Any] | None = None) -> Demonstrations:
        """The finished episodes a wrapper recorded."""
        return cls(list(buffer.episodes), dict(meta or {}))


def load_demos_for_env(source: str | Path, env_id: str, episodes: int | None = None) -> Demonstrations:
    """Load demonstrations (the first `episodes` of them) and check they fit `env_id`'s spaces."""
    import gymnasium as gym

    demos = Demonstrations.load(source)
    if episodes is not None:
        demos = demos.first(episodes)
    env = gym.make(env_id)
    try:
        demos.check_env(env.observation_space, env.action_space, env_id)
    finally:
        env.close()
    return demos


def _import(module: str, what: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise ImportError(f"{what} need the {module} package: pip install 'prefrl[demos]' (or pip install {module})") from exc


def _load_minari(dataset_id: str) -> Demonstrations:
    """A Minari dataset already on this machine (never downloaded)."""
    minari = _import("minari", "Minari datasets")
    try:
        dataset = minari.load_dataset(dataset_id, download=False)
    except Exception as exc:  # noqa: BLE001 - Minari raises several types for a missing dataset
        raise ValueError(f"no local Minari dataset {dataset_id!r} ({exc.__class__.__name__}: {exc}); "
                         f"see `minari list local`") from exc
    obs_space, act_space = dataset.observation_space, dataset.action_space
    episodes = []
    for ep in dataset.iterate_episodes():
        o = flatten_batch(obs_space, ep.observations).astype(np.float32)
        a = flatten_batch(act_space, ep.actions).astype(np.float32)
        if len(o) != len(a) + 1:
            raise ValueError(f"Minari dataset {dataset_id}: episode {ep.id} has {len(o)} observations for {len(a)} actions, "
                             f"expected one more observation than actions")
        episodes.append(Episode(obs=o[:-1], acts=a, next_obs=o[1:], true_rewards=np.asarray(ep.rewards, np.float32),
                                states=None, terminated=bool(np.asarray(ep.terminations)[-1])))
    if not episodes:
        raise ValueError(f"Minari dataset {dataset_id} holds no episodes")
    meta = {"env_id": dataset.spec.env_spec.id if dataset.spec.env_spec else None,
            "observation_space": describe(obs_space), "action_space": describe(act_space), "source": f"minari:{dataset_id}"}
    demos = Demonstrations(episodes, meta)
    Demonstrations.from_arrays(demos.arrays(), f"Minari dataset {dataset_id}")  # same checks as a file (NaN, shapes)
    return demos
