"""Transitions, segments and labelled comparisons: what flows from the env to the reward model.

Files are plain npz (no pickled objects) with a format version, written atomically so a crash
mid-write never leaves a half-written label file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np

FORMAT_VERSION = 1


@dataclass
class Segments:
    """N trajectory segments of H steps each; every array has leading dimensions (N, H).

    `mask` is 1 for real steps and 0 for steps after the episode terminated: those are the
    absorbing state, which the reward model gives a learned constant reward (see reward.py).
    `states` holds MuJoCo qpos+qvel per step so clips can be rendered later (None if not recorded).
    """

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    mask: np.ndarray
    true_rewards: np.ndarray
    states: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, h = self.mask.shape
        for f in fields(self):
            arr = getattr(self, f.name)
            if arr is not None and arr.shape[:2] != (n, h):
                raise ValueError(f"segment field {f.name!r} has shape {arr.shape}, expected leading dims ({n}, {h})")

    def __len__(self) -> int:
        return self.mask.shape[0]

    @property
    def horizon(self) -> int:
        """Steps per segment (H)."""
        return self.mask.shape[1]

    def __getitem__(self, idx: np.ndarray | slice) -> Segments:
        return Segments(**{f.name: (None if (a := getattr(self, f.name)) is None else a[idx]) for f in fields(self)})

    def true_returns(self) -> np.ndarray:
        """Sum of true rewards over the real (unmasked) steps, shape (N,)."""
        return (self.true_rewards * self.mask).sum(axis=1)

    @staticmethod
    def concatenate(parts: Sequence[Segments]) -> Segments:
        """Stack several batches of segments with the same horizon."""
        out = {}
        for f in fields(Segments):
            arrs = [getattr(p, f.name) for p in parts]
            out[f.name] = None if any(a is None for a in arrs) else np.concatenate(arrs, axis=0)
        return Segments(**out)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call write(fh) on a temporary file beside `path`, fsync it, then rename it into place.

    A crash mid-write leaves the previous file intact: this is how every file that holds labels,
    models or checkpoints is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ComparisonDataset:
    """Labelled pairs of segments: label = P(segment a preferred), with provenance per pair."""

    def __init__(self) -> None:
        self.segments_a: Segments | None = None
        self.segments_b: Segments | None = None
        self.labels = np.zeros(0, dtype=np.float32)
        self.teachers = np.zeros(0, dtype="<U64")
        self.env_steps = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, seg_a: Segments, seg_b: Segments, labels: np.ndarray, teacher: str, env_step: int) -> int:
        """Append answered pairs (NaN labels mean 'skipped' and are dropped); returns how many were kept."""
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        if not (len(seg_a) == len(seg_b) == len(labels)):
            raise ValueError(f"got {len(seg_a)} a-segments, {len(seg_b)} b-segments and {len(labels)} labels")
        answered = ~np.isnan(labels)
        if np.any((labels[answered] < 0) | (labels[answered] > 1)):
            raise ValueError(f"labels must lie in [0, 1] (P(a preferred)), got {labels[answered].min()}..{labels[answered].max()}")
        seg_a, seg_b, labels = seg_a[answered], seg_b[answered], labels[answered]
        if self.segments_a is None:
            self.segments_a, self.segments_b = seg_a, seg_b
        else:
            if seg_a.horizon != self.segments_a.horizon:
                raise ValueError(f"segment length {seg_a.horizon} differs from the dataset's {self.segments_a.horizon}")
            self.segments_a = Segments.concatenate([self.segments_a, seg_a])
            self.segments_b = Segments.concatenate([self.segments_b, seg_b])
        self.labels = np.concatenate([self.labels, labels])
        self.teachers = np.concatenate([self.teachers, np.full(len(labels), teacher, dtype="<U64")])
        self.env_steps = np.concatenate([self.env_steps, np.full(len(labels), env_step, dtype=np.int64)])
        return int(len(labels))

    @classmethod
    def concatenate(cls, parts: Sequence[ComparisonDataset]) -> ComparisonDataset:
        """One dataset holding every pair of `parts`, in order, with each pair's provenance (segments of one length)."""
        out = cls()
        for part in parts:
            if len(part):
                out.add(part.segments_a, part.segments_b, part.labels, "", 0)
                out.teachers[-len(part):], out.env_steps[-len(part):] = part.teachers, part.env_steps
        return out

    def subset(self, idx: np.ndarray) -> ComparisonDataset:
        """A new dataset holding the pairs at `idx`."""
        out = ComparisonDataset()
        if self.segments_a is not None:
            out.segments_a, out.segments_b = self.segments_a[idx], self.segments_b[idx]
        out.labels, out.teachers, out.env_steps = self.labels[idx], self.teachers[idx], self.env_steps[idx]
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write all pairs to an npz file atomically (safe to call after every new label)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "labels": self.labels,
            "teachers": self.teachers,
            "env_steps": self.env_steps,
        }
        for side, segs in (("a", self.segments_a), ("b", self.segments_b)):
            if segs is None:
                continue
            for f in fields(Segments):
                if (arr := getattr(segs, f.name)) is not None:
                    arrays[f"{side}_{f.name}"] = arr
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> ComparisonDataset:
        """Read a file written by `save`, with a clear error for a missing, corrupt or foreign file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"comparisons file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile / numpy raise many kinds for a damaged file
            raise ValueError(f"comparisons file {path} is corrupt or not an npz file: {exc}") from exc
        version = int(data.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(f"comparisons file {path} has format version {version}, expected {FORMAT_VERSION}")
        out = cls()
        try:
            out.labels = data["labels"].astype(np.float32)
            out.teachers = data["teachers"].astype("<U64")
            out.env_steps = data["env_steps"].astype(np.int64)
            if len(out.labels):
                segs = {}
                for side in "ab":
                    kw = {f.name: data.get(f"{side}_{f.name}") for f in fields(Segments)}
                    missing = [k for k, v in kw.items() if v is None and k != "states"]
                    if missing:
                        raise KeyError(", ".join(f"{side}_{m}" for m in missing))
                    segs[side] = Segments(**kw)
                out.segments_a, out.segments_b = segs["a"], segs["b"]
                if not (len(out.segments_a) == len(out.segments_b) == len(out.labels)):
                    raise ValueError("segment and label counts differ")
        except (KeyError, ValueError) as exc:
            raise ValueError(f"comparisons file {path} is incomplete or inconsistent: {exc}") from exc
        return out


@dataclass
class Episode:
    """One finished (or cut-off) episode: obs[t], acts[t] -> next_obs[t], true reward[t]."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    true_rewards: np.ndarray
    states: np.ndarray | None
    terminated: bool

    def __len__(self) -> int:
        return len(self.acts)


