"""The receiver's SMTP session: aiosmtpd's, with its two costliest steps done in a fraction of the time.

- DATA: aiosmtpd reads a message a line at a time (an await, an append and a join per line), 1,300
  of them for 100 KB, most of a bare server's time. Here it is read up to each ".\\r\\n" at once (a
  line that ends in a full stop costs one more read) and dot-stuffing is undone with one replace. The
  answers are aiosmtpd's own: 552 past the size limit and 500 for a line over 1,000 octets, each only
  after the whole message has arrived (RFC 5321 4.2.5), so the session stays in step. (A message that
  is both gets 552 here; aiosmtpd answers for whichever it met first.)
- MAIL and RCPT: aiosmtpd reads every address with the email package's full RFC 5322 parser (and
  defines a class on each call). An address as senders write it, `<dot.atom@dot.atom>`, is read
  here with one pattern, to the same result; anything else still goes to aiosmtpd's parser.

Every 4xx and 5xx answer passes `push`, where it is counted and written as a `refused` step line (the code
and the words, addresses left out); a message answered so at its end is counted as received and refused.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiosmtpd.smtp import MISSING, SMTP

from bridge import metrics
from bridge.config import logs

log = logging.getLogger(__name__)

END = b"\r\n.\r\n"
MAX_LINE = 1001  # RFC 5321 4.5.3.1.6: 1,000 octets with the CRLF, as aiosmtpd counts them
READ_LIMIT = 256 * 1024  # how much a session buffers before it stops reading from the socket


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"[ \t]*<({_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*)>")


class DataTooLarge(Exception):
    """The message passed the size limit: 552, after the rest of it has been read and dropped."""


class LineTooLong(Exception):
    """A line of the message passed 1,000 octets: 500, as aiosmtpd answers it."""


async def read_data(reader: asyncio.StreamReader, size_limit: int | None) -> bytes:
    """The message up to the lone dot, dot-stuffing undone; the bytes otherwise exactly as sent.

    The buffer starts with the DATA command's CRLF, so every line of the message follows a CRLF: the
    end is the buffer ending in CRLF "." CRLF, wherever the reads fell, and a dot starting a line is
    always one that follows a CRLF.
    """
    data = bytearray(b"\r\n")
    dropped = 0  # bytes read and thrown away once the message is over the limit
    while not data.endswith(END):
        try:
            data += await reader.readuntil(b".\r\n")
        except asyncio.LimitOverrunError as err:  # no full stop in the buffer yet: take what cannot hold the end
            data += await reader.read(err.consumed)
        if size_limit and len(data) > len(END) and dropped + len(data) - len(END) > size_limit:
            dropped += len(data) - len(END)  # over the limit whatever follows: keep only what may end it
            del data[:-len(END)]
    if dropped:
        raise DataTooLarge
    if len(data) > MAX_LINE and max(map(len, data.split(b"\r\n"))) > MAX_LINE - 2:
        raise LineTooLong
    body = bytes(data[:-3])  # the CRLF in front of the dot ends the message's last line
    if b"\r\n." in body:
        body = body.replace(b"\r\n.", b"\r\n")
    return body[2:]


class ReceiverSession(SMTP):
    """aiosmtpd's SMTP session with `smtp_DATA` reading in bulk; every other command is aiosmtpd's."""

    # The stream reader's limit: how much one read may return. Command lines keep aiosmtpd's own
    # limit (command_size_limit), and DATA lines MAX_LINE, both checked after reading.
    line_length_limit = READ_LIMIT

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """(address, the rest of the argument), as aiosmtpd's own reads it."""
        plain = _PLAIN_ADDRESS.match(arg) if arg else None
        rest = arg[plain.end():] if plain else ""
        if plain is None or "(" in rest:  # a comment after the address: the full parser drops it
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and address.rindex("@") > self.local_part_limit:
            return None, None
        return address, rest.lstrip() if rest[:1] in (" ", "\t") else rest

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, self.data_size_limit)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        except (DataTooLarge, LineTooLong) as err:
            self._set_post_data_state()
            metrics.received("smtp", "refused")
            await self.push("552 Error: Too much mail data" if isinstance(err, DataTooLarge)
                            else "500 Line too long (see RFC5321 4.5.3.1.6)")
            return
        self.envelope.original_content = content
        self.envelope.content = content.decode("utf-8", "surrogateescape") if self._decode_data else content
        status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
        self._set_post_data_state()
        if status is not MISSING and status[:1] in ("4", "5"):  # not stored (the store counted the others)
            metrics.received("smtp", "refused")
        await self.push("250 OK" if status is MISSING else status)

    async def push(self, status: str) -> None:
        """Send an answer; a 4xx or 5xx one is counted and logged first."""
        if status[:1] in ("4", "5"):
            code = status[:3]
            metrics.error_reply(code)
            logs.step(log, "refused", source="smtp", code=code, reason=logs.without_addresses(status[4:]))
        await super().push(status)
