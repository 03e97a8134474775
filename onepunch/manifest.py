"""Manifests and the small file helpers every stage shares: atomic writes, checksums, an exclusive lock.

A manifest is the JSON record of one stage run: resolved config and its hash, inputs (with their digests), outputs
with sha256 and counts. Downstream stages read manifests, never globs. Manifests hold no timestamps, so the same
inputs give the same bytes.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from onepunch.errors import UserError

FORMAT = 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale(path: Path) -> None:
    """Remove the temp files of `path` left by writers that no longer run (killed with -9, a power cut): a process
    that dies that way cannot clean up after itself, so the next writer of the same file does."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


class AtomicFile:
    """A file written under a temp name in the same folder and renamed into place when complete: a final name only
    ever holds a whole file, and a failure anywhere (a full disk, Ctrl-C, a crash in the writer) removes the temp
    file. The one writer behind every output of every stage.

        with AtomicFile(path) as f:      # f: the open temp file
            f.write(...)
    """

    def __init__(self, path: str | Path, mode: str = "wb"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        remove_stale(self.path)
        self.file = open(self.tmp, mode)

    def commit(self, finish=None) -> None:
        """Rename into place; `finish()` first writes what a container still owes (a tar's end blocks, a zip's
        directory). A failure anywhere here discards the temp file."""
        try:
            if finish is not None:
                finish()
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        try:
            self.file.close()  # may fail again flushing to a full disk: the temp file goes all the same
        except OSError:
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self.file

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (AtomicFile): readers never see a partial file."""
    with AtomicFile(path) as f:
        f.write(data)


def dumps(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def write_json(path: str | Path, obj) -> None:
    atomic_write(path, dumps(obj))


def read_json(path: str | Path):
    """The parsed file, or None if it is missing or unreadable (a half-written file never exists: atomic_write)."""
    try:
        return json.loads(Path(path).read_bytes())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


_SHA256: dict[tuple, str] = {}


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, remembered for this process while the file stays the same (path, inode, size, mtime): every
    stage's state re-checks its upstream's manifest and checkpoint, so `onepunch status` would otherwise read a
    color.pt five times."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _SHA256:
        return _SHA256[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    # A file changed in the last 2 s may change again within the clock's tick without a new mtime (git's "racy"
    # case): only older files are remembered.
    if time.time_ns() - st.st_mtime_ns > 2_000_000_000:
        _SHA256[key] = h.hexdigest()
    return h.hexdigest()


@contextmanager
def exclusive(lock_path: str | Path, what: str, wait: bool = False):
    """Hold an exclusive lock for the duration: a second run on the same outputs is refused, or with `wait` waits
    its turn (for work that the second run would then find done, like generating the sample)."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock_path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise UserError(f"another {what} run is writing these outputs (pid {holder}, lock {lock_path}); "
                        "wait for it to finish") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
