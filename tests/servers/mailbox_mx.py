"""An MX in front of a test Dovecot: a real SMTP server (aiosmtpd) that files every message it accepts into a
folder of the Dovecot mailbox before it answers 250, as an MTA delivering to a catch-all mailbox does.

The loop probe's way back through a catch-all (an alias's SMTP account -> the domain's MX -> the catch-all
folder -> the bridge's poller) then runs against real servers; `folder` can be changed between messages, to
deliver where no poller looks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers.inbound import deliver
from tests.helpers.ports import free_port
from tests.servers.dovecot import Dovecot

HOST = "127.0.0.1"


@dataclass
class MailboxMx:
    """Where to connect, the folder it files into, and how many messages it filed."""

    mailbox: Dovecot
    folder: str
    host: str = HOST
    port: int = 0
    filed: int = 0
    _controller: Controller | None = field(default=None, repr=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's
        raw = envelope.original_content or b""
        await asyncio.get_running_loop().run_in_executor(None, deliver, self.mailbox, [raw], self.folder)
        self.filed += 1
        return f"250 2.0.0 filed into {self.folder}"

    def start(self) -> MailboxMx:
        self.port = free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port, server_hostname="mx.example.test")
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

