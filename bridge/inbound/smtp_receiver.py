"""The SMTP receiver: aiosmtpd hooks that accept candidate replies for our domains only.

- RCPT: only addresses in the accepted domains (550 5.7.1 otherwise): never an open relay.
- DATA: 250 only after the raw message and envelope are committed; a storage failure answers
  451 4.3.0 (never a 500, never an exception text). Concurrent messages are committed together
  by one writer thread (group commit); parsing and routing run after the 250, off the event loop.
- Size: the SIZE limit (552) and a cap on the header block.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.engine import Engine

from bridge import portal
from bridge.config.settings import current
from bridge.inbound import ingest_listener, ingest_socket, pipeline, raw_store
from bridge.inbound.limits import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES
from bridge.inbound.smtp_session import ReceiverSession
from models.db import session_scope

log = logging.getLogger(__name__)
DOMAINS_TTL_S = 30.0
BATCH = 64


class GroupCommitter:
    """Stores messages handed in from many SMTP sessions, several per transaction, in one thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: asyncio.Queue[tuple[raw_store.Incoming, asyncio.Future[raw_store.Stored]]] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rb-store")
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: raw_store.Incoming) -> raw_store.Stored:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[raw_store.Stored] = loop.create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            try:
                stored = await loop.run_in_executor(self._writer, raw_store.store_many, self.engine,
                                                    [item for item, _f in batch])
            except Exception as err:  # noqa: BLE001 - one bad item must not fail its neighbours: one by one
                if len(batch) == 1:
                    self._answer(batch, err)
                    continue
                for one in batch:
                    await self._store_alone(one)
            else:
                for (_item, future), result in zip(batch, stored, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _store_alone(self, one: tuple[raw_store.Incoming, asyncio.Future[raw_store.Stored]]) -> None:
        item, future = one
        try:
            stored = await asyncio.get_running_loop().run_in_executor(self._writer, raw_store.store_many,
                                                                      self.engine, [item])
        except Exception as err:  # noqa: BLE001 - this session answers 451
            self._answer([one], err)
        else:
            if not future.done():
                future.set_result(stored[0])

    @staticmethod
    def _answer(batch: list[tuple[raw_store.Incoming, asyncio.Future[raw_store.Stored]]], err: Exception) -> None:
        for _item, future in batch:
            if not future.done():
                future.set_exception(err)

    def close(self) -> None:
        if self._task:
            self._task.cancel()
        self._writer.shutdown(wait=True)


class ReceiverHandler:
    """aiosmtpd handler: narrow hooks, each with one job."""

    def __init__(self, engine: Engine, max_header_bytes: int = MAX_HEADER_BYTES, router_threads: int = 2,
                 route_inline: bool = True) -> None:
        self.engine = engine
        self.route_inline = route_inline  # False: a routing process routes (serve), keeping this interpreter free
        self.max_header_bytes = max_header_bytes
        self.committer = GroupCommitter(engine)
        self.router = ThreadPoolExecutor(max_workers=router_threads, thread_name_prefix="rb-route")
        self.settings_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rb-settings")
        self._domains: frozenset[str] = frozenset()
        self._domains_at = 0.0

    def accepted_domains(self) -> frozenset[str]:
        """The accepted domains, re-read from the settings every DOMAINS_TTL_S seconds."""
        if time.monotonic() - self._domains_at > DOMAINS_TTL_S:
            with session_scope(self.engine) as session:
                settings = portal.load(session)
            domains = set(settings.accepted_domains)
            if settings.reply_address:
                domains.add(settings.numbered().primary.domain)
            self._domains, self._domains_at = frozenset(domains), time.monotonic()
        return self._domains

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        try:
            fresh = time.monotonic() - self._domains_at <= DOMAINS_TTL_S
            domains = self._domains if fresh else await asyncio.get_running_loop().run_in_executor(
                self.settings_reader, self.accepted_domains)
        except Exception:  # noqa: BLE001 - the settings could not be read: the sender retries
            log.exception("reading the accepted domains failed")
            return "451 4.3.0 Temporary failure, try again later"
        if domain not in domains:
            return f"550 5.7.1 <{address}>: relay access denied; this server receives mail for its own domains only"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes)
                                             else str(envelope.content).encode("utf-8", "surrogateescape"))
        end = raw.find(b"\r\n\r\n")
        if (end == -1 and len(raw) > self.max_header_bytes) or end > self.max_header_bytes:
            return "552 5.3.4 Message header too large"
        item = raw_store.Incoming(raw, "smtp", envelope.mail_from or "", tuple(envelope.rcpt_tos))
        try:
            stored = await self.store(item)
        except Exception:  # noqa: BLE001 - nothing was stored: the sender keeps the message and retries
            log.exception("storing a received message failed; answered 451")
            return "451 4.3.0 Temporary storage failure, try again later"
        return f"250 2.0.0 OK: stored as {stored.id}"

    async def store(self, item: raw_store.Incoming) -> raw_store.Stored:
        """Commit (with whatever else is waiting), then route unless a routing process does it."""
        stored = await self.committer.submit(item)
        if self.route_inline and not stored.duplicate:
            asyncio.get_running_loop().run_in_executor(self.router, self._route, stored.id)
        return stored

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error", exc_info=error)
        return "451 4.3.0 Temporary failure, try again later"

    def _route(self, inbound_id: int) -> None:
        pipeline.route_stored(self.engine, inbound_id)  # a failure is counted on the message and retried

    def close(self) -> None:
        self.committer.close()
        self.router.shutdown(wait=True)
        self.settings_reader.shutdown(wait=True)


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    max_bytes: int = MAX_MESSAGE_BYTES
    max_header_bytes: int = MAX_HEADER_BYTES
    certfile: str | None = None
    keyfile: str | None = None
    ingest_path: Path | None = None  # where `ingest` passes messages on (bridge.inbound.ingest_socket)

    @classmethod
    def from_settings(cls) -> ReceiverConfig:
        settings = current()
        return cls(ingest_path=ingest_socket.socket_path(), host=settings.smtp_host, port=settings.smtp_port,
                   max_bytes=settings.smtp_max_bytes or MAX_MESSAGE_BYTES,
                   certfile=str(settings.smtp_tls_cert) if settings.smtp_tls_cert else None,
                   keyfile=str(settings.smtp_tls_key) if settings.smtp_tls_key else None)


