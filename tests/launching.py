"""Start the studio's app on a free local port for a test, and close it afterwards."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(factory: Any = None, **settings: Any) -> Iterator[str]:
    """The app (or what `factory` builds) launched with `Settings(**settings)` on a free port;
    yields its URL (no slash at the end)."""
    from app import Settings, create_app, launch

    demo = launch(
        Settings(port=free_port(), **settings),
        prevent_thread_lock=True,
        factory=factory or create_app,
    )
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()
