"""The web pages and API (uvicorn) on the web_host and web_port settings, in a thread of its own
with its own event loop; page functions run in uvicorn's thread pool."""

from __future__ import annotations

import threading

from sqlalchemy.engine import Engine

from bridge.config.settings import current
from bridge.errors import ConfigError


class WebServer:
    """`start()` returns once the port listens (or raises ConfigError); `stop()` lets requests finish."""

    def __init__(self, eng: Engine) -> None:
        import uvicorn  # the web stack loads only where pages are served

        from bridge.web.app import create_app  # (likewise)

        settings = current()
        self.host, self.port = settings.web_host, settings.web_port
        trusted = settings.web_trusted_proxies.strip()  # e.g. 127.0.0.1 behind nginx
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
