"""`prefrl label serve`: the labelling web page and its small JSON API, on the standard library's HTTP server.

    GET  /                     the page (two looping clips, left / right / equal / skip, keyboard shortcuts)
    GET  /api/next?annotator=N the most urgent query N has not answered, and the counts
    GET  /api/status           queries by status, answers per annotator, labels still wanted
    GET  /clip/<id>/<a|b>      a clip, found by query id only (no path ever comes from the request)
    POST /api/answer           {"query_id": int, "answer": "left|right|equal|skip", "annotator": str}

Every answer is committed to the run's label store before the response is sent. Binding an
address other than loopback requires an access token, which every request must then carry
(`?token=...` or the `X-Prefrl-Token` header). Malformed requests, unknown ids and bodies over
16 KiB get a 4xx and the server keeps serving.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prefrl.human.store import STORE_NAME, LabelStore, UnknownQuery

# The page ships as package data beside this module (pyproject's package-data).
PAGE = (resources.files("prefrl.human") / "page.html").read_text(encoding="utf-8")

MAX_BODY = 16 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CLIP_NAME = re.compile(r"^q\d+_[ab]\.(webm|gif)$")
_CLIP_PATH = re.compile(r"^/clip/(\d{1,12})/([ab])$")
_TYPES = {".webm": "video/webm", ".gif": "image/gif"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many annotators connecting at once must queue, not be reset


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def labels_wanted(run_dir: Path) -> int | None:
    """The run's label budget, from its config.json (None if unknown)."""
    try:
        return int(json.loads((run_dir / "config.json").read_text())["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LabelServer:
    """The labelling page of one run directory; `start()` serves on a thread, `serve_forever()` here."""

    def __init__(self, run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
        self.run_dir = Path(run_dir)
        if not (self.run_dir / STORE_NAME).is_file():
            raise FileNotFoundError(f"{self.run_dir} has no label store ({STORE_NAME}): start the run with "
                                    f"--teacher human first")
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.store = LabelStore(self.run_dir / STORE_NAME, create=False)
        self.clip_dir = (self.run_dir / "clips").resolve()
        if host not in LOOPBACK and not token:
            token = secrets.token_urlsafe(18)  # any other address: never without a token
        self.token = token
        self.httpd = _Server((host, int(port)), _handler(self))
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> LabelServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="prefrl-label-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ API
    def counts(self) -> dict[str, Any]:
        counts = self.store.counts()
        wanted = labels_wanted(self.run_dir)
        counts["wanted"] = None if wanted is None else max(wanted - counts["answered"], 0)
        return counts

    def next_query(self, annotator: str) -> dict[str, Any]:
        q = self.store.next_query(annotator)
        query = None if q is None else {**q, "clip_a": f"/clip/{q['query_id']}/a", "clip_b": f"/clip/{q['query_id']}/b"}
        return {"query": query, "counts": self.counts()}

    def answer(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        qid, answer, annotator = data.get("query_id"), data.get("answer"), data.get("annotator")
        if isinstance(qid, bool) or not isinstance(qid, int):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"query_id must be an integer, got {qid!r}")
        if not isinstance(answer, str) or not isinstance(annotator, str):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "answer and annotator must be strings")
        try:
            self.store.answer(qid, answer, annotator.strip())
        except UnknownQuery as exc:
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"no query {qid} is open for answers") from exc
        except ValueError as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        return {"ok": True, "counts": self.counts()}

    def clip_path(self, query_id: int, side: str) -> Path:
        try:
            name = self.store.clip(query_id, side)
        except UnknownQuery as exc:
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"no query {query_id}") from exc
        if not name or not _CLIP_NAME.match(name):
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"query {query_id} has no clip yet")
        path = (self.clip_dir / name).resolve()
        if path.parent != self.clip_dir or not path.is_file():
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"clip of query {query_id} is missing")
        return path


def _handler(server: LabelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "prefrl-label"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: one line per answer is noise
            pass

        def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: HTTPStatus, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _authorized(self, query: dict[str, list[str]]) -> bool:
            if not server.token:
                return True
            given = self.headers.get("X-Prefrl-Token") or (query.get("token") or [""])[0]
            return hmac.compare_digest(given.encode(), server.token.encode())

        def _dispatch(self, method: str) -> None:
            try:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if not self._authorized(query):
                    raise _BadRequest(HTTPStatus.FORBIDDEN, "missing or wrong access token")
                if method == "POST":
                    if parts.path != "/api/answer":
                        raise _BadRequest(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {parts.path}")
                    length = self.headers.get("Content-Length")
                    if length is None or not length.isdigit():
                        raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
                    if int(length) > MAX_BODY:
                        self.close_connection = True  # the body is not read
                        raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
                    self._json(HTTPStatus.OK, server.answer(self.rfile.read(int(length))))
                elif parts.path == "/":
                    self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
                elif parts.path == "/api/next":
                    annotator = (query.get("annotator") or [""])[0].strip()
                    if not annotator:
                        raise _BadRequest(HTTPStatus.BAD_REQUEST, "annotator is required")
                    self._json(HTTPStatus.OK, server.next_query(annotator))
                elif parts.path == "/api/status":
                    self._json(HTTPStatus.OK, {**server.counts(), "annotators": server.store.annotators()})
                elif m := _CLIP_PATH.match(parts.path):
                    path = server.clip_path(int(m.group(1)), m.group(2))
                    self._send(HTTPStatus.OK, path.read_bytes(), _TYPES[path.suffix])
                else:
                    raise _BadRequest(HTTPStatus.NOT_FOUND, f"no such page: {parts.path}")
            except _BadRequest as exc:
                self._json(exc.status, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - the server keeps serving whatever one request does
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{exc.__class__.__name__}: {exc}"})

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET or POST"})

        do_DELETE = do_PATCH = do_PUT

    return Handler
