"""Human preferences: the label store, clips, the labelling server (API, security, concurrency, a hard kill),
a real headless Chromium on the page, and training with --teacher human."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scripted import FALL, steer

from prefrl.core.data import ComparisonDataset
from prefrl.human.clips import SegmentRenderer, write_clip
from prefrl.human.server import LabelServer
from prefrl.human.store import STORE_NAME, LabelStore, UnknownQuery
from prefrl.sb3.policies import record_demos


@pytest.fixture(scope="module")
def segments():
    """Segments of PointMassFall-v0 with MuJoCo states: some end in a fall (absorbing steps)."""
    wobbly = lambda o: steer(o) + np.random.default_rng(len(o)).normal(0, 0.8, (len(o), 2))  # noqa: E731
    buf = record_demos(FALL, wobbly, 6, seed=3).buffer()
    return buf.sample_segments(40, 20, np.random.default_rng(0))


def _store_with_queries(run, segments, n, clips=True):
    store = LabelStore(run / STORE_NAME)
    (run / "clips").mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        qid = store.add_query(segments[2 * i : 2 * i + 1], segments[2 * i + 1 : 2 * i + 2], env_step=100 * i, priority=i)
        if clips:
            for side in "ab":
                (run / "clips" / f"q{qid}_{side}.webm").write_bytes(b"\x1aE\xdf\xa3 not really a video")
            store.set_clips(qid, f"q{qid}_a.webm", f"q{qid}_b.webm")
        ids.append(qid)
    (run / "config.json").write_text(json.dumps({"labels": 10}))
    return store, ids


# ------------------------------------------------------------------ the store
def test_store_aggregates_annotators_into_soft_labels(tmp_path, segments):
    store, (q1, q2, q3) = _store_with_queries(tmp_path, segments, 3)
    for q in (q1, q2, q3):
        store._write("UPDATE queries SET answers_wanted = 2 WHERE id = ?", (q,))
    assert store.next_query("ann")["query_id"] == q3  # highest priority first
    store.answer(q1, "left", "ann")
    store.answer(q1, "right", "bob")
    store.answer(q2, "skip", "ann")
    store.answer(q2, "skip", "bob")
    store.answer(q3, "equal", "ann")
    store.answer(q3, "left", "ann")  # changed their mind: replaces, does not add
    assert store.counts() == {"rendering": 0, "pending": 1, "answered": 2, "failed": 0, "answers": 5}
    ds = store.dataset()
    assert len(ds) == 1 and ds.labels.tolist() == [0.5]  # left + right; q2 all skipped: no label
    assert ds.teachers[0] == "human:ann+bob"
    np.testing.assert_array_equal(ds.segments_a.obs[0], segments.obs[0])
    assert store.next_query("ann") is None and store.next_query("cat")["query_id"] == q3
    with pytest.raises(UnknownQuery):
        store.answer(999, "left", "ann")
    with pytest.raises(ValueError, match="answer must be one of left, right, equal, skip, got 'up'"):
        store.answer(q3, "up", "ann")
    # export -> import round trip into another run's store
    ds.save(tmp_path / "c.npz")
    other = LabelStore(tmp_path / "other" / STORE_NAME)
    assert other.import_dataset(ComparisonDataset.load(tmp_path / "c.npz")) == 1
    assert other.dataset().labels.tolist() == [0.5]


def test_corrupt_store_is_refused(tmp_path):
    (tmp_path / STORE_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="corrupt or not a prefrl label store"):
        LabelStore(tmp_path / STORE_NAME)
    with pytest.raises(FileNotFoundError, match="no label store"):
        LabelStore(tmp_path / "nothing" / STORE_NAME, create=False)


# ------------------------------------------------------------------- clips
def test_clips_render_from_recorded_states(tmp_path, segments):
    renderer = SegmentRenderer(FALL, size=64)
    ended = int(np.argmax((segments.mask == 0).any(axis=1)))
    assert (segments.mask[ended] == 0).any(), "fixture should hold a segment that runs into a fall"
    frames = renderer.frames(segments, ended)
    assert frames.shape == (20, 64, 64, 3) and frames.dtype == np.uint8
    last_real = int(segments.mask[ended].sum()) - 1
    assert frames[-1].mean() < 0.5 * frames[last_real].mean()  # after the fall: dimmed
    path = renderer.write(segments, tmp_path / "c.webm", ended)
    import imageio.v2 as imageio

    assert sum(1 for _ in imageio.get_reader(path)) == 20  # (list() would trust its infinite len)
    write_clip(frames, tmp_path / "c.gif", renderer.fps)
    assert (tmp_path / "c.gif").read_bytes()[:3] == b"GIF"
    with pytest.raises(ValueError, match="CartPole-v1 is not a MuJoCo env"):
        SegmentRenderer("CartPole-v1")


# ------------------------------------------------------------------ the server
def _request(url, data=None, method=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def _post(base, obj, raw=None, headers=None):
    body = raw if raw is not None else json.dumps(obj).encode()
    return _request(base + "api/answer", body, "POST", {"Content-Type": "application/json", **(headers or {})})


@pytest.fixture
def served(tmp_path, segments):
    store, ids = _store_with_queries(tmp_path, segments, 3)
    server = LabelServer(tmp_path, port=0).start()
    yield server, store, ids, f"http://127.0.0.1:{server.port}/"
    server.shutdown()


def test_api_answers_and_bad_requests(served):
    server, store, ids, base = served
    status, ctype, body = _request(base)
    assert status == 200 and ctype.startswith("text/html") and b"Left is better" in body
    status, _, body = _request(base + "api/next?annotator=ann")
    nxt = json.loads(body)
    assert nxt["query"]["query_id"] == ids[-1] and nxt["counts"]["wanted"] == 10
    status, ctype, body = _request(base + f"clip/{ids[0]}/a")
    assert status == 200 and ctype == "video/webm" and body.startswith(b"\x1aE")
    assert _post(base, {"query_id": ids[0], "answer": "left", "annotator": "ann"})[0] == 200
    assert store.counts()["answered"] == 1
    bad = [
        (_post(base, None, raw=b"{not json"), 400),
        (_post(base, {"query_id": "1", "answer": "left", "annotator": "a"}), 400),
        (_post(base, {"query_id": ids[1], "answer": "sideways", "annotator": "a"}), 400),
        (_post(base, {"query_id": 12345, "answer": "left", "annotator": "a"}), 404),
        (_post(base, [1, 2]), 400),
        (_post(base, None, raw=b"x" * 20_000), 413),
        (_request(base + "api/next"), 400),
        (_request(base + "clip/12345/a"), 404),
        (_request(base + "clip/1/c"), 404),
        (_request(base + "clip/..%2F..%2Fconfig.json/a"), 404),
        (_request(base + "etc/passwd"), 404),
        (_request(base + "api/answer", b"{}", "PUT"), 405),
    ]
    for (status, _, body), expected in bad:
        assert status == expected, body
        assert "error" in json.loads(body)
    assert _request(base + "api/status")[0] == 200  # still serving
    assert store.counts()["answers"] == 1  # nothing bad was stored


def test_token_required_off_loopback(tmp_path, segments):
    _store_with_queries(tmp_path, segments, 1)
    server = LabelServer(tmp_path, host="0.0.0.0", port=0).start()
    try:
        assert server.token and f"token={server.token}" in server.url
        base = f"http://127.0.0.1:{server.port}/"
        assert _request(base + "api/status")[0] == 403
        assert _request(base + "api/status?token=wrong")[0] == 403
        assert _request(base + f"api/status?token={server.token}")[0] == 200
        assert _request(base + "api/status", headers={"X-Prefrl-Token": server.token})[0] == 200
        assert _post(base, {"query_id": 1, "answer": "left", "annotator": "a"})[0] == 403
    finally:
        server.shutdown()


def test_many_annotators_at_once_lose_and_duplicate_nothing(served):
    server, store, ids, base = served
    names = [f"annotator{i}" for i in range(24)]

    def work(name):
        codes = []
        for q in ids:
            for answer in ("left", "right"):  # each annotator answers every query twice: the second replaces
                codes.append(_post(base, {"query_id": q, "answer": answer, "annotator": name})[0])
        return codes

    with ThreadPoolExecutor(len(names)) as pool:
        codes = [c for cs in pool.map(work, names) for c in cs]
    assert codes == [200] * len(names) * len(ids) * 2
    assert store.counts()["answers"] == len(names) * len(ids)
    assert store.annotators() == {n: len(ids) for n in names}
    assert store.dataset().labels.tolist() == [0.0] * len(ids)  # everyone's final answer was "right"


def test_a_killed_server_loses_no_answer(tmp_path, segments):
    store, ids = _store_with_queries(tmp_path, segments, 3)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "prefrl", "label", "serve", "--run", str(tmp_path),
                             "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}/"
        _wait_until_up(base)
        for i, q in enumerate(ids):
            for who in ("a", "b"):
                assert _post(base, {"query_id": q, "answer": "left", "annotator": f"{who}{i}"})[0] == 200
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert LabelStore(tmp_path / STORE_NAME).counts()["answers"] == 2 * len(ids)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(base, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if _request(base + "api/status")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server at {base} did not come up")


# ----------------------------------------------------------- a real browser
def _in_ci():
    """CI=true (as .ci/run and CI services set it): the browser test must run there, never be skipped."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(what):
    """Skip the browser test for lack of `what`, except under CI, where that is a failure (see the README)."""
    if _in_ci():
        pytest.fail(f"{what}, and CI=true: in CI the browser test must run, not be skipped",
                    pytrace=False)
    pytest.skip(what)


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing("Chromium is not installed here (.ci/run installs it for CI)")
    return path


