"""For the provider tests: ``callgate simulator`` in a subprocess, and a local HTTP server
that receives its status callbacks.

:class:`~callgate.testing.SimProcess` starts the real command on a free port
(``--port 0``) and reads the bound port and Telnyx public key from its first stdout line.
:class:`Receiver` records every POST it gets; tests wait for the callbacks they expect
with :meth:`Receiver.wait_for` (a condition variable, not a sleep) and check them with
the parsing functions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from callgate.testing import SimProcess

SIM = {
    "twilio_account_sid": "ACsimulator",
    "twilio_auth_token": "simulator-auth-token",
    "signalwire_project_id": "simulator-project",
    "signalwire_api_token": "simulator-api-token",
    "signalwire_signing_key": "simulator-signing-key",
    "telnyx_api_key": "KEYsimulator",
}


SENDER = "+15005550006"


def vendor_env(sim: SimProcess, routes: dict[str, str]) -> dict[str, str]:
    env = {f"CALLGATE_PROVIDER_{kind.upper()}": vendor for kind, vendor in routes.items()}
    env |= {
        "CALLGATE_TWILIO_ACCOUNT_SID": SIM["twilio_account_sid"],
        "CALLGATE_TWILIO_AUTH_TOKEN": SIM["twilio_auth_token"],
        "CALLGATE_TWILIO_FROM": SENDER,
        "CALLGATE_TWILIO_BASE_URL": sim.url,
        "CALLGATE_SIGNALWIRE_PROJECT_ID": SIM["signalwire_project_id"],
        "CALLGATE_SIGNALWIRE_API_TOKEN": SIM["signalwire_api_token"],
        "CALLGATE_SIGNALWIRE_SIGNING_KEY": SIM["signalwire_signing_key"],
        "CALLGATE_SIGNALWIRE_SPACE_URL": sim.url,
        "CALLGATE_SIGNALWIRE_FROM": SENDER,
        "CALLGATE_TELNYX_API_KEY": SIM["telnyx_api_key"],
        "CALLGATE_TELNYX_CONNECTION_ID": "sim",
        "CALLGATE_TELNYX_FROM": SENDER,
        "CALLGATE_TELNYX_BASE_URL": f"{sim.url}/v2",
        "CALLGATE_TELNYX_PUBLIC_KEY": sim.telnyx_public_key,
    }
    return env


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers 204."""

    posts: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    receiver.posts.append(Received(self.path, dict(self.headers.items()), body))
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], what: str, timeout: float = 20.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout:.0f} s; got {self.posts}")
                self.changed.wait(left)
            return list(self.posts)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
