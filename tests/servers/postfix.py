"""A real Postfix per test, in front of the bridge as an admin runs it: relaying the reply domain to the
bridge's SMTP receiver, or piping each message to `replybridge ingest`.

What the bridge promises an MTA (a 4xx or exit 75 keeps the message queued, 250 or exit 0 only once it is
stored) is only worth what the MTA makes of it, so the tests ask Debian's Postfix itself. Each instance
has its own main.cf and master.cf (nothing of /etc/postfix is read but Postfix's own file lists), its own
queue and data directories and a free loopback port, and runs `master -d` in a process group of its
own: it starts in a fraction of a second (`postfix start` would first spend two seconds on its
integrity check, and `postfix stop` waits in whole seconds), and stopping it leaves nothing running.
Postfix's daemons run as the `postfix` user and refuse root; the queue is made the way Postfix's
`post-install` makes it. Nothing leaves the machine: other domains are refused, not looked up.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import smtplib
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.servers import process_group
from tests.servers.dovecot import _grant_traverse
from tests.servers.web import free_port

MASTER = Path("/usr/lib/postfix/sbin/master")
POSTQUEUE = Path("/usr/sbin/postqueue")
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
HOST = "127.0.0.1"
PIPE_SERVICE = "replybridge"  # the master.cf name of the pipe transport
START_TIMEOUT = 10.0
STOP_GRACE = 2.0  # the master ends its children and itself on SIGTERM, usually within 50 ms
# Postfix names its sockets after the services under the queue directory; a Unix socket path holds 108 bytes.
_MAX_QUEUE_DIR_LEN = 80
# The queue as Postfix's post-install makes it (conf/postfix-files): name, owner, group, mode.
_QUEUE_DIRS = [(name, MAIL_OWNER, None, 0o700) for name in (
    "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace")] + [
    ("maildrop", MAIL_OWNER, SETGID_GROUP, 0o730), ("public", MAIL_OWNER, SETGID_GROUP, 0o710),
    ("pid", "root", None, 0o755)]
_QUEUED_AS = re.compile(rb"queued as ([0-9A-Za-z]+)")

T = TypeVar("T")


def missing() -> str | None:
    """Why a private Postfix cannot start here, or None."""
    if not MASTER.exists() or not POSTQUEUE.exists():
        return f"Postfix is not installed ({MASTER} missing; apt-get install postfix)"
    try:
        pwd.getpwnam(MAIL_OWNER)
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        return f"no {MAIL_OWNER!r} user or {SETGID_GROUP!r} group (made by the postfix package)"
    if os.geteuid() != 0:
        return "a private Postfix needs root: its daemons start as root and drop to the postfix user"
    return None


@dataclass(frozen=True)
class Transport:
    """How Postfix hands the reply domain's mail on: the transport_maps next hop, and what a pipe adds to
    master.cf and main.cf."""

    nexthop: str
    master_cf: str = ""
    main_cf: str = ""


def relay_to(port: int, host: str = HOST) -> Transport:
    """Mode A: relay to the bridge's SMTP receiver (the brackets: that host itself, no MX look-up)."""
    return Transport(f"smtp:[{host}]:{port}")


def pipe_to(argv: list[str], user: str, environment: dict[str, str]) -> Transport:
    """Mode B: hand each message to `argv` (e.g. `replybridge ingest -`) as `user`, with `environment`.

    One recipient per delivery, so that `O` can add the X-Original-To: header (the envelope recipient as
    received, which routing reads); `R` adds Return-Path: (the envelope sender). Not `D`: its loop check
    returns any message that already carries Delivered-To: with the same address, as mail passed on by
    another mail system may.
    """
    if any(not part or any(c.isspace() for c in part) for part in argv):
        raise ValueError(f"pipe argv words must be non-empty and hold no white space: {argv!r}")
    exported = " ".join(_env_item(name, value) for name, value in environment.items())
    return Transport(
        f"{PIPE_SERVICE}:",
        master_cf=f"{PIPE_SERVICE} unix - n n - - pipe\n  flags=ORq user={user} argv={' '.join(argv)}\n",
        main_cf=(f"{PIPE_SERVICE}_destination_recipient_limit = 1\n"
                 f"export_environment = TZ MAIL_CONFIG LANG {exported}\n"))


def _env_item(name: str, value: str) -> str:
    if "$" in value or "}" in value or "\n" in value:
        raise ValueError(f"{name}'s value cannot be written into main.cf as it is: {value!r}")
    item = f"{name}={value}"
    return f"{{ {item} }}" if any(c.isspace() or c == "," for c in item) else item