@contextlib.contextmanager
def _page_in_chromium(run, segments, n):
    """A label store with `n` queries and real (tiny) clips, its server, and a headless Chromium on the page.

    Yields (page, store, ids); the browser and the server are closed afterwards.
    """
    try:
        from playwright import sync_api
    except ImportError:
        _missing("Playwright is not installed (the [dev] extra)")
    chromium = _chromium()
    store, ids = _store_with_queries(run, segments, n, clips=False)
    renderer = SegmentRenderer(FALL, size=96)
    for q in ids:
        a, b = store.segments(q)
        renderer.write(a, run / "clips" / f"q{q}_a.webm")
        renderer.write(b, run / "clips" / f"q{q}_b.webm")
        store.set_clips(q, f"q{q}_a.webm", f"q{q}_b.webm")
    server = LabelServer(run, port=0).start()
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required"]
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=flags, headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.port}/")
            yield page, store, ids
            browser.close()
    finally:
        server.shutdown()


def _shown(page):
    return page.evaluate("() => document.querySelector('#slot-a video')?.src ?? null")


def _alices_answers(store):
    return dict(store._conn().execute("SELECT query_id, answer FROM answers WHERE annotator = 'alice'"))


def test_page_in_headless_chromium(tmp_path, segments):
    with _page_in_chromium(tmp_path, segments, 2) as (page, store, ids):
        # typed, then straight to an answer: the name counts as it is typed (no blur/Enter needed),
        # so the first click is not lost (Playwright's click waits for the button to be enabled)
        page.type("#annotator", "alice")
        page.wait_for_selector("#slot-a video")
        first = _shown(page)
        page.click("#left")
        page.wait_for_function(f"() => document.querySelector('#slot-a video') && "
                               f"document.querySelector('#slot-a video').src !== {json.dumps(first)}")
        assert "1 labelled" in page.inner_text("#counts") and "1 waiting" in page.inner_text("#counts")
        # the clip really plays: its clock advances
        page.wait_for_function("() => { const v = document.querySelector('#slot-a video'); "
                               "return v && v.readyState >= 2 && v.currentTime > 0; }", timeout=15000)
        page.keyboard.press("ArrowRight")  # by keyboard
        page.wait_for_function("() => document.getElementById('counts').textContent.startsWith('2 labelled')")
    assert _alices_answers(store) == {ids[1]: "left", ids[0]: "right"}  # most urgent (highest priority) first