class Receiver(Controller):
    """The receiver on its own event-loop thread; `start()` and `stop()` as aiosmtpd's Controller."""

    def __init__(self, engine: Engine, config: ReceiverConfig, route_inline: bool = True) -> None:
        self.handler_ = ReceiverHandler(engine, config.max_header_bytes, route_inline=route_inline)
        tls = None
        if config.certfile:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(config.certfile, config.keyfile)
        super().__init__(self.handler_, hostname=config.host, port=config.port, data_size_limit=config.max_bytes,
                         enable_SMTPUTF8=True, tls_context=tls, require_starttls=False, ident="replybridge ESMTP",
                         server_hostname=None)
        self.ingest_path = config.ingest_path
        self._ingest_listener: asyncio.AbstractServer | None = None

    def factory(self) -> SMTP:
        """Each session is aiosmtpd's, reading DATA in bulk (bridge.inbound.smtp_session)."""
        return ReceiverSession(self.handler, **self.SMTP_kwargs)

    def start(self) -> None:
        """Listen for SMTP, then for `ingest` on the same event loop (so they share the group commit).
        A socket path the system refuses (too long, no such folder) only costs the socket: `ingest` then
        stores in-process."""
        super().start()
        if self.ingest_path is None:
            return
        try:
            listening = ingest_listener.listen(self.ingest_path, self.handler_.store)
            self._ingest_listener = asyncio.run_coroutine_threadsafe(listening, self.loop).result(10)
        except OSError as err:
            log.warning("no ingest socket on %s (%s): `ingest` stores in-process", self.ingest_path, err)
        except BaseException:
            super().stop()
            raise

    def stop(self, no_assert: bool = False) -> None:
        if self._ingest_listener is not None:
            self.loop.call_soon_threadsafe(self._ingest_listener.close)
            ingest_listener.forget(self.ingest_path)
        super().stop(no_assert=no_assert)
        self.handler_.close()
