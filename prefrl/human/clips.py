"""Short looping clips of segments for people to compare, rendered off the training thread.

MuJoCo envs: a segment carries the qpos+qvel of each step (recorded by the wrappers), so a clip is
made by setting those states one after the other in a render-only copy of the env: nothing is
simulated again, and only the segments actually shown are ever rendered. Other envs: the
`FrameRecorder` wrapper keeps the `render()` frames of the newest steps in a `FrameStore`, and the
segment carries their ids instead. Steps after the episode ended (the absorbing state) hold the
last frame, dimmed. Clips are webm (VP9) through imageio-ffmpeg, or gif where ffmpeg is missing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

from prefrl.core.data import Segments

MAX_FPS = 30  # slower than real time for fast MuJoCo tasks (Hopper runs at 125 steps/s)


def clip_format() -> str:
    """'webm' where imageio's ffmpeg is installed, else 'gif'."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return "gif"
    return "webm"


def is_mujoco_env(env_id: str) -> bool:
    """Whether the registered env is a Gymnasium MujocoEnv (so clips can be rendered from its states)."""
    from gymnasium.envs.mujoco import MujocoEnv
    from gymnasium.envs.registration import load_env_creator

    entry = gym.spec(env_id).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    return isinstance(creator, type) and issubclass(creator, MujocoEnv)


def _dim_after_end(frames: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Frames after the episode ended (mask 0) dimmed, so people see the episode is over."""
    return np.stack([f if m else (f * 0.35).astype(np.uint8) for f, m in zip(frames, mask)])


class _Renderer:
    fps: int = MAX_FPS

    def frames(self, seg: Segments, i: int = 0) -> np.ndarray:
        raise NotImplementedError

    def write(self, seg: Segments, path: Path, i: int = 0) -> Path:
        """Render segment i to `path` (.webm or .gif)."""
        write_clip(self.frames(seg, i), path, self.fps)
        return path

    def close(self) -> None:
        pass


class SegmentRenderer(_Renderer):
    """Renders segments of one MuJoCo env from their recorded states (use from a single thread)."""

    def __init__(self, env_id: str, size: int = 160):
        if not is_mujoco_env(env_id):
            raise ValueError(f"{env_id} is not a MuJoCo env: its clips come from render() frames (FrameRecorder)")
        self.env = gym.make(env_id, render_mode="rgb_array", width=size, height=size)
        self.env.reset(seed=0)
        self.sim = self.env.unwrapped
        self.nq = self.sim.model.nq
        dt = float(getattr(self.sim, "dt", 1 / MAX_FPS))
        self.fps = int(min(MAX_FPS, round(1.0 / dt)))

    def frames(self, seg: Segments, i: int = 0) -> np.ndarray:
        """(H, size, size, 3) uint8 frames of segment i."""
        if seg.states is None:
            raise ValueError("the segment has no recorded MuJoCo states to render")
        states = seg.states[i]
        if states.shape[1] != self.nq + self.sim.model.nv:
            raise ValueError(f"recorded states have {states.shape[1]} numbers, this env's qpos+qvel has "
                             f"{self.nq + self.sim.model.nv}")
        out = []
        for t in range(len(states)):
            self.sim.set_state(states[t, : self.nq].astype(np.float64), states[t, self.nq :].astype(np.float64))
            out.append(np.asarray(self.sim.render()))
        return _dim_after_end(out, seg.mask[i])

    def close(self) -> None:
        self.env.close()


class FrameStore:
    """The newest `capacity` frames rendered by FrameRecorder wrappers, by id (thread-safe)."""

    ID_LIMIT = 1 << 24  # ids travel as float32 in the segments' `states`: exact below 2**24

    def __init__(self, capacity: int = 5000, size: int = 160):
        self.capacity, self.size = capacity, size
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()

    def add(self, frame: np.ndarray) -> int:
        frame = np.asarray(frame)
        step = max(1, -(-max(frame.shape[:2]) // self.size))  # downscale by striding to at most `size` pixels
        frame = np.ascontiguousarray(frame[::step, ::step, :3], dtype=np.uint8)
        with self._lock:
            fid, self._next = self._next, (self._next + 1) % self.ID_LIMIT
            self._frames[fid] = frame
            while len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        return fid

    def get(self, fid: int) -> np.ndarray:
        with self._lock:
            frame = self._frames.get(int(fid))
        if frame is None:
            raise ValueError(f"frame {fid} is no longer kept (only the newest {self.capacity} are)")
        return frame


class FrameRecorder(gym.Wrapper):
    """Keeps each observation's `render()` frame in a FrameStore; `frame_id` names the current one."""

    def __init__(self, env: gym.Env, store: FrameStore):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"FrameRecorder needs an env made with render_mode='rgb_array', got {env.render_mode!r}")
        self.store, self.frame_id = store, -1

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self.frame_id = self.store.add(self.env.render())
        return out

    def step(self, action):
        out = self.env.step(action)
        self.frame_id = self.store.add(self.env.render())
        return out


