"""The Playground's web server: a Starlette app around the tabs' sessions."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import json
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ._data import UPLOAD_BYTES, UPLOAD_ROWS
from ._session import Session
from ._state import CHOICES, DEFAULTS

STATIC = Path(__file__).parent / "static"

# A JSON request is a state or a session id: a few kilobytes at most.
JSON_BYTES = 64_000


class Sessions:
    """The open tabs' sessions, each with its own network.

    A tab's training happens only inside its requests, so a closed tab's
    training stops with its last request; its session is dropped after
    ``idle_seconds`` without one, or when ``max_sessions`` newer ones need
    the room.
    """

    def __init__(self, max_sessions=32, idle_seconds=900):
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._sessions = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now):
        while self._sessions:
            key, (session, used) = next(iter(self._sessions.items()))
            if (
                now - used < self.idle_seconds
                and len(self._sessions) <= self.max_sessions
            ):
                break
            del self._sessions[key]

    def get(self, key):
        """The session ``key``, or None when it is unknown or expired."""
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            entry = self._sessions.get(key) if isinstance(key, str) else None
            if entry is None:
                return None
            self._sessions[key] = (entry[0], now)
            self._sessions.move_to_end(key)
            return entry[0]

    def new(self):
        """A new session and its key."""
        key, session = secrets.token_hex(16), Session()
        with self._lock:
            self._sessions[key] = (session, time.monotonic())
            self._expire(time.monotonic())
        return key, session

    def drop(self, key):
        """Forget the session ``key`` (its tab was closed)."""
        with self._lock:
            entry = self._sessions.pop(key, None) if isinstance(key, str) else None
        return entry is not None

    def __len__(self):
        return len(self._sessions)


class _RequestError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


async def _body(request, limit):
    """The request's body, refused beyond ``limit`` bytes before it is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _RequestError(
            f"The request is {int(declared):,} bytes; at most {limit:,} are accepted.",
            413,
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _RequestError(
                f"The request is more than {limit:,} bytes; at most {limit:,} "
                "are accepted.",
                413,
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request):
    try:
        payload = json.loads(await _body(request, JSON_BYTES) or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _RequestError(f"The request is not valid JSON: {error}.") from None
    if not isinstance(payload, dict):
        raise _RequestError("The request must be a JSON object.")
    return payload


class _Api:
    """The page's requests, each answered from the tab's own session."""

    def __init__(self, sessions):
        self.sessions = sessions

    def _session(self, key, *, reset=True):
        session = self.sessions.get(key)
        if session is None:
            raise _RequestError(
                "This tab's network has expired; the page starts a new one.", 404
            )
        if reset and session.state is None:
            raise _RequestError("Reset the network first: it has no data yet.")
        return session

    @staticmethod
    async def _locked(session, method, *args):
        from starlette.concurrency import run_in_threadpool

        # Training runs in a worker thread, so the server keeps answering
        # other tabs; one tab's requests take turns.
        def call():
            with session.lock:
                return method(*args)

        return await run_in_threadpool(call)

    async def options(self, request):
        return {
            "defaults": DEFAULTS,
            "choices": CHOICES,
            "limits": {"upload_bytes": UPLOAD_BYTES, "upload_rows": UPLOAD_ROWS},
        }

    async def reset(self, request):
        payload = await _json(request)
        key = payload.get("session")
        session = self.sessions.get(key)
        if session is None:
            key, session = self.sessions.new()
        frame = await self._locked(session, session.reset, payload.get("state", {}))
        return {"session": key, **frame}

    async def step(self, request):
        payload = await _json(request)
        session = self._session(payload.get("session"))
        epochs = payload.get("epochs", 1)
        if not isinstance(epochs, int) or isinstance(epochs, bool):
            raise _RequestError(f"epochs={epochs!r} is not valid: expected an integer.")
        frame = await self._locked(session, session.step, epochs)
        return {"session": payload["session"], **frame}

    async def upload(self, request):
        session = self._session(request.query_params.get("session"), reset=False)
        data = await _body(request, UPLOAD_BYTES)
        name = Path(request.query_params.get("name", "data.csv")).name or "data.csv"
        return await self._locked(session, session.upload, data, name)

    async def export(self, request):
        session = self._session((await _json(request)).get("session"))
        return await self._locked(session, session.export)

    async def curve(self, request):
        session = self._session((await _json(request)).get("session"))
        return await self._locked(session, session.curve)

    async def close(self, request):
        # The page's "pagehide" beacon: the tab is gone, so is its network.
        return {"closed": self.sessions.drop((await _json(request)).get("session"))}


def create_app(*, max_sessions=32, idle_seconds=900):
    """Create the Playground's web application.

    An ASGI application (Starlette) that serves the page and its assets and
    trains one network per browser tab. ``skdnn-playground`` (or ``python -m
    skdnn.playground``) serves it with uvicorn; any ASGI server can.

    Parameters
    ----------
    max_sessions : int, default=32
        Most tabs with a network at once; the longest idle is dropped first.
    idle_seconds : float, default=900
        A tab's network is dropped after this long without a request.

    Returns
    -------
    app : starlette.applications.Starlette
        The application. Its ``state.sessions`` holds the tabs' sessions.

    Examples
    --------
    >>> from starlette.testclient import TestClient
    >>> from skdnn.playground import create_app
    >>> client = TestClient(create_app())
    >>> frame = client.post("/api/reset", json={"state": {"layers": [3]}}).json()
    >>> frame["epoch"], [column["kind"] for column in frame["columns"]]
    (0, ['input', 'hidden', 'output'])
    >>> client.post("/api/step", json={"session": frame["session"]}).json()["epoch"]
    1
    """
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def endpoint(handler):
        # Every answer is JSON; a bad request gets its message, never a trace.
        async def wrapped(request):
            try:
                return JSONResponse(await handler(request))
            except _RequestError as error:
                return JSONResponse({"error": str(error)}, status_code=error.status)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)

        return wrapped

    async def page(request):
        return FileResponse(STATIC / "index.html")

    sessions = Sessions(max_sessions=max_sessions, idle_seconds=idle_seconds)
    api = _Api(sessions)
    posts = ["reset", "step", "upload", "export", "curve", "close"]
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/options", endpoint(api.options)),
            *[
                Route(f"/api/{name}", endpoint(getattr(api, name)), methods=["POST"])
                for name in posts
            ],
            # Only the page's own files: StaticFiles refuses paths that leave
            # this directory.
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.state.sessions = sessions
    return app