def test_page_drops_a_reply_that_is_older_than_an_answer(tmp_path, segments):
    """A slow reply to a request made before an answer (here: one the name box's edit set off) must not bring
    the answered pair back, where the next key press would overwrite its answer instead of labelling a new pair."""
    with _page_in_chromium(tmp_path, segments, 3) as (page, store, ids):
        page.type("#annotator", "alice")
        page.wait_for_selector("#slot-a video")
        first = _shown(page)
        held = []  # the one request to /api/next that is answered late, with the reply it got in time

        def hold_first(route):
            if held:
                route.continue_()
            else:
                held.append((route, route.fetch()))

        page.route("**/api/next*", hold_first)
        page.fill("#annotator", "alice")  # an edit of the name: the page reloads its pair after a pause
        for _ in range(100):  # until that reload's request is held
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the name box's edit did not reload the pair"
        page.click("#left")
        page.wait_for_function(f"() => (document.querySelector('#slot-a video')?.src ?? {json.dumps(first)})"
                               f" !== {json.dumps(first)}")
        second = _shown(page)
        route, reply = held[0]
        route.fulfill(response=reply)  # the old reply, which still offers the pair just answered
        page.wait_for_timeout(500)
        assert _shown(page) == second, "a late reply brought back the pair that was just answered"
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.getElementById('counts').textContent.startsWith('2 labelled')")
    assert _alices_answers(store) == {ids[2]: "left", ids[1]: "right"}


