"""A real Dovecot IMAP server per test, on free loopback ports, with all its state in a temp dir.

The bridge talks to real mail servers, whose quirks (special-use discovery, STARTTLS, IDLE, literal
handling) a mock would only guess at. Dovecot starts in well under a second, so every test can own
a private instance: its own config, base_dir (sockets), state, logs and Maildir under `root`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.servers import process_group
from tests.servers.certs import make_cert

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
HOST = "127.0.0.1"
USER = "ana@example.test"
PASSWORD = "secret-Ana-42"
MAIL_USER = "mail"  # uid 8 on Debian; Dovecot refuses to access mail as root.

START_TIMEOUT = 10.0
# A group-wide SIGTERM usually ends Dovecot in ~10 ms, but an imap-login process still winding down a
# connection makes the master wait ~1 s for it; nothing in a throwaway instance is worth that, so
# whatever is left after the grace period gets SIGKILL.
STOP_GRACE = 0.1

# Dovecot 2.3's post-login capabilities, minus IDLE. Setting `imap_capability` replaces the whole
# list and also suppresses the LITERAL+/NOTIFY/SPECIAL-USE Dovecot would append by itself, so they
# are spelled out here: the idle=False server differs from the default one only by IDLE. (Dovecot
# advertises SPECIAL-USE even when no folder has a special-use flag.)
_CAPABILITIES_WITHOUT_IDLE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY "
    "SPECIAL-USE"
)

# Unix socket paths are limited to 108 bytes; the longest Dovecot creates under base_dir is
# "replication-notify-fifo" / "token-login/tokenlogin". Beyond this, base_dir moves to a short temp dir.
_MAX_BASE_DIR_LEN = 80


@dataclass
class Dovecot:
    """A running Dovecot instance and what a client needs to reach it."""

    host: str
    port: int
    ssl_port: int
    user: str
    password: str
    cafile: Path
    root: Path
    _process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    _scratch_dirs: tuple[Path, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # A finalizer (not just the fixture) guarantees the server dies even if a caller forgets
        # stop(): it runs on garbage collection and at interpreter exit, and at most once.
        self._finalizer = weakref.finalize(self, _shutdown, self._process, self._scratch_dirs)

    def folder_messages(self, folder: str) -> list[bytes]:
        """Raw bytes of every message in `folder`, sorted by UID, read through a fresh login.

        A separate session sees exactly what the server stored, independent of the code under test.
        """
        with self._session(folder) as client:
            uids = client.search("ALL")
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def folder_flags(self, folder: str) -> list[tuple[bytes, ...]]:
        """Flags of every message in `folder`, in the same (UID) order as `folder_messages`.

        `\\Recent` is dropped: it depends on which session saw the message first, not on the bridge.
        """
        with self._session(folder) as client:
            uids = client.search("ALL")
            if not uids:
                return []
            fetched = client.fetch(uids, ["FLAGS"])
        return [tuple(f for f in fetched[uid][b"FLAGS"] if f != b"\\Recent") for uid in sorted(fetched)]

    def stop(self) -> None:
        """Terminate the server's process group and wait for it; safe to call more than once."""
        self._finalizer()

    @contextmanager
    def _session(self, folder: str) -> Iterator[IMAPClient]:
        """A fresh login with `folder` EXAMINEd (read-only), so inspecting never changes flags."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            client.login(self.user, self.password)
            client.select_folder(folder, readonly=True)
            yield client
        finally:
            with suppress(Exception):  # imaplib closes the socket even when LOGOUT fails
                client.logout()


def start_dovecot(root: Path, *, special_use: bool = True, sent_name: str = "Sent",
                  extra_folders: tuple[str, ...] = (), idle: bool = True,
                  oauth_introspection_url: str | None = None, ports: tuple[int, int] | None = None) -> Dovecot:
    """Start a private Dovecot under `root` and return once it greets on the plain IMAP port.

    special_use: mark `sent_name` as \\Sent (and create Drafts/Trash as \\Drafts/\\Trash); when False
        the folders exist but carry no special-use flag, so clients must find Sent by name.
    extra_folders: further folders created (and subscribed) at first login.
    idle: when False, IDLE is left out of the capabilities, for code that must fall back to polling.
    oauth_introspection_url: also accept XOAUTH2 and OAUTHBEARER, each token checked by an RFC 7662
        introspection POST to this URL (tests.servers.oauth); password login keeps working.
    ports: the (IMAP, IMAPS) ports to bind, to start a stopped server again where its clients expect it.
    """
    if not DOVECOT_BINARY.exists():
        raise FileNotFoundError(f"{DOVECOT_BINARY} is not installed")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    _grant_traverse(root)
    certs = make_cert(root / "certs", label="dovecot")
    passwd = root / "users"
    passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    passwd.chmod(0o644)  # read by the auth process, which runs as the `dovecot` user
    mail_dir = root / "mail"
    mail_dir.mkdir(exist_ok=True)
    os.chown(mail_dir, *_uid_gid(MAIL_USER))
    (root / "state").mkdir(exist_ok=True)
    oauth_conf = None
    if oauth_introspection_url is not None:
        oauth_conf = root / "dovecot-oauth2.conf.ext"
        oauth_conf.write_text(_oauth2_config(oauth_introspection_url))
        oauth_conf.chmod(0o644)  # read by the auth process, like the passwd-file

    mailboxes = _mailboxes(special_use=special_use, sent_name=sent_name, extra_folders=extra_folders)
    capability = None if idle else _CAPABILITIES_WITHOUT_IDLE
    log = root / "dovecot.log"
    errors: list[str] = []
    for _attempt in range(3):  # a free port can be taken by someone else between probe and bind
        port, ssl_port = ports or _free_ports(2)
        base_dir, scratch = _fresh_base_dir(root)
        config = root / "dovecot.conf"
        config.write_text(_config(root=root, base_dir=base_dir, port=port, ssl_port=ssl_port,
                                  certfile=certs.certfile, keyfile=certs.keyfile, passwd=passwd,
                                  mailboxes=mailboxes, capability=capability, oauth_conf=oauth_conf))
        stderr = root / "dovecot.stderr"
        with stderr.open("wb") as stderr_file:
            process = subprocess.Popen(
                [str(DOVECOT_BINARY), "-F", "-c", str(config)],
                stdin=subprocess.DEVNULL, stdout=stderr_file, stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() kills master and children alike
            )
        server = Dovecot(host=HOST, port=port, ssl_port=ssl_port, user=USER, password=PASSWORD,
                         cafile=certs.cafile, root=root, _process=process, _scratch_dirs=scratch)
        try:
            _wait_ready(process, port, ssl_port, log, stderr)
            _wait_auth_ready(port, USER, PASSWORD, log, stderr)
        except _PortTaken as exc:
            server.stop()
            errors.append(str(exc))
            continue
        except _NotReady as exc:  # seen in about one suite run in fifty: start it afresh, and say so
            server.stop()
            errors.append(str(exc))
            warnings.warn(f"Dovecot started again after it did not greet: {exc}", stacklevel=2)
            continue
        except BaseException:
            server.stop()
            raise
        return server
    raise RuntimeError("Dovecot did not start in three attempts:\n" + "\n".join(errors))


@pytest.fixture(name="dovecot")
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A default Dovecot (special-use Sent, IDLE) for one test, stopped afterwards even on failure.

    The explicit name lets test modules import it under an alias (`dovecot as dovecot_fixture`), so
    the `dovecot` test argument does not shadow an import (ruff F811) yet still resolves here.
    """
    if not DOVECOT_BINARY.exists():
        pytest.skip(f"Dovecot is not installed ({DOVECOT_BINARY} missing)")
    server = start_dovecot(tmp_path / "dovecot")
    try:
        yield server
    finally:
        server.stop()


