"""Access control for the project's own HTTP and WebSocket routes, in one place.

Keys come from ``WHISPER_STUDIO_API_KEYS`` (comma-separated) and/or the file named by
``WHISPER_STUDIO_API_KEYS_FILE`` (one key per line). A request proves access with
``Authorization: Bearer KEY``, a ``token`` query parameter (browsers cannot set headers on
WebSockets), or the session cookie of a user logged in through Gradio's ``--auth`` login.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request, WebSocket, status

KEYS_ENV = "WHISPER_STUDIO_API_KEYS"
KEYS_FILE_ENV = "WHISPER_STUDIO_API_KEYS_FILE"


def read_api_keys(environ: dict[str, str] | None = None) -> frozenset[str]:
    """Keys from the environment variable and the key file; blank lines and # comments skipped."""
    environ = dict(os.environ) if environ is None else environ
    keys = {key.strip() for key in environ.get(KEYS_ENV, "").split(",")}
    key_file = environ.get(KEYS_FILE_ENV)
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise FileNotFoundError(f"{KEYS_FILE_ENV} names {path}, which does not exist")
        keys.update(line.strip() for line in path.read_text().splitlines())
    return frozenset(key for key in keys if key and not key.startswith("#"))


@dataclass(frozen=True)
class AccessPolicy:
    """Who may call the custom routes. `required` is False only for an open local app."""

    api_keys: frozenset[str] = frozenset()
    required: bool = False

    @classmethod
    def for_launch(
        cls, *, password_auth: bool, share: bool, keys: frozenset[str] | None = None
    ) -> AccessPolicy:
        """Keys from the environment; access is required with keys, ``--auth`` or ``--share``.
        A shared app without keys gets a fresh random key, so its routes are never open."""
        keys = read_api_keys() if keys is None else keys
        if share and not keys and not password_auth:
            keys = frozenset({secrets.token_urlsafe(24)})
        return cls(api_keys=keys, required=bool(keys) or password_auth or share)

    def key_matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in self.api_keys)


def _presented_key(headers, query_params) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential:
        return credential.strip()
    return query_params.get("token")


def _gradio_user(connection: Request | WebSocket) -> str | None:
    """The user Gradio's own login put in the session cookie, if any."""
    app = connection.app
    cookie_id = getattr(app, "cookie_id", None)
    tokens = getattr(app, "tokens", None)
    if cookie_id is None or not tokens:
        return None
    cookie = connection.cookies.get(f"access-token-{cookie_id}") or connection.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    return tokens.get(cookie) if cookie else None


def is_authorized(policy: AccessPolicy, connection: Request | WebSocket) -> bool:
    if not policy.required:
        return True
    if policy.key_matches(_presented_key(connection.headers, connection.query_params)):
        return True
    return _gradio_user(connection) is not None


def http_guard(policy: AccessPolicy):
    """A FastAPI dependency that answers 401 to requests without valid credentials."""

    def guard(request: Request) -> None:
        if not is_authorized(policy, request):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid API key: send 'Authorization: Bearer KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard


async def websocket_guard(policy: AccessPolicy, websocket: WebSocket) -> bool:
    """Close an unauthorized WebSocket with code 1008 (policy violation); True if allowed."""
    if is_authorized(policy, websocket):
        return True
    await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="missing or invalid API key")
    return False
