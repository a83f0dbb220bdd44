"""A webhook receiver on loopback that verifies every request's signature, as an applicant tracking system would."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


class Receiver:
    """A webhook endpoint on loopback: verifies each request's signature and records it.

    `answers` is a queue of what to answer next: an HTTP status, or seconds to sleep (a timeout).
    """

    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret
        self.got: list[Got] = []
        self.unverified: list[str] = []
        self.answers: list[int | float] = []
        self._lock = threading.Lock()
        self.server = ReceiverServer(("127.0.0.1", port), Handler)
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/replybridge"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_answer(self) -> int | float:
        with self._lock:
            return self.answers.pop(0) if self.answers else 200

    def events(self, event_type: str | None = None) -> list[Got]:
        assert not self.unverified, self.unverified
        return [g for g in self.got if event_type is None or g.body["type"] == event_type]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Got:
    """One request the receiver verified, and what it answered."""

    event_id: str
    body: dict
    answered: int


class Handler(BaseHTTPRequestHandler):
    server: ReceiverServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        receiver = self.server.receiver
        try:
            payload = Verifier(receiver.secret).verify(body, dict(self.headers.items()))
        except WebhookVerificationError as err:
            receiver.unverified.append(str(err))
            self._answer(401)
            return
        answer = receiver.next_answer()
        if isinstance(answer, float):  # sleep past the deliverer's timeout, then answer too late
            time.sleep(answer)
            answer = 200
        receiver.got.append(Got(self.headers["webhook-id"], payload, answer))
        self._answer(answer)

    def _answer(self, code: int) -> None:
        try:
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if code < 300 else b"no")
        except (BrokenPipeError, ConnectionResetError):  # the deliverer timed out and hung up
            pass

    def log_message(self, *args: object) -> None:
        pass


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the deliverers open up to 16 connections at once
    receiver: Receiver
