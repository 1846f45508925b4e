"""The durable store of human labels: one SQLite database (WAL) per run, `labels.sqlite`.

Tables:
- `queries`: the two segments (npz bytes), their clips (file names under the run's `clips/`),
  priority, the env step it was asked at, and its status: `rendering` (clips being made),
  `pending` (shown to annotators), `answered` (has `answers_wanted` answers), `failed` (no clip).
- `answers`: one row per (query, annotator): `left`, `right`, `equal` or `skip`, and the time.
  An annotator answering a query again replaces their earlier answer; nothing else is ever
  deleted. Every answer is committed (fsync'd, `synchronous=FULL`) before the request returns.

The label used for training is the mean over annotators (left = 1, right = 0, equal = 0.5; skips
left out); a query every annotator skipped gives no label. `dataset()` exports the answered
queries in the order they became answered (so a pair keeps its place as labels accumulate) in the
`ComparisonDataset` format of synthetic runs; `import_dataset` loads such a file as answered queries.
"""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from prefrl.core.data import ComparisonDataset, Segments

STORE_FORMAT_VERSION = 1
ANSWERS = {"left": 1.0, "right": 0.0, "equal": 0.5, "skip": None}
STORE_NAME = "labels.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    env_step INTEGER NOT NULL,
    priority REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'rendering' CHECK (status IN ('rendering', 'pending', 'answered', 'failed')),
    answers_wanted INTEGER NOT NULL DEFAULT 1,
    answered_at REAL,
    segments BLOB NOT NULL,
    clip_a TEXT,
    clip_b TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id INTEGER NOT NULL REFERENCES queries(id),
    annotator TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('left', 'right', 'equal', 'skip')),
    created REAL NOT NULL,
    UNIQUE (query_id, annotator)
);
CREATE INDEX IF NOT EXISTS queries_status ON queries (status, priority);
"""


class UnknownQuery(KeyError):
    """An answer or clip request named a query id the store does not hold."""


_FIELDS = [f.name for f in fields(Segments)]


def _segments_to_bytes(seg_a: Segments, seg_b: Segments) -> bytes:
    buf = io.BytesIO()
    arrays = {f"{side}_{name}": value for side, seg in (("a", seg_a), ("b", seg_b)) for name in _FIELDS
              if (value := getattr(seg, name)) is not None}
    np.savez(buf, **arrays)
    return buf.getvalue()


def _segments_from_bytes(blob: bytes) -> tuple[Segments, Segments]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        seg_a, seg_b = (Segments(**{name: z[k] if (k := f"{side}_{name}") in z.files else None for name in _FIELDS})
                        for side in ("a", "b"))
    return seg_a, seg_b


class LabelStore:
    """Thread-safe access to a run's label database (one connection per thread)."""

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no label store at {self.path}: is this the directory of a run with --teacher human?")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            conn = self._conn()
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('format_version', ?)", (str(STORE_FORMAT_VERSION),))
            elif int(row[0]) != STORE_FORMAT_VERSION:
                raise ValueError(f"label store {self.path} has format version {row[0]}, expected {STORE_FORMAT_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"label store {self.path} is corrupt or not a prefrl label store: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)  # autocommit; explicit BEGINs
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(sql, args)
            conn.execute("COMMIT")
            return cur
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ----------------------------------------------------------------- queries
    def add_query(self, seg_a: Segments, seg_b: Segments, env_step: int, priority: float = 0.0,
                  answers_wanted: int = 1) -> int:
        """Store a pair (status `rendering` until its clips are set); returns its id."""
        if len(seg_a) != 1 or len(seg_b) != 1:
            raise ValueError(f"a query holds one segment per side, got {len(seg_a)} and {len(seg_b)}")
        cur = self._write(
            "INSERT INTO queries (created, env_step, priority, answers_wanted, segments) VALUES (?, ?, ?, ?, ?)",
            (time.time(), int(env_step), float(priority), int(answers_wanted), _segments_to_bytes(seg_a, seg_b)),
        )
        return int(cur.lastrowid)

    def set_clips(self, query_id: int, clip_a: str, clip_b: str) -> None:
        """The clips are rendered: show the query to annotators."""
        self._write("UPDATE queries SET clip_a = ?, clip_b = ?, status = 'pending' WHERE id = ? AND status = 'rendering'",
                    (clip_a, clip_b, int(query_id)))

    def set_failed(self, query_id: int, error: str) -> None:
        self._write("UPDATE queries SET status = 'failed', error = ? WHERE id = ?", (error[:2000], int(query_id)))

    def unrendered(self) -> list[int]:
        """Queries whose clips were never made (e.g. the trainer stopped mid-render)."""
        return [r[0] for r in self._conn().execute("SELECT id FROM queries WHERE status = 'rendering' ORDER BY id")]

    def segments(self, query_id: int) -> tuple[Segments, Segments]:
        row = self._conn().execute("SELECT segments FROM queries WHERE id = ?", (int(query_id),)).fetchone()
        if row is None:
            raise UnknownQuery(query_id)
        return _segments_from_bytes(row[0])

    def clip(self, query_id: int, side: str) -> str | None:
        """The clip file name of one side ('a' or 'b'), None while rendering; UnknownQuery if no such query."""
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        row = self._conn().execute(f"SELECT clip_{side} FROM queries WHERE id = ?", (int(query_id),)).fetchone()
        if row is None:
            raise UnknownQuery(query_id)
        return row[0]

    def next_query(self, annotator: str) -> dict[str, Any] | None:
        """The most urgent pending query this annotator has not answered yet."""
        row = self._conn().execute(
            "SELECT id, env_step FROM queries q WHERE status = 'pending' AND NOT EXISTS "
            "(SELECT 1 FROM answers a WHERE a.query_id = q.id AND a.annotator = ?) "
            "ORDER BY priority DESC, id ASC LIMIT 1", (annotator,)).fetchone()
        return None if row is None else {"query_id": row[0], "env_step": row[1]}

    # ----------------------------------------------------------------- answers
    def answer(self, query_id: int, answer: str, annotator: str) -> None:
        """Record one annotator's answer, committed before returning."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, got {answer!r}")
        if not annotator or len(annotator) > 100:
            raise ValueError("annotator must be a non-empty name of at most 100 characters")
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT status, answers_wanted FROM queries WHERE id = ?", (int(query_id),)).fetchone()
            if row is None or row[0] in ("rendering", "failed"):
                raise UnknownQuery(query_id)
            now = time.time()
            conn.execute(
                "INSERT INTO answers (query_id, annotator, answer, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (query_id, annotator) DO UPDATE SET answer = excluded.answer, created = excluded.created",
                (int(query_id), annotator, answer, now))
            if row[0] == "pending":
                (n,) = conn.execute("SELECT COUNT(*) FROM answers WHERE query_id = ?", (int(query_id),)).fetchone()
                if n >= row[1]:
                    conn.execute("UPDATE queries SET status = 'answered', answered_at = ? WHERE id = ?", (now, int(query_id)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ status
    def counts(self) -> dict[str, int]:
        """Queries by status, and answers in all."""
        out = {s: 0 for s in ("rendering", "pending", "answered", "failed")}
        for status, n in self._conn().execute("SELECT status, COUNT(*) FROM queries GROUP BY status"):
            out[status] = n
        (out["answers"],) = self._conn().execute("SELECT COUNT(*) FROM answers").fetchone()
        return out

    def annotators(self) -> dict[str, int]:
        """Answers per annotator."""
        return dict(self._conn().execute("SELECT annotator, COUNT(*) FROM answers GROUP BY annotator ORDER BY annotator"))

    def answered_version(self) -> tuple[int, int]:
        """Changes whenever a label could have changed: (answered queries, answers)."""
        return tuple(self._conn().execute(  # type: ignore[return-value]
            "SELECT (SELECT COUNT(*) FROM queries WHERE status = 'answered'), (SELECT COUNT(*) FROM answers)").fetchone())

    def _answered(self) -> Iterator[tuple[int, bytes, int, list[str], list[str]]]:
        rows = self._conn().execute(
            "SELECT q.id, q.segments, q.env_step, group_concat(a.answer, ','), group_concat(a.annotator, ',') "
            "FROM queries q JOIN answers a ON a.query_id = q.id WHERE q.status = 'answered' "
            "GROUP BY q.id ORDER BY q.answered_at, q.id").fetchall()
        for qid, blob, step, answers, who in rows:
            yield qid, blob, step, answers.split(","), who.split(",")

    def dataset(self) -> ComparisonDataset:
        """Every answered query with a usable label, as the comparisons format (soft label = mean answer)."""
        ds = ComparisonDataset()
        for _, blob, step, answers, who in self._answered():
            values = [ANSWERS[a] for a in answers if ANSWERS[a] is not None]
            label = float(np.mean(values)) if values else float("nan")  # all skipped: no label
            seg_a, seg_b = _segments_from_bytes(blob)
            ds.add(seg_a, seg_b, np.array([label], np.float32), "human:" + "+".join(sorted(set(who))), step)
        return ds

    def import_dataset(self, dataset: ComparisonDataset, annotator: str = "import") -> int:
        """Store a comparisons file's pairs as answered queries (label > 0.5 left, < 0.5 right, else equal)."""
        n = 0
        for i in range(len(dataset)):
            seg_a, seg_b = dataset.segments_a[i : i + 1], dataset.segments_b[i : i + 1]
            qid = self.add_query(seg_a, seg_b, int(dataset.env_steps[i]))
            self.set_clips(qid, "", "")  # answered already: never shown, so no clips
            y = float(dataset.labels[i])
            self.answer(qid, "left" if y > 0.5 else "right" if y < 0.5 else "equal", annotator)
            n += 1
        return n
