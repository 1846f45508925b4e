"""An offline preference set: labelled pairs of segments cut from recorded episodes of several policies.

AIHF's MuJoCo experiments learn from preferences given once, before training, between trajectories of policies of
varied quality, rather than from queries about the learner's own behaviour. `offline_comparisons` makes such a set
from recorded episodes (`prefrl demos record`, one `Demonstrations` per policy): each pair puts a segment of one
policy beside a segment of another, and a synthetic teacher labels it from the true rewards. `prefrl train
--pref-data FILE` then fits every reward update on these pairs beside the run's own labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prefrl.core.data import ComparisonDataset, Segments, TrajectoryBuffer
from prefrl.core.demos import Demonstrations
from prefrl.core.validation import check_positive_int
from prefrl.feedback.base import Teacher


def offline_comparisons(sources: Sequence[Demonstrations], pairs: int, teacher: Teacher, *, segment_len: int = 50,
                        rng: np.random.Generator) -> ComparisonDataset:
    """`pairs` labelled pairs, each a segment of one source beside a segment of another (two distinct sources drawn
    uniformly), cut as the learner's own segments are (a terminated episode continues into its absorbing state)."""
    check_positive_int("pairs", pairs)
    check_positive_int("segment_len", segment_len)
    if len(sources) < 2:
        raise ValueError(f"an offline preference set compares policies: expected recorded episodes of at least 2, "
                         f"got {len(sources)}")
    if teacher.asynchronous:
        raise ValueError(f"teacher {teacher.name!r} answers later (people): expected a synthetic teacher, which labels "
                         f"from the true rewards at once")
    dims = [(s.episodes[0].obs.shape[1], s.episodes[0].acts.shape[1]) for s in sources]
    for i, (obs, act) in enumerate(dims[1:], 1):
        if (obs, act) != dims[0]:
            raise ValueError(f"source 0 has observations of {dims[0][0]} dimensions and actions of {dims[0][1]}, "
                             f"source {i} has {obs} and {act}: expected episodes of one env")
    buffers = [s.buffer() for s in sources]
    short = [i for i, b in enumerate(buffers) if not b.can_sample(segment_len)]
    if short:
        raise ValueError(f"source {short[0]}'s episodes are too short for segments of {segment_len} steps: expected an "
                         f"episode of at least that length or one that terminated")
    # the teachers' threshold scale, as the online loop takes it from its buffer: a typical segment's return
    scale = segment_len * abs(float(np.mean([b.mean_step_reward(b.num_transitions) for b in buffers])))
    dataset = ComparisonDataset()
    while len(dataset) < pairs:  # a teacher may skip some pairs (B-Pref's skip): ask again until the set is full
        which = np.array([rng.choice(len(sources), size=2, replace=False) for _ in range(pairs - len(dataset))])
        seg_a, seg_b = _cut(buffers, which[:, 0], segment_len, rng), _cut(buffers, which[:, 1], segment_len, rng)
        labels = teacher.label(seg_a.true_rewards, seg_b.true_rewards, seg_a.mask, seg_b.mask, rng=rng,
                               scale=scale)
        if dataset.add(seg_a, seg_b, labels, teacher.name, 0) == 0:
            raise ValueError(f"teacher {teacher.name!r} skipped all {len(labels)} pairs it was shown")
    return dataset


def _cut(buffers: list[TrajectoryBuffer], which: np.ndarray, segment_len: int, rng: np.random.Generator) -> Segments:
    """One segment from buffers[which[i]] for each i, in order."""
    segs = [None] * len(which)
    for source in np.unique(which):
        rows = np.flatnonzero(which == source)
        cut = buffers[source].sample_segments(len(rows), segment_len, rng)
        for j, row in enumerate(rows):
            segs[row] = cut[j:j + 1]
    return Segments.concatenate(segs)
