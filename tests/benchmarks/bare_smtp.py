"""The receive benchmark's baseline: a bare aiosmtpd server that stores nothing, in a process of its own.

`python -m tests.benchmarks.bare_smtp PORT` serves until its standard input closes, and prints how many
messages it took. Run as a process, like `serve`, so both stand on an interpreter of their own.
"""

from __future__ import annotations

import sys

from aiosmtpd.controller import Controller


class Sink:
    """Keeps only a count: the least an SMTP server built on aiosmtpd can do with a message."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd hook
        self.count += 1
        return "250 OK"


def main() -> None:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=int(sys.argv[1]), data_size_limit=0)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    print(sink.count, flush=True)


if __name__ == "__main__":
    main()
