"""Stopping a server the tests started in a session of its own (Dovecot's and Postfix's masters), so that
nothing of it outlives its test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path


def stop(process: subprocess.Popen[bytes], scratch_dirs: tuple[Path, ...], grace: float, *,
         term_group: bool) -> None:
    """SIGTERM the master (or its whole group), SIGKILL what is left of the group after `grace` seconds, reap,
    drop the scratch folders. The process must lead its group (`start_new_session=True`)."""
    if process.returncode is None:
        with suppress(ProcessLookupError):
            if term_group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        # Wait for the master to exit *without reaping it*: while it is a zombie its pid (= the group's id)
        # cannot be reused, so the SIGKILL below can only hit what is left of this server.
        while time.monotonic() < deadline:
            try:
                if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for directory in scratch_dirs:
        shutil.rmtree(directory, ignore_errors=True)