@dataclass
class Postfix:
    """A running private Postfix: its SMTP port, its configuration directory, and its queue."""

    config_dir: Path
    queue_dir: Path
    port: int
    log_path: Path
    _process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    _scratch_dirs: tuple[Path, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # the server dies even when a test forgets stop(): on garbage collection or at interpreter exit, once
        self._finalizer = weakref.finalize(self, _shutdown, self._process, self._scratch_dirs)

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        """Submit a message over SMTP, as the Internet would; its Postfix queue id."""
        with smtplib.SMTP(HOST, self.port, timeout=30) as smtp:
            smtp.ehlo("sender.example.org")
            code, answer = smtp.mail(sender)
            assert code == 250, f"Postfix refused MAIL FROM:<{sender}>: {code} {answer!r}\n{self.log()}"
            for recipient in recipients:
                code, answer = smtp.rcpt(recipient)
                assert code == 250, f"Postfix refused RCPT TO:<{recipient}>: {code} {answer!r}\n{self.log()}"
            code, answer = smtp.data(raw)
        queued = _QUEUED_AS.search(answer)
        assert code == 250 and queued, f"Postfix did not queue the message: {code} {answer!r}\n{self.log()}"
        return queued.group(1).decode()

    def queue(self) -> list[dict]:
        """`postqueue -j`: one object per queued message (queue_name, queue_id, recipients with delay_reason)."""
        listed = self._postqueue("-j")
        return [json.loads(line) for line in listed.splitlines() if line.strip()]

    def flush(self) -> None:
        """`postqueue -f`: deliver all queued mail now, deferred mail included, whatever its back-off."""
        self._postqueue("-f")

    def wait_queue_empty(self, timeout: float = 30.0) -> None:
        self.wait_for(lambda: not self.queue(), timeout, "Postfix's queue to empty")

    def wait_deferred(self, queue_id: str, timeout: float = 30.0) -> dict:
        """The queue entry once the message sits in the deferred queue with the reason of its last try."""
        def deferred() -> dict | None:
            entry = next((e for e in self.queue() if e["queue_id"] == queue_id), None)
            if entry and entry["queue_name"] == "deferred" and all(r.get("delay_reason") for r in entry["recipients"]):
                return entry
            return None
        return self.wait_for(deferred, timeout, f"message {queue_id} to be deferred")

    def statuses(self, queue_id: str) -> list[str]:
        """The delivery statuses the log records for a message, in order (sent, deferred, bounced, ...)."""
        return re.findall(rf" {queue_id}: to=<[^>]*>.* status=(\w+)", self.log())

    def wait_for(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; queue: {self.queue()}\n"
                                     f"{self.log()}")
            time.sleep(0.05)

    def log(self, lines: int = 60) -> str:
        """The end of Postfix's log (maillog_file), for assertions and failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(Postfix wrote no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the master (it ends its children), SIGKILL what is left; safe to call more than once."""
        self._finalizer()

    def _postqueue(self, *args: str) -> str:
        done = subprocess.run([str(POSTQUEUE), "-c", str(self.config_dir), *args], capture_output=True, text=True,
                              timeout=30, check=False)
        assert done.returncode == 0, f"postqueue {' '.join(args)} failed: {done.stderr}\n{self.log()}"
        return done.stdout


def start_postfix(root: Path, domain: str, transport: Transport) -> Postfix:
    """Start a private Postfix under `root` that takes mail for `domain` and hands it to `transport`.

    Returns once its smtpd greets. Any other domain is refused at RCPT, and no local delivery is made: what
    Postfix itself writes (a bounce to the sender) meets the error transport, not the Internet.
    """
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_dir, data_dir, queue_dir, scratch = _directories(root)
    log_path = root / "postfix.log"
    errors: list[str] = []
    for _attempt in range(3):  # a free port can be taken by someone else between probe and bind
        port = free_port()
        (config_dir / "main.cf").write_text(_main_cf(queue_dir=queue_dir, data_dir=data_dir, log_path=log_path,
                                                     domain=domain, transport=transport))
        (config_dir / "master.cf").write_text(_master_cf(port, transport))
        _cooled(config_dir / "main.cf", config_dir / "master.cf")
        with (root / "master.stderr").open("wb") as stderr:
            process = subprocess.Popen([str(MASTER), "-c", str(config_dir), "-d"], stdin=subprocess.DEVNULL,
                                       stdout=stderr, stderr=subprocess.STDOUT, start_new_session=True)
        server = Postfix(config_dir, queue_dir, port, log_path, process, scratch)
        try:
            _wait_greeting(server, root / "master.stderr")
        except _PortTaken as err:
            server.stop()
            errors.append(str(err))
            continue
        except BaseException:
            server.stop()
            raise
        return server
    raise RuntimeError("Postfix did not start in three attempts:\n" + "\n".join(errors))


class _PortTaken(RuntimeError):
    """The master could not bind its port: another process took it first."""


def _directories(root: Path) -> tuple[Path, Path, Path, tuple[Path, ...]]:
    """The configuration, data and queue directories, made and owned as Postfix expects; the queue moves
    to a short temporary directory when `root` is so deep that socket paths would not fit."""
    config_dir, data_dir = root / "etc", root / "data"
    queue_dir, scratch = root / "queue", ()
    if len(str(queue_dir)) > _MAX_QUEUE_DIR_LEN:
        queue_dir = Path(tempfile.mkdtemp(prefix="postfix-"))
        scratch = (queue_dir,)
    for directory in (config_dir, data_dir, queue_dir):
        directory.mkdir(exist_ok=True)
    config_dir.chmod(0o755)
    queue_dir.chmod(0o755)
    owner = pwd.getpwnam(MAIL_OWNER)
    os.chown(data_dir, owner.pw_uid, owner.pw_gid)
    data_dir.chmod(0o700)
    for name, user, group, mode in _QUEUE_DIRS:
        path = queue_dir / name
        path.mkdir(exist_ok=True)
        os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid if group else 0)
        path.chmod(mode)
    _grant_traverse(queue_dir)  # the daemons, as `postfix`, chdir into the queue through pytest's 0700 dirs
    _grant_traverse(data_dir.parent)
    return config_dir, data_dir, queue_dir, scratch