# ------------------------------------------------------- training with people
class _Person:
    """A simulated annotator: answers every query it is shown through the page's API, by true return.

    It works in a thread, where a failed `assert` would only end that thread (and leave the run waiting
    for answers until the test times out). So what goes wrong is recorded instead, the person keeps
    answering so the run can finish, and the `with` block's end checks it all in the test's thread:
    the thread stopped, nothing went wrong, and every answer the server accepted is in the label store.
    """

    def __init__(self, run, port, name="pat"):
        self.run, self.base, self.name = run, f"http://127.0.0.1:{port}/", name
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.errors = []  # what went wrong, in words
        self.accepted = []  # (query id, answer) the server answered 200 to

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop.set()
        self.thread.join(timeout=30)
        if exc_type is not None:  # the test already failed: don't hide why
            return False
        assert not self.thread.is_alive(), "the simulated person did not stop within 30 s"
        assert not self.errors, "the simulated person saw:\n" + "\n".join(self.errors[:10])
        assert self.accepted, "the simulated person answered nothing"
        stored = LabelStore(self.run / STORE_NAME).annotators().get(self.name, 0)
        assert stored == len({q for q, _ in self.accepted}), (
            f"the server accepted {len(self.accepted)} answers from {self.name}, the store holds {stored}")
        return False

    def _work(self):
        while not self.stop.is_set():
            try:
                if not self._answer_one():
                    time.sleep(0.2)
            except Exception as exc:  # noqa: BLE001 - recorded, checked in the test's thread
                self.errors.append(f"{exc.__class__.__name__}: {exc}")
                time.sleep(0.2)

    def _answer_one(self):
        """Answer the next query, if there is one; False if there was nothing to answer (or no server)."""
        try:
            status, _, body = _request(self.base + f"api/next?annotator={self.name}")
        except OSError:  # the run's server is not up yet, or has stopped
            return False
        if status != 200:
            self.errors.append(f"GET api/next gave HTTP {status}: {body[:200]!r}")
            return False
        q = json.loads(body).get("query")
        if q is None:
            return False
        if any(q["query_id"] == done for done, _ in self.accepted):  # its answer was accepted, then lost
            self.errors.append(f"query {q['query_id']} was shown again after the server accepted its answer")
        try:
            clip_status = _request(self.base + q["clip_a"])[0]
        except OSError:
            return False
        if clip_status != 200:  # the clip must exist before the query is shown
            self.errors.append(f"query {q['query_id']} was shown, but GET {q['clip_a']} gave HTTP {clip_status}")
        a, b = LabelStore(self.run / STORE_NAME).segments(q["query_id"])
        answer = "left" if a.true_returns()[0] >= b.true_returns()[0] else "right"
        try:
            status, _, body = _post(self.base, {"query_id": q["query_id"], "answer": answer, "annotator": self.name})
        except OSError:
            return False
        if status == 200:
            self.accepted.append((q["query_id"], answer))
        else:
            self.errors.append(f"answering query {q['query_id']} gave HTTP {status}: {body[:200]!r}")
        return True


