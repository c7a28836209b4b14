"""A small threaded HTTP server on 127.0.0.1 for tests of probes that use HTTP APIs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request the server received: method, path (with query) and body."""

    method: str
    path: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """What the handler returns: status, body and content type."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status=status, body=json.dumps(data).encode())


Handler = Callable[[Request], Response]


@dataclass
class LocalServer:
    """A real HTTP server on 127.0.0.1 at a free port, used as a context manager.

    ``handler`` maps each request to a response; ``requests`` records every request
    in arrival order. Leaving the ``with`` block stops the server and closes its
    socket.
    """

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        # A short poll interval lets shutdown() return quickly.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class _RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server requires
                self._answer(b"")

            def do_POST(self) -> None:  # noqa: N802 - the name http.server requires
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length))

            def _answer(self, body: bytes) -> None:
                request = Request(self.command, self.path, body)
                with owner._lock:
                    owner.requests.append(request)
                response = owner.handler(request)
                if response.delay_s and owner._stop.wait(response.delay_s):
                    return
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return _RequestHandler


def unused_url() -> str:
    """Return the URL of a port on 127.0.0.1 where nothing listens.

    The port comes from a server that was started and stopped, so a connection
    is refused unless another process took the port in between.
    """
    with LocalServer(lambda request: Response()) as server:
        url = server.url
    return url
