"""Which pairs to ask about, and getting the answers: query selection and teacher I/O.

`QuerySelector` draws candidate segment pairs from a TrajectoryBuffer and keeps the n most
informative by the sampler's rule (B-Pref). `LabelCollector` hands the chosen pairs to the
teacher — labelled at once by a script, or submitted to people and picked up later — and keeps
every answer in a ComparisonDataset that is written to disk the moment answers arrive.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from prefrl.core.data import ComparisonDataset, Segments, TrajectoryBuffer
from prefrl.core.validation import check_choice, check_positive_int
from prefrl.feedback.base import Teacher
from prefrl.feedback.samplers import SAMPLERS, select_queries
from prefrl.reward.model import RewardModel


def pair_features(seg_a: Segments, seg_b: Segments) -> np.ndarray:
    """What k-center compares: both segments' observations, flattened."""
    return np.concatenate([seg_a.obs.reshape(len(seg_a), -1), seg_b.obs.reshape(len(seg_b), -1)], axis=1)


class QuerySelector:
    """Picks n segment pairs to ask about: `candidate_factor * n` random candidates, the sampler keeps n."""

    def __init__(self, reward_model: RewardModel, *, sampler: str = "uniform", segment_len: int = 50,
                 candidate_factor: int = 10, window: int = 5000, rng: np.random.Generator):
        check_choice("sampler", sampler, SAMPLERS)
        for name, value in (("segment_len", segment_len), ("candidate_factor", candidate_factor), ("window", window)):
            check_positive_int(name, value)
        self.reward_model, self.sampler, self.window = reward_model, sampler, window
        self.segment_len, self.candidate_factor, self.rng = segment_len, candidate_factor, rng

    def select(self, buffer: TrajectoryBuffer, n: int, labelled: ComparisonDataset,
               recent: int | None = None) -> tuple[Segments, Segments]:
        """n pairs from `buffer` (its newest `recent` transitions if given; with the policy_aligned sampler, at most
        the newest `window`), avoiding what `labelled` covers (k-center)."""
        if self.sampler == "policy_aligned":
            recent = self.window if recent is None else min(recent, self.window)
        uniform = self.sampler in ("uniform", "policy_aligned")
        m = n if uniform else n * self.candidate_factor
        segs = buffer.sample_segments(2 * m, self.segment_len, self.rng, recent=recent)
        seg_a, seg_b = segs[:m], segs[m:]
        if uniform:
            return seg_a, seg_b
        kwargs = {"member_returns_a": self.reward_model.segment_member_returns(seg_a),
                  "member_returns_b": self.reward_model.segment_member_returns(seg_b)}
        if "kcenter" in self.sampler:
            kwargs["features"] = pair_features(seg_a, seg_b)
            kwargs["labelled_features"] = (pair_features(labelled.segments_a, labelled.segments_b)
                                           if len(labelled) else None)
        idx = select_queries(self.sampler, n, rng=self.rng, **kwargs)
        return seg_a[idx], seg_b[idx]


class LabelCollector:
    """Teacher I/O: every answer goes into `dataset` and, with a `save_path`, to disk before anything else happens."""

    def __init__(self, teacher: Teacher, dataset: ComparisonDataset | None = None, save_path: str | Path | None = None,
                 *, rng: np.random.Generator):
        if not isinstance(teacher, Teacher):
            raise TypeError(f"teacher must be a prefrl.feedback.base.Teacher (or AsyncTeacher), got {type(teacher).__name__}")
        self.teacher, self.rng = teacher, rng
        self.dataset = dataset if dataset is not None else ComparisonDataset()
        self.save_path = Path(save_path) if save_path is not None else None

    @property
    def asynchronous(self) -> bool:
        """Whether answers come later (people)."""
        return self.teacher.asynchronous

    def ask(self, seg_a: Segments, seg_b: Segments, env_step: int, scale: float | None = None) -> int:
        """Ask about the pairs; returns how many labels were kept now (0 for a teacher that answers later)."""
        if self.teacher.asynchronous:
            self.teacher.submit(seg_a, seg_b, env_step)
            return 0
        labels = self.teacher.label(seg_a.true_rewards, seg_b.true_rewards, seg_a.mask, seg_b.mask, rng=self.rng,
                                    scale=scale)
        kept = self.dataset.add(seg_a, seg_b, labels, self.teacher.name, env_step)
        self._save()
        if kept == 0:
            # e.g. B-Pref's skip teacher on a task whose returns are all negative skips every query
            warnings.warn(f"teacher {self.teacher.name!r} answered none of {len(seg_a)} queries at step {env_step} "
                          f"({len(self.dataset)} labels so far)", stacklevel=3)
        return kept

    def collect(self) -> int | None:
        """Take in the answers people gave since the last look: the number of new labels, None if nothing changed."""
        if not self.teacher.asynchronous or not self.teacher.changed():
            return None
        before = len(self.dataset)
        self.dataset = self.teacher.dataset()
        self._save()  # an export: the teacher's store is the record
        return len(self.dataset) - before

    def outstanding(self) -> int:
        """Queries asked but not answered yet (always 0 for a teacher that answers at once)."""
        return self.teacher.outstanding() if self.teacher.asynchronous else 0

    def _save(self) -> None:
        if self.save_path is not None:
            self.dataset.save(self.save_path)
