"""An exclusive, advisory lock on a directory: one process at a time uses it.

``flock`` on ``<dir>/.lock``, held while the lock file stays open and released by
the kernel when the process ends, however it ends (a SIGKILLed holder leaves no
stale lock). The holder writes its pid into the file, so the error names it.
Processes sharing a directory through a volume on one host see each other's locks.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = ".lock"


class DirInUse(RuntimeError):
    """The directory is locked by another process."""


class DirLock:
    def __init__(self, directory: Path, *, holder: str = "another process") -> None:
        self.path = Path(directory) / LOCK_FILE
        self._holder = holder  # who would be holding it, for the error message
        self._file: IO[str] | None = None

    def acquire(self) -> DirLock:
        """Take the lock or raise ``DirInUse`` at once (never waits); creates the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise DirInUse(f"{self.path.parent} is in use by {self._holder} (pid {pid})") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def in_use(directory: Path) -> bool:
    """Whether a live process holds ``directory``'s lock (a directory without a lock file is not in use)."""
    path = Path(directory) / LOCK_FILE
    try:
        f = open(path)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        f.close()  # closing drops the shared lock taken just to test
    return False