def test_training_with_a_human_teacher(tmp_path):
    """A simulated person answers through the page's API while the run trains; the run waits for
    --min-labels answers, keeps training on what it has, and every answer ends up in the labels."""
    from prefrl.runs.cli import main

    run, port = tmp_path / "run", _free_port()
    with _Person(run, port):
        assert main(["train", "--env", FALL, "--teacher", "human", "--labels", "8", "--min-labels", "3",
                     "--steps", "3000", "--segment-len", "20", "--evals", "1", "--eval-episodes", "2",
                     "--serve", "--port", str(port), "--out", str(run), "--no-progress"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    store = LabelStore(run / STORE_NAME)
    assert m["teacher"] == "human" and m["labels"] == 8
    assert m["labels_answered"] >= 3
    state = json.loads((run / "pref_state.json").read_text())
    assert state["fit_reports"] and state["fit_reports"][0]["pairs"] >= 3  # waited for --min-labels
    assert store.counts()["rendering"] == 0  # every clip rendered
    assert len(ComparisonDataset.load(run / "comparisons.npz")) <= len(store.dataset())
    status = subprocess.run([sys.executable, "-m", "prefrl", "label", "status", "--run", str(run)],
                            capture_output=True, text=True, check=True)
    counts = json.loads(status.stdout)
    assert counts["annotators"]["pat"] == counts["answers"] >= 3 and counts["labels_wanted"] == 8


def test_human_teacher_on_a_non_mujoco_env_uses_render_frames(tmp_path):
    from scripted import LineWalk

    from prefrl.runs.cli import main

    env_id = LineWalk.register()
    run, port = tmp_path / "run", _free_port()
    with _Person(run, port):
        assert main(["train", "--env", env_id, "--teacher", "human", "--labels", "6", "--min-labels", "2",
                     "--steps", "2048", "--segment-len", "10", "--evals", "1", "--eval-episodes", "1",
                     "--serve", "--port", str(port), "--out", str(run), "--no-progress"]) == 0
    store = LabelStore(run / STORE_NAME)
    counts = store.counts()
    assert counts["answered"] >= 2 and counts["failed"] == 0 and counts["rendering"] == 0
    clip = run / "clips" / store.clip(1, "a")
    import imageio.v2 as imageio

    frames = [f for f in imageio.get_reader(clip)]
    assert len(frames) == 10 and frames[0].shape[:2] == (32, 64)  # the env's own render() frames


def test_bad_human_arguments(tmp_path, capsys):
    from prefrl.runs.cli import main

    cases = [
        (["--env", FALL, "--teacher", "human", "--min-labels", "6"], "min_labels=6 is more than the label budget (5)"),
        (["--env", FALL, "--min-labels", "5"], "expected 0, or a positive number with --teacher human"),
        (["--env", FALL, "--serve"], "add --teacher human"),
    ]
    for extra, message in cases:
        assert main(["train", "--out", str(tmp_path / "r"), "--labels", "5", "--no-progress", *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["label", "status", "--run", str(tmp_path / "nothing")]) == 2
    assert "no label store" in capsys.readouterr().err
    assert main(["label", "serve", "--run", str(tmp_path / "nothing")]) == 2
    assert "has no label store" in capsys.readouterr().err


def test_labelling_benchmark_smoke(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import labelling

    assert labelling.main(["--env", FALL, "--clips", "1", "--horizon", "10", "--size", "48", "--annotators", "1,3",
                           "--answers", "4", "--results-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "labelling.json").read_text())
    assert result["clips"]["seconds_per_clip_webm"] > 0
    assert [r["stored"] for r in result["answers"]] == [4, 12]
    assert "| 3 | 12 |" in (tmp_path / "labelling.md").read_text()
