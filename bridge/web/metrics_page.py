"""/metrics for Prometheus: the counts every process of `serve` made (bridge.metrics) and the gauges whose
truth is the database, read at each scrape.

No session is needed. A client address inside the metrics_allow setting (loopback by default) may read it, and
so may anyone sending `Authorization: Bearer <metrics_token>` (compared in constant time); anyone else gets 403,
or 401 for a wrong token, and not one metric.

The database gauges are a handful of indexed queries, each answered from an index without reading the table
(docs/ARCHITECTURE.md, "Metrics and step lines"): Unassigned messages open, the Mail Log by status, how long
the longest-waiting outbound message has been due, the webhook deliveries not yet made, and each poll folder's
messages waiting on the server (what its latest pass found above the last UID it fetched). Should the database
not answer, the page still shows the counts, with replybridge_database_up 0: a scrape that failed outright
would hide the very counts (the receiver's 451s) that tell why.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge import metrics
from bridge.config.settings import IPNetwork, current
from bridge.outbound.queue import STATUSES
from models import ImapFolderState, ImapServer, InboundMessage, OutboundMessage, WebhookDelivery, aware, utcnow

log = logging.getLogger(__name__)
router = APIRouter()
WAITING = ("queued", "deferred", "sending")  # outbound statuses of mail still to go out


@router.get("/metrics", include_in_schema=False)
def metrics_page(request: Request) -> Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return Response(generate_latest(Scrape(request.app.state.engine)), media_type=CONTENT_TYPE_LATEST)


def _refusal(request: Request) -> Response | None:
    """None when the client may read the metrics; else the 401 or 403 to answer."""
    settings = current()
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    token = presented.strip() if scheme.lower() == "bearer" else None
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    client = request.client.host if request.client else ""
    if allowed(client, settings.metrics_allow):
        return None
    if token is not None:
        return PlainTextResponse("401: this is not the metrics_token setting's token\n", status_code=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return PlainTextResponse(f"403: {client or 'this client'} is not in the metrics_allow setting; add its network "
                             "there, or send the metrics_token setting as a bearer token\n", status_code=403)


def allowed(client: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether the client's address is inside one of the networks (an IPv4 address mapped into IPv6 counts as
    the IPv4 one)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:  # no address (a Unix socket, a test client)
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class Scrape:
    """One scrape's collector: the shared counts, then the database's gauges."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        yield from metrics.families()
        try:
            with self.engine.connect() as conn:
                gauges = list(database_gauges(conn))
        except SQLAlchemyError as err:
            log.warning("/metrics: the database did not answer (%s); its gauges are left out", type(err).__name__)
            gauges = []
        yield from gauges
        yield GaugeMetricFamily(f"{metrics.PREFIX}database_up", "1 when this scrape could read the database's "
                                "gauges, else 0", value=1 if gauges else 0)


def database_gauges(conn: Connection) -> Iterator[Metric]:
    """The gauges whose truth is the database, each from an index."""
    prefix = metrics.PREFIX
    unassigned = conn.execute(select(func.count()).select_from(InboundMessage).where(
        InboundMessage.route == "unassigned", InboundMessage.triage == "open")).scalar_one()
    yield GaugeMetricFamily(f"{prefix}unassigned_open_messages", "Unassigned messages open (not yet assigned or "
                            "dismissed)", value=unassigned)

    by_status = GaugeMetricFamily(f"{prefix}outbound_messages", "Outbound messages in the Mail Log, by status",
                                  labels=["status"])
    counted = dict(conn.execute(select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)).all())
    for status in STATUSES:
        by_status.add_metric([status], counted.get(status, 0))
    yield by_status

    # grouped by status, so the status index finds the few waiting rows: a bare min() would walk the
    # next_attempt_at index from the oldest, through every message sent long ago
    due = [at for _status, at in conn.execute(
        select(OutboundMessage.status, func.min(OutboundMessage.next_attempt_at))
        .where(OutboundMessage.status.in_(WAITING)).group_by(OutboundMessage.status)).all() if at is not None]
    late = max((utcnow() - aware(min(map(aware, due)))).total_seconds(), 0.0) if due else 0.0
    yield GaugeMetricFamily(f"{prefix}outbound_oldest_queued_age_seconds", "How long the longest-waiting outbound "
                            "message (queued, deferred or sending) has been due; 0 when none is", value=late)

    pending = conn.execute(select(func.count()).select_from(WebhookDelivery)
                           .where(WebhookDelivery.status == "pending")).scalar_one()
    yield GaugeMetricFamily(f"{prefix}webhook_pending_deliveries", "Webhook deliveries not yet made (first tries "
                            "and retries)", value=pending)

    waiting = GaugeMetricFamily(f"{prefix}imap_folder_waiting_messages", "Messages on the server above a poll "
                                "folder's last fetched UID, as its latest pass found them", labels=["server", "folder"])
    for name, folder, count in conn.execute(
            select(ImapServer.name, ImapFolderState.folder, ImapFolderState.waiting)
            .join(ImapServer, ImapServer.id == ImapFolderState.imap_server_id)
            .where(ImapServer.poll_folder == ImapFolderState.folder)).all():
        waiting.add_metric([name, folder], count or 0)
    yield waiting