def _fresh_base_dir(root: Path) -> tuple[Path, tuple[Path, ...]]:
    """An empty base_dir (sockets, master.pid) and the scratch dirs stop() must delete.

    Emptied first so a restart on the same root never trips over a stale master.pid; moved to a short
    temp dir when `root` is so deep that socket paths would exceed the Unix limit.
    """
    base_dir = root / "run"
    scratch: tuple[Path, ...] = ()
    if len(str(base_dir)) > _MAX_BASE_DIR_LEN:
        base_dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        scratch = (base_dir,)
    else:
        shutil.rmtree(base_dir, ignore_errors=True)
        base_dir.mkdir()
    base_dir.chmod(0o755)  # login processes (dovenull) and imap (mail) connect to sockets in it
    return base_dir, scratch


class _PortTaken(RuntimeError):
    """Dovecot exited because another process grabbed one of its ports first."""


class _NotReady(RuntimeError):
    """Dovecot ran but did not greet, or let the test user in, within START_TIMEOUT (a login process greets
    only once the auth process has answered it)."""


def _mailboxes(*, special_use: bool, sent_name: str, extra_folders: tuple[str, ...]) -> dict[str, str]:
    """Folder name -> special-use flag ("" for none), in config order."""
    boxes = {sent_name: "\\Sent" if special_use else ""}
    if special_use:
        boxes.setdefault("Drafts", "\\Drafts")
        boxes.setdefault("Trash", "\\Trash")
    for name in extra_folders:
        boxes.setdefault(name, "")
    for name in boxes:
        if not name or any(c in name for c in '"\\\r\n{}') or name.upper() == "INBOX":
            raise ValueError(f"unsupported folder name for the Dovecot test server: {name!r}")
    return boxes


