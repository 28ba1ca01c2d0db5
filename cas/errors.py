"""Every error cas raises, in one place.

Each error also inherits the built-in a caller would naturally catch, with the
OSError family first so ``errno`` and ``filename`` stay meaningful::

    CasError
    ├── InvalidNameError(ValueError)        malformed name, version, alias or path
    ├── StoreNotFoundError(FileNotFoundError)   no store at that location
    ├── UnsupportedFormatError              store written by a newer cas
    ├── ArtifactNotFoundError(KeyError)      unknown artifact name
    │   └── VersionNotFoundError            unknown version or alias
    ├── VersionDeletedError(FileNotFoundError)  the version was deleted
    ├── VersionExistsError(FileExistsError) a committed version cannot change
    ├── DestinationExistsError(FileExistsError)  cas get would replace a local file (--force allows it)
    ├── ReadOnlyError(PermissionError)      a write that would change immutable data
    ├── BlobNotFoundError(FileNotFoundError)   a blob the index points at is gone
    ├── PathNotFoundError(FileNotFoundError)   no such cas:// path (name, version, alias or file)
    ├── PathIsDirectoryError(IsADirectoryError)   a cas:// file operation on a directory
    ├── PathNotDirectoryError(NotADirectoryError) a cas:// path below a file
    ├── PathExistsError(FileExistsError)    a cas:// path that is already there (exclusive create, mkdir)
    ├── IntegrityError                      bytes do not match their digest
    ├── CorruptRecordError(ValueError)      a manifest, record, journal entry, ref or key in the
    │                                       backend that breaks the format's grammar
    ├── UnsafeLoadError(PermissionError)    loading would run code (pickle)
    ├── UnsupportedDataError(TypeError)     no materializer can save this value
    ├── MaterializerNotFoundError(LookupError)  a version's materializer is not installed here
    ├── BackendError(OSError)               the storage backend failed
    └── RunError(RuntimeError)             misuse of runs and steps
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "CasError",
    "InvalidNameError",
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


class InvalidNameError(ValueError, CasError):
    """A name, version, alias or path that breaks the grammar."""


class StoreNotFoundError(FileNotFoundError, CasError):
    __str__ = CasError.__str__

    def __init__(self, location: str):
        super().__init__(_errno.ENOENT, f"no cas store at {location} (run `cas init`)", location)


class UnsupportedFormatError(CasError):
    """The store was written by a newer cas, or uses an unknown hash."""


class ArtifactNotFoundError(KeyError, CasError):
    """No artifact has this name (a ``KeyError`` too)."""
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class VersionNotFoundError(ArtifactNotFoundError):
    """The artifact exists but has no such version or alias."""


class VersionDeletedError(FileNotFoundError, CasError):
    """The version existed and was deleted (``cas rm``); its number is never reused."""
    __str__ = CasError.__str__

    def __init__(self, name: str, version: int):
        super().__init__(_errno.ENOENT, f"{name}@{version} was deleted")
        self.name = name
        self.version = version


class VersionExistsError(FileExistsError, CasError):
    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        if filename is None:
            super().__init__(_errno.EEXIST, message)
        else:
            super().__init__(_errno.EEXIST, message, filename)


class DestinationExistsError(FileExistsError, CasError):
    """A download would replace an existing local file or directory (``cas get --force`` allows it)."""

    __str__ = CasError.__str__

    def __init__(self, path: str):
        super().__init__(_errno.EEXIST, f"{path} already exists (use --force to replace it)", path)


class ReadOnlyError(PermissionError, CasError):
    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        if filename is None:
            super().__init__(_errno.EACCES, message)
        else:
            super().__init__(_errno.EACCES, message, filename)


class BlobNotFoundError(FileNotFoundError, CasError):
    __str__ = CasError.__str__

    def __init__(self, digest: str):
        super().__init__(_errno.ENOENT, f"blob blake3:{digest} is missing from the backend")
        self.digest = digest


class PathNotFoundError(FileNotFoundError, CasError):
    """No such ``cas://`` path: unknown or deleted name, version, alias, or file in a tree."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.ENOENT, message) if filename is None else (_errno.ENOENT, message, filename)
        super().__init__(*args)


class PathIsDirectoryError(IsADirectoryError, CasError):
    """A file operation on a ``cas://`` directory (a pipeline, step, artifact or tree)."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.EISDIR, message) if filename is None else (_errno.EISDIR, message, filename)
        super().__init__(*args)


class PathNotDirectoryError(NotADirectoryError, CasError):
    """A ``cas://`` path that treats a file (a blob version or a file in a tree) as a directory."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.ENOTDIR, message) if filename is None else (_errno.ENOTDIR, message, filename)
        super().__init__(*args)


class PathExistsError(FileExistsError, CasError):
    """A ``cas://`` path that already exists where a new one was asked for."""

    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        args = (_errno.EEXIST, message) if filename is None else (_errno.EEXIST, message, filename)
        super().__init__(*args)


class IntegrityError(CasError):
    """Content read back does not hash to the digest it is stored under."""

    def __init__(self, expected: str, actual: str, where: str = ""):
        self.expected = expected
        self.actual = actual
        where = f" ({where})" if where else ""
        super().__init__(f"integrity error{where}: expected blake3:{expected}, got blake3:{actual}")


class CorruptRecordError(ValueError, CasError):
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


class UnsafeLoadError(PermissionError, CasError):
    """Loading this version would run code (pickle) and ``allow_pickle=True`` was not given."""
    __str__ = CasError.__str__

    def __init__(self, message: str):
        super().__init__(_errno.EACCES, message)


class UnsupportedDataError(TypeError, CasError):
    """``save`` got a value that no materializer knows how to store."""


class MaterializerNotFoundError(LookupError, CasError):
    """A version names a materializer this installation does not have (a missing extra or plugin)."""


class BackendError(OSError, CasError):
    __str__ = CasError.__str__

    def __init__(self, message: str, filename: str | None = None):
        if filename is None:
            super().__init__(_errno.EIO, message)
        else:
            super().__init__(_errno.EIO, message, filename)


class RunError(RuntimeError, CasError):
    """A run or step used wrongly: ended twice, unknown, or lineage arguments without a run."""

