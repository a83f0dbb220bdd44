"""The web pages and API (uvicorn) on REPLYBRIDGE_WEB_HOST:REPLYBRIDGE_WEB_PORT, in a thread of its own
with its own event loop; page functions run in uvicorn's thread pool."""

from __future__ import annotations

import os
import threading

from sqlalchemy.engine import Engine

from bridge.errors import ConfigError


class WebServer:
    """`start()` returns once the port listens (or raises ConfigError); `stop()` lets requests finish."""

    def __init__(self, eng: Engine) -> None:
        import uvicorn  # the web stack loads only where pages are served

        from bridge.web.app import create_app  # (likewise)

        self.host = os.environ.get("REPLYBRIDGE_WEB_HOST", "127.0.0.1")
        port = os.environ.get("REPLYBRIDGE_WEB_PORT", "8025")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REPLYBRIDGE_WEB_PORT={port!r} is not a port number")
        self.port = int(port)
        trusted = os.environ.get("REPLYBRIDGE_WEB_TRUSTED_PROXIES", "").strip()  # e.g. 127.0.0.1 behind nginx
        config = uvicorn.Config(create_app(eng), host=self.host, port=self.port, log_level="warning",
                                access_log=False, proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
                                server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="rb-web", daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise ConfigError(f"the web server could not listen on {self.host}:{self.port} (port in use?)")
            self.thread.join(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
