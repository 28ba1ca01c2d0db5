"""The writer lease: one writing process per store on a backend that cannot create atomically.

A backend without ``capabilities.atomic_create`` does create-only as
exists-then-put, so two processes racing for one ref could both "create" it
and both believe they claimed the version (invariant 6).  Such a backend takes
this lease before its first write; a second process that tries to write is
refused with :class:`cas.errors.ConcurrentWriterError`, naming the capability,
instead of racing.  Reading needs no lease.

How: an exclusive, non-blocking ``flock`` on a lock file named by the store, in
a directory every user of this machine shares (``$CAS_LEASE_DIR``, else
``<tempdir>/cas-leases``).  The kernel drops the lock when the holding process
ends, however it ends, so a lease is never stale.  Inside the holding process
every thread and every backend object of that store share the lease (counted,
released when the last one closes) and one thread lock for exists-then-put.
A forked child is another process: it must take the lease itself.

Limits: the lease is **per machine**.  Processes on two machines writing one
non-atomic store (an sftp server, a network filesystem reached through fsspec)
do not see each other's lease: nothing the backend offers can make
exists-then-put safe between them.  Stores shared by many machines belong on an
object store or local disk, whose creates are atomic.  A store reached under
two different spellings of its URL gets two leases.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import tempfile
import threading
from dataclasses import dataclass, field

from cas.errors import ConcurrentWriterError

__all__ = ["WriterLease", "acquire", "lease_dir", "process_lock"]

_registry = threading.Lock()
_locks: dict[str, threading.Lock] = {}
_held: dict[str, WriterLease] = {}


def process_lock(key: str) -> threading.Lock:
    """The one lock this process uses for exists-then-put on the store ``key``."""
    with _registry:
        return _locks.setdefault(key, threading.Lock())


def lease_dir() -> str:
    return os.environ.get("CAS_LEASE_DIR") or os.path.join(tempfile.gettempdir(), "cas-leases")


@dataclass
class WriterLease:
    """This process's exclusive right to write the store named ``key`` (see the module docstring)."""

    key: str
    path: str  # the lock file
    fd: int
    pid: int = field(default_factory=os.getpid)
    users: int = 1

    @property
    def held(self) -> bool:
        """False in a forked child, which inherited the object but is another process."""
        return self.pid == os.getpid()

    def release(self) -> None:
        """One user fewer; the last one drops the lock.  Harmless once released."""
        with _registry:
            if not self.held or _held.get(self.path) is not self:
                return
            self.users -= 1
            if self.users == 0:
                del _held[self.path]
                os.close(self.fd)  # closing the only descriptor drops the flock


def acquire(key: str, url: str) -> WriterLease:
    """Take (or share, within this process) the writer lease of the store ``key``.

    ``url`` is the store as the user knows it (credentials removed), for the error.
    Raises ConcurrentWriterError if another process on this machine holds it.
    """
    path = os.path.join(lease_dir(), hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
    with _registry:
        lease = _held.get(path)
        if lease is not None and lease.held:
            lease.users += 1
            return lease
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConcurrentWriterError(url, holder, path) from None
        with contextlib.suppress(OSError):  # a read-only lock file (another user's) still locks
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} for {url}\n".encode(), 0)
        lease = _held[path] = WriterLease(key, path, fd)
        return lease


def _open(path: str) -> int:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, exist_ok=True)
        with contextlib.suppress(OSError):  # shared by every user, like /tmp itself
            os.chmod(directory, 0o1777)
    flags = os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | flags)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)
    return fd


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
        if text:
            return text.split(" for ", 1)[0]
    return "another process"