def _cooled(*files: Path) -> None:
    """Date the files a minute back: Postfix reads a main.cf changed in the last second again every 0.3 s
    until it has stayed unchanged for a second (it may still be being written), which costs 2 s a start."""
    past = time.time() - 60
    for file in files:
        os.utime(file, (past, past))


def _main_cf(*, queue_dir: Path, data_dir: Path, log_path: Path, domain: str, transport: Transport) -> str:
    return f"""\
# Written by tests/servers/postfix.py for one test; see that module.
compatibility_level = 3.6
queue_directory = {queue_dir}
data_directory = {data_dir}
mail_owner = {MAIL_OWNER}
setgid_group = {SETGID_GROUP}
maillog_file = {log_path}
maillog_file_prefixes = {log_path.parent}
myhostname = mx.{domain}
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_peername_lookup = no
# mail for the reply domain only, from anyone (loopback clients too): nothing else is taken, nothing else leaves
smtpd_relay_restrictions = reject_unauth_destination
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:5.1.1 this test server delivers nothing locally
default_transport = error:5.7.1 this test server sends mail for {domain} only
# the reply domain, handed to the bridge
relay_domains = {domain}
transport_maps = inline:{{ {domain}={transport.nexthop} }}
{transport.main_cf}"""


def _master_cf(port: int, transport: Transport) -> str:
    """The services a relay needs (pickup too: `postqueue -f` takes its socket as the sign Postfix runs), none
    chrooted (the queue is not a chroot jail here)."""
    return f"""\
# Written by tests/servers/postfix.py for one test; see that module.
{HOST}:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
flush unix n - n 1000? 0 flush
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
smtp unix - - n - - smtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
{transport.master_cf}"""


def _wait_greeting(server: Postfix, stderr: Path) -> None:
    """Block until smtpd greets with 220 (the master spawns it on the first connection), or raise."""
    deadline = time.monotonic() + START_TIMEOUT
    last_error = "no attempt yet"
    while time.monotonic() < deadline:
        if server._process.poll() is not None:
            said = stderr.read_text(errors="replace") + "\n" + server.log()
            if "Address already in use" in said:
                raise _PortTaken(said)
            raise RuntimeError(f"Postfix's master exited with status {server._process.returncode}:\n{said}")
        try:
            with smtplib.SMTP(HOST, server.port, timeout=5) as smtp:
                code, _ = smtp.noop()
            if code == 250:
                return
        except (OSError, smtplib.SMTPException) as err:  # refused until the master listens
            last_error = repr(err)
        time.sleep(0.02)
    raise RuntimeError(f"Postfix did not greet on {HOST}:{server.port} within {START_TIMEOUT:g} s ({last_error}):\n"
                       f"{stderr.read_text(errors='replace')}\n{server.log()}")


def _shutdown(process: subprocess.Popen[bytes], scratch_dirs: tuple[Path, ...]) -> None:
    """SIGTERM Postfix's master alone (it ends its children), then what process_group.stop does."""
    process_group.stop(process, scratch_dirs, STOP_GRACE, term_group=False)