class FrameSegmentRenderer(_Renderer):
    """Clips of segments whose `states` hold FrameStore ids (non-MuJoCo envs)."""

    def __init__(self, store: FrameStore, fps: int = MAX_FPS):
        self.store, self.fps = store, fps

    def frames(self, seg: Segments, i: int = 0) -> np.ndarray:
        if seg.states is None or seg.states.shape[-1] != 1:
            raise ValueError("the segment carries no frame ids to render")
        return _dim_after_end([self.store.get(int(f)) for f in seg.states[i, :, 0]], seg.mask[i])


def write_clip(frames: np.ndarray, path: Path, fps: int) -> None:
    """Write frames as a looping webm (VP9) or gif, through a temporary name so a clip is whole or absent."""
    import imageio.v2 as imageio

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix == ".webm":
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libvpx-vp9",
                                    output_params=["-b:v", "0", "-crf", "34", "-deadline", "realtime"],
                                    macro_block_size=1, ffmpeg_log_level="error")
        with writer:
            for frame in frames:
                writer.append_data(frame)
    elif path.suffix == ".gif":
        imageio.mimsave(tmp, list(frames), format="GIF", duration=1.0 / fps, loop=0)
    else:
        raise ValueError(f"clip format {path.suffix!r} is not supported: expected .webm or .gif")
    tmp.replace(path)


class ClipRenderer:
    """Renders pairs on a background thread and reports each finished pair through `done(id, a, b)`.

    `submit` returns at once, so the training loop never waits on rendering; a pair that fails to
    render is reported through `failed(id, error)` and the others go on.
    """

    def __init__(self, make_renderer: Callable[[], _Renderer], clip_dir: str | Path,
                 done: Callable[[int, str, str], None], failed: Callable[[int, str], None], fmt: str | None = None):
        self.make_renderer, self.clip_dir = make_renderer, Path(clip_dir)
        self.fmt = fmt or clip_format()
        self.done, self.failed = done, failed
        self.clip_dir.mkdir(parents=True, exist_ok=True)
        self.jobs: queue.Queue = queue.Queue()
        self.seconds: list[float] = []  # per clip, for speed reports
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="prefrl-clips", daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, query_id: int, seg_a: Segments, seg_b: Segments) -> None:
        self.jobs.put((query_id, seg_a, seg_b))

    def _work(self) -> None:
        try:  # a GL context lives on the thread that made it, so the renderer is made here
            renderer = self.make_renderer()
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                break
            query_id, seg_a, seg_b = job
            try:
                names = []
                for side, seg in (("a", seg_a), ("b", seg_b)):
                    t0 = time.perf_counter()
                    name = f"q{query_id}_{side}.{self.fmt}"
                    renderer.write(seg, self.clip_dir / name)
                    self.seconds.append(time.perf_counter() - t0)
                    names.append(name)
                self.done(query_id, *names)
            except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the others
                self.failed(query_id, f"{exc.__class__.__name__}: {exc}")
            finally:
                self.jobs.task_done()
        renderer.close()

    def wait(self) -> None:
        """Block until every submitted pair is rendered."""
        self.jobs.join()

    def close(self) -> None:
        """Finish the queued pairs, then stop the thread."""
        self.jobs.put(None)
        self.thread.join()