def _config(*, root: Path, base_dir: Path, port: int, ssl_port: int, certfile: Path, keyfile: Path,
            passwd: Path, mailboxes: dict[str, str], capability: str | None,
            oauth_conf: Path | None = None) -> str:
    """The whole dovecot.conf; nothing from /etc/dovecot is included, so the host setup is irrelevant."""
    boxes = "".join(
        f'  mailbox "{name}" {{\n    auto = subscribe\n'
        + (f"    special_use = {flag}\n" if flag else "")
        + "  }\n"
        for name, flag in mailboxes.items()
    )
    # With OAuth on, each passdb serves only its own mechanisms: a password never reaches the
    # introspection URL, and a token is never compared with the passwd-file.
    mechanisms = "plain login xoauth2 oauthbearer" if oauth_conf else "plain login"
    password_only = "  mechanisms = plain login\n" if oauth_conf else ""
    oauth_passdb = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {oauth_conf}\n}}\n"
                    if oauth_conf else "")
    return f"""\
# Generated by tests/servers/dovecot.py for one test; see that module.
base_dir = {base_dir}
state_dir = {root / "state"}
instance_name = dovecot-test-{port}
log_path = {root / "dovecot.log"}
info_log_path = {root / "dovecot.log"}
debug_log_path = {root / "dovecot.log"}
auth_verbose = yes
listen = {HOST}
protocols = imap
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 8
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
mail_location = maildir:{root / "mail"}/%u
mail_fsync = never
mailbox_idle_check_interval = 1 secs
ssl = yes
ssl_cert = <{certfile}
ssl_key = <{keyfile}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# Failed logins still take ~0.5 s: the auth process flushes failures on a fixed 500 ms timer.
auth_failure_delay = 0
{f"imap_capability = {capability}" if capability else ""}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
{password_only}}}
{oauth_passdb}userdb {{
  driver = static
  args = uid={MAIL_USER} gid={MAIL_USER}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {ssl_port}
    ssl = yes
  }}
}}
# Without this, anvil's per-IP auth penalty delays every wrong-password reply by up to 15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
{boxes}}}
"""


