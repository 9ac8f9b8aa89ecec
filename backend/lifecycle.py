"""A served data dir's lifecycle: one server per data dir (a lock), and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
LOCK_NAME = "server.lock"


class DataDirLocked(RuntimeError):
    """Another live server holds the data dir."""


class DataDirLock:
    """An exclusive flock on DATA_DIR/server.lock, held for the life of the process (the kernel drops it when
    the process dies, however it dies, so a stale file never blocks a restart)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.path = self.data_dir / LOCK_NAME
        self._fh: Any = None

    def acquire(self) -> DataDirLock:
        """Take the lock; DataDirLocked naming the dir and the holder's PID when another server has it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirLocked(
                f"the data dir {self.data_dir} is in use by another server (PID {holder}); "
                "stop it first, or start this one with another --data-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Drop the lock (also dropped when the process exits)."""
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def install_shutdown_handlers(stop: Callable[[], None], *, exit_code: int = 0) -> None:
    """On SIGTERM or SIGINT: run `stop` once (cancel the running job, stop the workers), then exit."""
    once = threading.Lock()

    def handler(signum: int, _frame: Any) -> None:
        if not once.acquire(blocking=False):
            return  # a second signal while stopping: the first one is already on its way out
        log.warning(
            "%s received: cancelling the running job (server shutdown), keeping the queue", signal.Signals(signum).name
        )
        try:
            stop()
        except Exception:
            log.exception("error while stopping")
        finally:
            logging.shutdown()
            sys.stdout.flush()
            os._exit(exit_code)  # the dev server's threads would otherwise keep the process alive

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
