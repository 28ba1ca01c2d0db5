"""Every error cas raises, in one place, grouped by meaning.

Catch a group to handle a kind of failure (``except cas.errors.NotFoundError``),
a leaf for one case.  Each error also inherits the built-in a caller would
naturally catch, with the OSError family first so ``errno`` and ``filename``
stay meaningful; a group never adds a built-in a member did not already have,
except ``NotFoundError`` (LookupError) and ``InvalidArgumentError`` (ValueError)::

    CasError
    ├── NotFoundError(LookupError)              what was asked for is not there
    │   ├── StoreNotFoundError(FileNotFoundError)   no store at that location
    │   ├── ArtifactNotFoundError(KeyError)      unknown artifact name
    │   │   └── VersionNotFoundError            unknown version or alias
    │   ├── VersionDeletedError(FileNotFoundError)  the version was deleted
    │   ├── BlobNotFoundError(FileNotFoundError)   a blob the index points at is gone
    │   ├── PathNotFoundError(FileNotFoundError)   no such cas:// path (name, version, alias or file)
    │   ├── RunNotFoundError(RunError)          no such run, or no such step in it
    │   ├── RemoteNotFoundError(InvalidNameError)  no remote of that name in the config
    │   └── MaterializerNotFoundError           a version's materializer is not installed here
    ├── ConflictError                           the request conflicts with what is stored
    │   ├── VersionExistsError(FileExistsError) a committed version cannot change
    │   ├── DestinationExistsError(FileExistsError)  cas get would replace a local file (--force allows it)
    │   ├── PathExistsError(FileExistsError)    a cas:// path that is already there (exclusive create, mkdir)
    │   ├── PathIsDirectoryError(IsADirectoryError)   a cas:// file operation on a directory
    │   ├── PathNotDirectoryError(NotADirectoryError) a cas:// path below a file
    │   ├── ReadOnlyError(PermissionError)      a write that would change immutable data
    │   ├── ConcurrentWriterError               another process writes this store, whose backend
    │   │                                       cannot create atomically (cas.backends.lease)
    │   └── RunError(RuntimeError)              misuse of runs and steps (ended, exists, ...)
    │       └── RunNotFoundError(NotFoundError)
    ├── InvalidArgumentError(ValueError)        an argument, option or setting cas cannot accept
    │   ├── InvalidNameError                    malformed name, version, alias or path
    │   │   └── InvalidValueError               not a name: a bad number, type, option or config;
    │   │                                       under InvalidNameError only because cas 0.1 raised that
    │   ├── UnsupportedDataError(TypeError)     no materializer can save this value
    │   └── UnsafeLoadError(PermissionError)    loading would run code (pickle) without allow_pickle=True
    ├── IntegrityError                          bytes do not match their digest; the group of
    │   │                                       everything in the backend cas cannot trust or read
    │   ├── CorruptRecordError(ValueError)      a manifest, record, journal entry, ref or key in the
    │   │                                       backend that breaks the format's grammar
    │   └── UnsupportedFormatError              store written by a newer cas
    └── BackendError(OSError)                   the storage backend failed
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "CasError",
    "NotFoundError",
    "ConflictError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidValueError",
    "RemoteNotFoundError",
    "RunNotFoundError",
    "ConcurrentWriterError",
    "StoreNotFoundError",
    "UnsupportedFormatError",
    "ArtifactNotFoundError",
    "VersionNotFoundError",
    "VersionDeletedError",
    "VersionExistsError",
    "DestinationExistsError",
    "ReadOnlyError",
    "BlobNotFoundError",
    "PathNotFoundError",
    "PathIsDirectoryError",
    "PathNotDirectoryError",
    "PathExistsError",
    "IntegrityError",
    "CorruptRecordError",
    "UnsafeLoadError",
    "UnsupportedDataError",
    "MaterializerNotFoundError",
    "BackendError",
    "RunError",
]


class CasError(Exception):
    """Base class of every error cas raises on purpose."""

    def __str__(self) -> str:
        # OSError subclasses format as "[Errno 2] msg: 'file'"; one clear line is friendlier.
        if isinstance(self, OSError) and self.strerror:
            return self.strerror
        return super().__str__()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # In the OSError family, OSError's C-level __reduce__ comes before ours in the MRO.
        if issubclass(cls, OSError) and "__reduce__" not in cls.__dict__:
            cls.__reduce__ = CasError.__reduce__  # type: ignore[method-assign]

    def __reduce__(self):
        # Errors cross process boundaries (process pools, multiprocessing).  The
        # built-in reduce hands ``args`` back to ``__init__``, whose signature
        # ours change (``BlobNotFoundError(digest)``), so rebuild without it.
        args = self.args
        if isinstance(self, OSError) and self.filename is not None:
            args = (self.errno, self.strerror, self.filename)  # OSError keeps filename out of args
        return (_rebuild, (type(self), args, dict(self.__dict__)))


def _rebuild(cls: type, args: tuple, state: dict) -> BaseException:
    err = cls.__new__(cls, *args)
    # ``args`` are already in their final form: give them to the built-in base's
    # __init__ (OSError's sets errno/strerror/filename from them), not to ours.
    builtin = next(b for b in cls.__mro__ if b.__module__ == "builtins")
    builtin.__init__(err, *args)
    err.__dict__.update(state)
    return err


# -- the groups ------------------------------------------------------------------


class NotFoundError(LookupError, CasError):
    """What was asked for is not there (a store, artifact, version, blob, path, run, ...)."""


class ConflictError(CasError):
    """The request conflicts with what is stored, or with who else is writing."""


class InvalidArgumentError(ValueError, CasError):
    """An argument, option or setting cas cannot accept; nothing was written."""


# IntegrityError and BackendError are groups as well as errors; they follow below.

# -- invalid arguments -----------------------------------------------------------


class InvalidNameError(InvalidArgumentError):
    """A name, version, alias or path that breaks the grammar."""


class InvalidValueError(InvalidNameError):
    """An argument, option or setting that is not valid and is not a name: a number out of
    range, a value of the wrong type, a malformed config file or environment variable.

    It derives from InvalidNameError only because cas 0.1 raised that for these cases, so
    existing ``except InvalidNameError`` keeps working; catch ``InvalidArgumentError``."""


class StoreNotFoundError(FileNotFoundError, NotFoundError):
    __str__ = CasError.__str__

    def __init__(self, location: str):
        super().__init__(_errno.ENOENT, f"no cas store at {location} (run `cas init`)", location)


class ArtifactNotFoundError(KeyError, NotFoundError):
    """No artifact has this name (a ``KeyError`` too)."""
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class VersionNotFoundError(ArtifactNotFoundError):
    """The artifact exists but has no such version or alias."""


class VersionDeletedError(FileNotFoundError, NotFoundError):
    """The version existed and was deleted (``cas rm``); its number is never reused."""
    __str__ = CasError.__str__

    def __init__(self, name: str, version: int):
        super().__init__(_errno.ENOENT, f"{name}@{version} was deleted")
        self.name = name
        self.version = version


class VersionExistsError(FileExistsError, ConflictError):
    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        if filename is None:
            super().__init__(_errno.EEXIST, message)
        else:
            super().__init__(_errno.EEXIST, message, filename)


class DestinationExistsError(FileExistsError, ConflictError):
    """A download would replace an existing local file or directory (``cas get --force`` allows it)."""

    __str__ = CasError.__str__

    def __init__(self, path: str):
        super().__init__(_errno.EEXIST, f"{path} already exists (use --force to replace it)", path)


class ReadOnlyError(PermissionError, ConflictError):
    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        if filename is None:
            super().__init__(_errno.EACCES, message)
        else:
            super().__init__(_errno.EACCES, message, filename)


class BlobNotFoundError(FileNotFoundError, NotFoundError):
    __str__ = CasError.__str__

    def __init__(self, digest: str):
        super().__init__(_errno.ENOENT, f"blob blake3:{digest} is missing from the backend")
        self.digest = digest


class PathNotFoundError(FileNotFoundError, NotFoundError):
    """No such ``cas://`` path: unknown or deleted name, version, alias, or file in a tree."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.ENOENT, message) if filename is None else (_errno.ENOENT, message, filename)
        super().__init__(*args)