def _oauth2_config(introspection_url: str) -> str:
    """dovecot-oauth2.conf.ext: every login introspects its token; only an active one for this user passes.

    Without a tokeninfo_url Dovecot goes straight to introspection; `username_attribute` must equal the
    login name, and `active_attribute`/`active_value` turn an expired or revoked token into a failure.
    """
    return f"""\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


def _wait_ready(process: subprocess.Popen[bytes], port: int, ssl_port: int, log: Path, stderr: Path) -> None:
    """Block until the plain port sends an `* OK` greeting (and IMAPS accepts), or raise with the logs."""
    deadline = time.monotonic() + START_TIMEOUT
    last_error = "no attempt yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = _log_tail(log, stderr)
            if "Address already in use" in tail:
                raise _PortTaken(tail)
            raise RuntimeError(f"Dovecot exited with status {process.returncode} while starting:\n{tail}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                greeting = _read_line(sock)
            if not greeting.startswith(b"* OK"):
                raise RuntimeError(f"unexpected greeting {greeting!r}\n{_log_tail(log, stderr)}")
            with socket.create_connection((HOST, ssl_port), timeout=2):
                pass
            return
        except OSError as exc:  # refused until imap-login listens; reset if it restarts
            last_error = repr(exc)
            time.sleep(0.02)
    raise _NotReady(
        f"Dovecot did not greet on {HOST}:{port} within {START_TIMEOUT:.0f}s ({last_error}); its processes:\n"
        + _processes(process.pid) + "\n" + _log_tail(log, stderr)
    )


def _wait_auth_ready(port: int, user: str, password: str, log: Path, stderr: Path) -> None:
    """Block until a LOGIN succeeds. The greeting comes from imap-login before the auth process has
    answered its handshake; on a loaded machine the first login could then meet "[UNAVAILABLE]
    Temporary authentication failure", which is Dovecot starting, not what a test means to check."""
    deadline = time.monotonic() + START_TIMEOUT
    answer = b""
    while time.monotonic() < deadline:
        with socket.create_connection((HOST, port), timeout=5) as sock:
            _read_line(sock)
            sock.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
            answer = _read_line(sock)
            while answer.startswith(b"*"):  # untagged lines (CAPABILITY) before the tagged answer
                answer = _read_line(sock)
            if answer.startswith(b"a OK"):
                sock.sendall(b"b LOGOUT\r\n")
                return
        time.sleep(0.05)
    raise _NotReady(f"Dovecot refused the test user's login ({answer!r}):\n{_log_tail(log, stderr)}")


def _processes(pgid: int) -> str:
    """The process group's processes and their states, for an error message (Dovecot names each by role)."""
    found = subprocess.run(["ps", "-e", "-o", "pgid=,pid=,stat=,etime=,args="], capture_output=True, text=True)
    return "\n".join(line for line in found.stdout.splitlines() if line.split()[0] == str(pgid)) or "(none left)"


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def _log_tail(log: Path, stderr: Path, lines: int = 40) -> str:
    parts = []
    for path in (stderr, log):
        with suppress(OSError):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(parts) or "(Dovecot wrote no log)"


def _free_ports(count: int) -> list[int]:
    """Ports the kernel reports free right now; all sockets stay open until every port is chosen."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _uid_gid(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _grant_traverse(path: Path) -> None:
    """Let Dovecot's unprivileged processes (mail, dovecot, dovenull) reach files below `path`.

    pytest creates its temp dirs 0700; the auth process (user dovecot) must read the passwd-file
    and imap (user mail) must reach the Maildir. Only the search bit is added, never read.
    """
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _shutdown(process: subprocess.Popen[bytes], scratch_dirs: tuple[Path, ...]) -> None:
    """SIGTERM Dovecot's whole process group (its children too), then what process_group.stop does."""
    process_group.stop(process, scratch_dirs, STOP_GRACE, term_group=True)