class TrajectoryBuffer:
    """Records what the wrappers see, per environment, and cuts episodes into segments.

    Works with early termination and any episode length: a terminated episode's segments may
    run past its end, the extra steps masked as the absorbing state; a truncated (time limit or
    cut-off) episode only yields segments that fit inside it, since what follows is unknown.
    """

    def __init__(self, n_envs: int, capacity: int = 1_000_000) -> None:
        self.n_envs = n_envs
        self.capacity = capacity
        self.episodes: list[Episode] = []
        self.num_transitions = 0
        self._open: list[dict[str, list]] = [self._new() for _ in range(n_envs)]

    @staticmethod
    def _new() -> dict[str, list]:
        return {"obs": [], "acts": [], "next_obs": [], "true_rewards": [], "states": []}

    def add(
        self,
        obs: np.ndarray,
        acts: np.ndarray,
        next_obs: np.ndarray,
        true_rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        states: np.ndarray | None = None,
    ) -> None:
        """Record one vector step (flat obs/actions, leading dimension n_envs)."""
        for i in range(self.n_envs):
            ep = self._open[i]
            ep["obs"].append(obs[i])
            ep["acts"].append(acts[i])
            ep["next_obs"].append(next_obs[i])
            ep["true_rewards"].append(true_rewards[i])
            if states is not None:
                ep["states"].append(states[i])
            if terminated[i] or truncated[i]:
                self._close(i, bool(terminated[i]))

    def _close(self, i: int, terminated: bool) -> None:
        ep = self._open[i]
        self._open[i] = self._new()
        if not ep["acts"]:
            return
        states = np.asarray(ep["states"], dtype=np.float32) if len(ep["states"]) == len(ep["acts"]) else None
        self.episodes.append(
            Episode(
                obs=np.asarray(ep["obs"], dtype=np.float32),
                acts=np.asarray(ep["acts"], dtype=np.float32),
                next_obs=np.asarray(ep["next_obs"], dtype=np.float32),
                true_rewards=np.asarray(ep["true_rewards"], dtype=np.float32),
                states=states,
                terminated=terminated,
            )
        )
        self.num_transitions += len(self.episodes[-1])
        while self.num_transitions > self.capacity and len(self.episodes) > 1:
            self.num_transitions -= len(self.episodes.pop(0))

    def cut_open_episodes(self) -> None:
        """Close every episode in progress as truncated (the env was reset under it)."""
        for i in range(self.n_envs):
            self._close(i, terminated=False)

    def iter_recent(self, n_transitions: int) -> Iterator[Episode]:
        """Finished episodes, newest first, until about `n_transitions` have been given."""
        seen = 0
        for ep in reversed(self.episodes):
            if seen >= n_transitions:
                return
            seen += len(ep)
            yield ep

    def mean_step_reward(self, n_transitions: int = 10_000) -> float:
        """Mean true reward per step over recent episodes (the teachers' threshold scale)."""
        eps = list(self.iter_recent(n_transitions))
        if not eps:
            return 0.0
        return float(np.sum([e.true_rewards.sum() for e in eps]) / np.sum([len(e) for e in eps]))

    @staticmethod
    def _starts(episodes: Sequence[Episode], horizon: int) -> np.ndarray:
        # A terminated episode may start a segment at any step (the rest is absorbing state);
        # a truncated one only where a whole segment fits.
        return np.array(
            [len(e) if e.terminated else max(len(e) - horizon + 1, 0) for e in episodes], dtype=np.int64
        )

    def can_sample(self, horizon: int) -> bool:
        """Whether at least one segment of this length can be cut from the finished episodes."""
        return bool(self.episodes) and int(self._starts(self.episodes, horizon).sum()) > 0

    def sample_segments(
        self, n: int, horizon: int, rng: np.random.Generator, recent: int | None = None
    ) -> Segments:
        """Draw n segments uniformly over all valid (episode, start) positions.

        With `recent`, only from the newest episodes holding about that many transitions (the
        current policy's behaviour), falling back to older ones if those fit no segment.
        """
        episodes = self.episodes
        if recent is not None:
            newest = list(self.iter_recent(recent))[::-1]
            if newest and self._starts(newest, horizon).sum() > 0:
                episodes = newest
        counts = self._starts(episodes, horizon)
        total = int(counts.sum())
        if total == 0:
            raise ValueError(
                f"no segment of {horizon} steps fits in the {len(self.episodes)} recorded episodes "
                f"({self.num_transitions} transitions); collect more steps or shorten the segments"
            )
        flat = rng.integers(0, total, size=n)
        bounds = np.cumsum(counts)
        ep_idx = np.searchsorted(bounds, flat, side="right")
        starts = flat - (bounds[ep_idx] - counts[ep_idx])
        first = episodes[0]
        obs_dim, act_dim = first.obs.shape[1], first.acts.shape[1]
        has_states = all(e.states is not None for e in episodes)
        state_dim = first.states.shape[1] if has_states else 0
        obs = np.zeros((n, horizon, obs_dim), np.float32)
        next_obs = np.zeros_like(obs)
        acts = np.zeros((n, horizon, act_dim), np.float32)
        mask = np.zeros((n, horizon), np.float32)
        rew = np.zeros((n, horizon), np.float32)
        states = np.zeros((n, horizon, state_dim), np.float32) if has_states else None
        for j, (e, s) in enumerate(zip(ep_idx, starts)):
            ep = episodes[e]
            stop = min(s + horizon, len(ep))
            k = stop - s
            obs[j, :k], acts[j, :k], next_obs[j, :k] = ep.obs[s:stop], ep.acts[s:stop], ep.next_obs[s:stop]
            rew[j, :k], mask[j, :k] = ep.true_rewards[s:stop], 1.0
            if k < horizon:  # absorbing state: hold the final observation / pose
                obs[j, k:] = next_obs[j, k:] = ep.next_obs[stop - 1]
                acts[j, k:] = 0.0
            if states is not None:
                states[j, :k] = ep.states[s:stop]
                states[j, k:] = ep.states[stop - 1]
        return Segments(obs=obs, acts=acts, next_obs=next_obs, mask=mask, true_rewards=rew, states=states)


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write JSON atomically."""
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))
