"""Who is looking: a signed-in session (cookie) or a bearer key, and the CSRF check.

A session is a random id in an HttpOnly, SameSite=Strict cookie that names an entry
held in this process's memory: the API key's token (the key is checked again on every
request, so a revoked key signs its sessions out at once), the session's CSRF token
(every form carries it; every POST is checked against it) and its times. Nothing about
the session is in the cookie but its id. Sessions end on sign-out, after
``IDLE`` seconds without a request, ``LIFETIME`` seconds after sign-in, or when the
process restarts (then the person signs in again).

A request with ``Authorization: Bearer <key>`` (a script) needs no session and no CSRF
token: a browser never adds that header by itself, so another site cannot forge it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import Request

from callgate.domain import ApiKey
from callgate.gateway import Gateway

COOKIE = "callgate_session"
#: a session ends after this long without a request, and this long after sign-in
IDLE, LIFETIME = 8 * 3600.0, 24 * 3600.0
#: at most this many sessions at once (the oldest goes first)
MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    """The signed-in sessions of this process."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(token)
        with self._lock:
            while len(self._by_id) >= MAX_SESSIONS:
                self._by_id.pop(next(iter(self._by_id)))
            self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_id.get(sid)
            if session is None:
                return None
            if now - session.seen > IDLE or now - session.created > LIFETIME:
                del self._by_id[sid]
                return None
            session.seen = now
            return session

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


@dataclass
class Viewer:
    """The person (or script) looking, and how they proved it."""

    key: ApiKey
    session: Session | None  # None: a bearer key, no session (and no CSRF token needed)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""

    def say(self, message: str, level: str = "info") -> None:
        """A message for the next page this session sees (after a redirect)."""
        if self.session is not None:
            self.session.flash.append((level, message))

    def said(self) -> list[tuple[str, str]]:
        if self.session is None:
            return []
        out, self.session.flash[:] = list(self.session.flash), []
        return out


class SignInRequired(Exception):
    """No valid session or key: a browser goes to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Unauthorized(Exception):
    """A bearer key that is unknown or revoked (a script: 401, not a redirect)."""


class CsrfRejected(Exception):
    """A form without this session's CSRF token (or sent from another origin)."""


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.dashboard_sessions
    return found


def signin_url(next_path: str) -> str:
    return "/dashboard/signin?next=" + quote(next_path, safe="/")


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a dashboard page of this server, nothing else."""
    if not raw or not raw.startswith("/dashboard") or raw.startswith("//") or "\\" in raw:
        return "/dashboard"
    return raw


async def viewer(request: Request) -> Viewer:
    """The dependency of every page: the viewer, or SignInRequired / Unauthorized."""
    gw: Gateway = request.app.state.gateway
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        key = await gw.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            raise Unauthorized()
        return Viewer(key, None)
    sid = request.cookies.get(COOKIE)
    session = sessions(request).get(sid)
    if session is not None:
        key = await gw.authenticate(session.token)
        if key is not None:
            return Viewer(key, session)
        sessions(request).end(sid)  # the key was revoked: so is the session
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise SignInRequired(target)


def same_origin(request: Request) -> None:
    """A POST a browser sent from another site (its ``Origin``) is refused."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise CsrfRejected()


def check_csrf(request: Request, who: Viewer, sent: str | None) -> None:
    """Every POST of a session carries its CSRF token, and comes from this origin."""
    same_origin(request)
    if who.session is None:
        return  # a bearer key: no ambient credential to forge
    if not sent or not hmac.compare_digest(sent, who.session.csrf):
        raise CsrfRejected()
