"""The human teacher: queries go to the run's label store (with clips rendered off-thread), answers come back
whenever people give them, through `prefrl label serve`'s page.

Unlike the synthetic teachers it answers asynchronously: the loop `submit`s pairs and later finds
the answered ones in `dataset()`. The store is the source of truth; comparisons.npz is its export.
"""

from __future__ import annotations

from pathlib import Path

from prefrl.core.data import ComparisonDataset, Segments
from prefrl.feedback.base import AsyncTeacher
from prefrl.human.clips import ClipRenderer, FrameSegmentRenderer, FrameStore, SegmentRenderer
from prefrl.human.store import STORE_NAME, LabelStore


class HumanTeacher(AsyncTeacher):
    """Asks people: pairs become queries in `run_dir/labels.sqlite`, clips go to `run_dir/clips/`."""

    name = "human"

    def __init__(self, run_dir: str | Path, env_id: str, *, frames: FrameStore | None = None,
                 answers_wanted: int = 1, clip_size: int = 160):
        """MuJoCo envs render from recorded states; other envs need `frames`, the FrameStore their
        FrameRecorder wrappers fill (queries then come from the newest half of it)."""
        run_dir = Path(run_dir)
        self.store = LabelStore(run_dir / STORE_NAME)
        self.answers_wanted = answers_wanted
        self.recent_transitions = frames.capacity // 2 if frames is not None else None
        make = (lambda: FrameSegmentRenderer(frames)) if frames is not None else (lambda: SegmentRenderer(env_id, clip_size))
        self.renderer = ClipRenderer(make, run_dir / "clips", done=self.store.set_clips, failed=self.store.set_failed)
        for qid in self.store.unrendered():  # a run stopped before these were rendered
            self.renderer.submit(qid, *self.store.segments(qid))
        self._version: tuple[int, int] | None = None

    def submit(self, seg_a: Segments, seg_b: Segments, env_step: int) -> list[int]:
        """Store the pairs as queries (the first pair most urgent) and queue their clips; returns at once."""
        ids = []
        n = len(seg_a)
        for i in range(n):
            a, b = seg_a[i : i + 1], seg_b[i : i + 1]
            # newer queries first (they show the current policy); within a batch, in the sampler's order
            qid = self.store.add_query(a, b, env_step, priority=env_step + (n - i) / (n + 1),
                                       answers_wanted=self.answers_wanted)
            self.renderer.submit(qid, a, b)
            ids.append(qid)
        return ids

    def changed(self) -> bool:
        """Whether any answer arrived since the last call."""
        version = self.store.answered_version()
        changed, self._version = version != self._version, version
        return changed

    def outstanding(self) -> int:
        """Queries not answered yet (being rendered or waiting for people)."""
        counts = self.store.counts()
        return counts["rendering"] + counts["pending"]

    def dataset(self) -> ComparisonDataset:
        """Every answered pair with its aggregate (soft) label."""
        return self.store.dataset()

    def close(self) -> None:
        """Finish rendering the queued clips."""
        self.renderer.close()
