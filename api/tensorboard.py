"""TensorBoard of every training run, served by the app's own server under ``/tensorboard/``.

TensorBoard's WSGI application runs in-process (no second port, no subprocess): it is built on
the first request, with the workspace's ``runs/`` as its log directory (each run writes
``RUN_DIR/tensorboard/``), and answers through a2wsgi's WSGI-to-ASGI bridge. The mount sits
behind the same access policy as the other custom routes.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import AccessPolicy, is_authorized

PREFIX = "/tensorboard"
RELOAD_SECONDS = 5  # how often TensorBoard rescans the runs for new event files

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def tensorboard_wsgi(logdir: Path, path_prefix: str = PREFIX) -> Callable:
    """TensorBoard's WSGI app over `logdir` (in-process event loading, no data server)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing.data_ingester import LocalDataIngester
    from tensorboard.program import TensorBoard

    board = TensorBoard()
    board.configure(
        argv=[
            "tensorboard",
            "--logdir",
            str(logdir),
            "--path_prefix",
            path_prefix,
            "--load_fast",
            "false",
            "--reload_interval",
            str(RELOAD_SECONDS),
            "--window_title",
            "Whisper Studio runs",
        ],
    )
    ingester = LocalDataIngester(board.flags)
    ingester.start()  # a daemon thread rescans `logdir` every RELOAD_SECONDS
    return application.TensorBoardWSGIApp(
        board.flags,
        board.plugin_loaders,
        ingester.data_provider,
        board.assets_zip_provider,
        ingester.deprecated_multiplexer,
    )


class TensorBoardMount:
    """An ASGI app for ``app.mount(PREFIX, ...)``: checks access, then hands the request to
    TensorBoard, built once on first use. TensorBoard strips `PREFIX` itself (its
    ``--path_prefix``), so the mount's root path is handed back to it in the request path."""

    def __init__(self, policy: AccessPolicy, logdir: Callable[[], Path]) -> None:
        self.policy = policy
        self.logdir = logdir
        self._bridge: Callable | None = None
        self._lock = threading.Lock()

    def _app(self) -> Callable:
        with self._lock:
            if self._bridge is None:
                from a2wsgi import WSGIMiddleware

                self._bridge = WSGIMiddleware(tensorboard_wsgi(self.logdir()))
            return self._bridge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not is_authorized(self.policy, Request(scope)):
            reply = JSONResponse(
                {"detail": "missing or invalid API key"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await reply(scope, receive, send)
            return
        root = scope.get("root_path", "")
        outer = root[: -len(PREFIX)] if root.endswith(PREFIX) else root
        from starlette.concurrency import run_in_threadpool

        bridge = self._bridge or await run_in_threadpool(self._app)
        await bridge({**scope, "root_path": outer}, receive, send)


def mount_tensorboard(app: FastAPI, policy: AccessPolicy) -> None:
    """Serve TensorBoard over the workspace's runs/ at ``PREFIX/`` (built on first request)."""

    def runs() -> Path:
        from utils.workspace import get_workspace

        return get_workspace().runs

    app.mount(PREFIX, TensorBoardMount(policy, runs))
