"""The stand-in's HTTP layer: a threading server with keep-alive connections that hands
each request to the stand-in and writes its answer as Twilio's JSON."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.standin.server import TwilioStandin

logger = logging.getLogger("app.standin.twilio_server")


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close() once their sockets are shut down
    # socketserver's default backlog is 5: a burst of new connections beyond it had its
    # SYNs dropped and retried by the kernel a second later, so those creates arrived
    # (and were counted) together with the next second's.
    request_queue_size = 128
    standin: TwilioStandin

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("Stand-in connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one thread per connection, not per request
    disable_nagle_algorithm = True
    timeout = 60.0  # an idle keep-alive connection is closed after this
    server_version = "TwilioStandin/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.standin._track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.standin._handle(method, self.path, self.headers, body)
        if answer is None:
            self.close_connection = True
            return
        data = json.dumps(answer.body).encode() if answer.body is not None else b""
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """The base class writes every request to stderr; the benchmark makes 100,000."""
