"""Human-labelling speed: seconds to render a clip, and the label page's answer round trip under concurrent annotators.

    python benchmarks/labelling.py                 # Hopper-v5, 50-step clips at 160x160; 1/8/32 annotators

Clips: segments of a random Hopper-v5 policy (MuJoCo states recorded by the wrappers) rendered
offscreen (MUJOCO_GL=egl) as webm (VP9) and gif; seconds per clip over `--clips` clips each.
Answers: `--annotators` threads each post `--answers` answers over HTTP to a `prefrl label serve`
server (in this process) on a store of queries; answers/s is over the whole wall time, and every
answer is checked to be in the store exactly once. Writes results/labelling.json and labelling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from prefrl.core.data import write_json  # noqa: E402
from prefrl.human.clips import SegmentRenderer  # noqa: E402
from prefrl.human.server import LabelServer  # noqa: E402
from prefrl.human.store import STORE_NAME, LabelStore  # noqa: E402
from prefrl.sb3.policies import record_demos  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def clip_seconds(env_id: str, n: int, horizon: int, size: int) -> dict[str, float]:
    import gymnasium as gym

    rng = np.random.default_rng(0)
    space = gym.make(env_id).action_space
    act = lambda o: rng.uniform(space.low, space.high, (len(o), *space.shape))  # noqa: E731 - a random policy
    buf = record_demos(env_id, act, 20, seed=0).buffer()
    segs = buf.sample_segments(n, horizon, rng)
    renderer = SegmentRenderer(env_id, size)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("webm", "gif"):
            renderer.write(segs, Path(tmp) / f"warm.{fmt}", 0)  # first render opens the GL context
            t0 = time.perf_counter()
            for i in range(n):
                renderer.write(segs, Path(tmp) / f"c{i}.{fmt}", i)
            out[f"seconds_per_clip_{fmt}"] = (time.perf_counter() - t0) / n
            out[f"clip_bytes_{fmt}"] = float(np.mean([os.path.getsize(Path(tmp) / f"c{i}.{fmt}") for i in range(n)]))
        t0 = time.perf_counter()
        for i in range(n):
            renderer.frames(segs, i)
        out["seconds_per_clip_frames_only"] = (time.perf_counter() - t0) / n
    renderer.close()
    out["frames_per_second_rendered"] = horizon / out["seconds_per_clip_frames_only"]
    return out


def answer_rate(annotators: int, answers: int, queries: int = 50) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        store = LabelStore(run / STORE_NAME)
        from prefrl.core.data import Segments

        seg = Segments(obs=np.zeros((1, 2, 3), np.float32), acts=np.zeros((1, 2, 1), np.float32),
                       next_obs=np.zeros((1, 2, 3), np.float32), mask=np.ones((1, 2), np.float32),
                       true_rewards=np.zeros((1, 2), np.float32))
        ids = []
        for _ in range(queries):
            q = store.add_query(seg, seg, 0)
            store.set_clips(q, "", "")
            ids.append(q)
        server = LabelServer(run, port=0).start()
        base = f"http://127.0.0.1:{server.port}/api/answer"

        def post(k: int, i: int) -> int:
            body = json.dumps({"query_id": ids[i % queries], "answer": ("left", "right", "equal")[i % 3],
                               "annotator": f"annotator{k}-{i // queries}"}).encode()
            req = urllib.request.Request(base, body, {"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status

        def work(k: int) -> list[int]:
            lat = []
            for i in range(answers):
                t = time.perf_counter()
                assert post(k, i) == 200
                lat.append(time.perf_counter() - t)
            return lat

        t0 = time.perf_counter()
        with ThreadPoolExecutor(annotators) as pool:
            latencies = [x for lat in pool.map(work, range(annotators)) for x in lat]
        wall = time.perf_counter() - t0
        server.shutdown()
        stored = store.counts()["answers"]
        if stored != annotators * answers:
            raise AssertionError(f"{stored} answers stored, {annotators * answers} posted")
        return {"annotators": annotators, "answers": annotators * answers, "answers_per_second": annotators * answers / wall,
                "round_trip_ms_median": 1000 * float(np.median(latencies)),
                "round_trip_ms_p95": 1000 * float(np.percentile(latencies, 95)), "stored": stored}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--annotators", default="1,8,32")
    p.add_argument("--answers", type=int, default=50, help="answers per annotator")
    p.add_argument("--results-dir", default=str(RESULTS))
    args = p.parse_args(argv)
    clips = clip_seconds(args.env, args.clips, args.horizon, args.size)
    print(json.dumps(clips), file=sys.stderr)
    rates = [answer_rate(int(k), args.answers) for k in args.annotators.split(",")]
    for r in rates:
        print(json.dumps(r), file=sys.stderr)
    command = "python benchmarks/labelling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command, "env": args.env, "horizon": args.horizon, "size": args.size, "clips": clips,
              "answers": rates, "cpu_count": os.cpu_count()}
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    write_json(results / "labelling.json", result)
    lines = [f"Produced by `{command.strip()}` ({os.cpu_count()} CPUs).", "",
             f"Clips: {args.env}, {args.horizon} steps, {args.size}x{args.size}, offscreen MuJoCo (EGL on the CPU).", "",
             "| format | seconds per clip | bytes per clip |", "| --- | --- | --- |"]
    for fmt in ("webm", "gif"):
        lines.append(f"| {fmt} | {clips[f'seconds_per_clip_{fmt}']:.2f} | {clips[f'clip_bytes_{fmt}']:.0f} |")
    lines += [f"| frames only (no encoding) | {clips['seconds_per_clip_frames_only']:.2f} | – |", "",
              "| concurrent annotators | answers | answers/s | round trip median (ms) | p95 (ms) |",
              "| --- | --- | --- | --- | --- |"]
    for r in rates:
        lines.append(f"| {r['annotators']} | {r['answers']} | {r['answers_per_second']:.0f} | "
                     f"{r['round_trip_ms_median']:.1f} | {r['round_trip_ms_p95']:.1f} |")
    (results / "labelling.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