class PathIsDirectoryError(IsADirectoryError, ConflictError):
    """A file operation on a ``cas://`` directory (a pipeline, step, artifact or tree)."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.EISDIR, message) if filename is None else (_errno.EISDIR, message, filename)
        super().__init__(*args)


class PathNotDirectoryError(NotADirectoryError, ConflictError):
    """A ``cas://`` path that treats a file (a blob version or a file in a tree) as a directory."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.ENOTDIR, message) if filename is None else (_errno.ENOTDIR, message, filename)
        super().__init__(*args)


class PathExistsError(FileExistsError, ConflictError):
    """A ``cas://`` path that already exists where a new one was asked for."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.EEXIST, message) if filename is None else (_errno.EEXIST, message, filename)
        super().__init__(*args)


class IntegrityError(CasError):
    """Content read back does not hash to the digest it is stored under.

    Also the group of everything in the backend that cas cannot trust or read
    (a corrupt record, a newer format): ``except IntegrityError`` catches those too."""

    def __init__(self, expected: str, actual: str, where: str = ""):
        self.expected = expected
        self.actual = actual
        where = f" ({where})" if where else ""
        super().__init__(f"integrity error{where}: expected blake3:{expected}, got blake3:{actual}")


class CorruptRecordError(ValueError, IntegrityError):
    """Something decoded from the backend breaks the format's grammar (DESIGN invariant 12).

    ``key`` names the offending object: ``blake3:<hex>`` for a blob (a record
    or a tree manifest), else its backend key (``journal/...``, ``refs/...``).
    A reader refuses it, skips it and lets ``verify`` report it; it never
    becomes a path.
    """

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class UnsupportedFormatError(IntegrityError):
    """The store was written by a newer cas, or uses an unknown hash."""

    def __init__(self, message: str):
        CasError.__init__(self, message)  # not a digest mismatch: IntegrityError's arguments do not apply


class UnsafeLoadError(PermissionError, InvalidArgumentError):
    """Loading this version would run code (pickle) and ``allow_pickle=True`` was not given."""
    __str__ = CasError.__str__

    def __init__(self, message: str):
        super().__init__(_errno.EACCES, message)


class UnsupportedDataError(TypeError, InvalidArgumentError):
    """``save`` got a value that no materializer knows how to store."""


class MaterializerNotFoundError(NotFoundError):
    """A version names a materializer this installation does not have (a missing extra or plugin)."""


class BackendError(OSError, CasError):
    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        if filename is None:
            super().__init__(_errno.EIO, message)
        else:
            super().__init__(_errno.EIO, message, filename)


class RunError(RuntimeError, ConflictError):
    """A run or step used wrongly: ended twice, unknown, or lineage arguments without a run."""



class RunNotFoundError(RunError, NotFoundError):
    """No run with this id, or no step of that name in the run."""


class RemoteNotFoundError(InvalidNameError, NotFoundError):
    """No remote of this name in the config (an InvalidNameError too, as in cas 0.1)."""


class ConcurrentWriterError(ConflictError):
    """Another process on this machine is writing this store, and its backend cannot create
    files atomically (``capabilities.atomic_create`` is False), so two writers would race
    for the same version.  Writers of such a store take turns; see cas.backends.lease."""

    def __init__(self, url: str, holder: str, lock: str):
        self.url = url
        self.holder = holder
        self.lock = lock
        super().__init__(
            f"{url}: {holder} is writing this store, and its backend cannot create files atomically "
            f"(capability atomic_create is False), so only one process may write at a time; "
            f"retry when it is done, or use local disk or an object store for concurrent writers (lock {lock})"
        )
