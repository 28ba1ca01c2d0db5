"""The public surface: ``cas.__all__`` and the error hierarchy (as httpx tests its exports)."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import types

import pytest

import cas
from cas import errors
from cas._moved import MOVED

# The core of the public API: what docs/api.md teaches.  Others may add to
# ``cas.__all__``; nothing here may disappear without a deliberate change.
CORE_EXPORTS = {
    "ArtifactNotFoundError",
    "ArtifactVersion",
    "CasError",
    "Digest",
    "GcReport",
    "IntegrityError",
    "InvalidNameError",
    "Store",
    "StoreStats",
    "VerifyReport",
    "VersionDeletedError",
    "VersionNotFoundError",
    "errors",
    "open_store",
    "__version__",
}


def test_core_exports_are_all_there():
    missing = CORE_EXPORTS - set(cas.__all__)
    assert not missing, f"removed from cas.__all__: {sorted(missing)}"


def test_every_export_exists_once():
    assert len(cas.__all__) == len(set(cas.__all__))
    for name in cas.__all__:
        assert hasattr(cas, name), name


def test_exports_are_public_objects_of_cas():
    for name in cas.__all__:
        obj = getattr(cas, name)
        if name == "__version__":
            assert isinstance(obj, str) and obj.count(".") >= 2
        elif isinstance(obj, types.ModuleType):
            assert obj.__name__.startswith("cas.")
        else:
            assert obj.__module__.startswith("cas"), f"{name} comes from {obj.__module__}"
            assert not name.startswith("_")


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from cas import *", namespace)
    assert {k for k in namespace if k != "__builtins__"} == set(cas.__all__)


def test_errors_exported_from_cas_are_the_same_objects():
    for name in cas.__all__:
        if name.endswith("Error"):
            assert getattr(cas, name) is getattr(errors, name)


# -- the error hierarchy ------------------------------------------------------------


def error_classes() -> list[type]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]


def test_errors_all_lists_every_error():
    assert sorted(errors.__all__) == sorted(c.__name__ for c in error_classes())


def test_every_error_is_a_cas_error_and_is_in_the_docstring():
    doc = errors.__doc__ or ""
    for cls in error_classes():
        assert issubclass(cls, errors.CasError)
        assert cls.__name__ in doc, f"{cls.__name__} is missing from the hierarchy drawn in cas/errors.py"


BUILTIN_BASES = {
    "InvalidNameError": ValueError,
    "StoreNotFoundError": FileNotFoundError,
    "ArtifactNotFoundError": KeyError,
    "VersionNotFoundError": KeyError,
    "VersionDeletedError": FileNotFoundError,
    "VersionExistsError": FileExistsError,
    "ReadOnlyError": PermissionError,
    "BlobNotFoundError": FileNotFoundError,
    "UnsafeLoadError": PermissionError,
    "CorruptRecordError": ValueError,
    "UnsupportedDataError": TypeError,
    "BackendError": OSError,
    "RunError": RuntimeError,
}


@pytest.mark.parametrize("name,base", sorted(BUILTIN_BASES.items()))
def test_errors_inherit_what_callers_catch(name, base):
    assert issubclass(getattr(errors, name), base)


def test_oserror_family_puts_the_builtin_first():
    """errno and filename stay meaningful: the OSError base comes before CasError."""
    for cls in error_classes():
        if issubclass(cls, OSError):
            mro = cls.__mro__
            assert mro.index(OSError) < mro.index(errors.CasError), cls


EXAMPLES = [
    errors.InvalidNameError("invalid artifact name 'x'"),
    errors.StoreNotFoundError("/tmp/nowhere"),
    errors.UnsupportedFormatError("store has format 99"),
    errors.ArtifactNotFoundError("no artifact named p/s/a"),
    errors.VersionNotFoundError("p/s/a has no version 3"),
    errors.VersionDeletedError("p/s/a", 3),
    errors.VersionExistsError("p/s/a@3 already exists", "refs/versions/p/s/a/3"),
    errors.ReadOnlyError("committed files never change"),
    errors.BlobNotFoundError("ab" * 32),
    errors.IntegrityError("ab" * 32, "cd" * 32, "blobs/ab/..."),
    errors.CorruptRecordError("journal/0000000000000017", "not a journal entry: 'ref' is missing"),
    errors.UnsafeLoadError("pickle needs allow_pickle=True"),
    errors.UnsupportedDataError("cannot save a set"),
    errors.BackendError("the bucket went away", "blobs/ab/cd"),
    errors.RunError("step names are unique within a run"),
]


@pytest.mark.parametrize("err", EXAMPLES, ids=lambda e: type(e).__name__)
def test_str_is_one_clear_line(err):
    text = str(err)
    assert text and "\n" not in text
    assert not text.startswith("[Errno"), "OSError's '[Errno N] msg: file' format leaked"
    assert not text.startswith(("'", '"')), "KeyError's repr() of the message leaked"


@pytest.mark.parametrize("err", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling(err):
    """Errors cross process boundaries (process pools); they must come back intact."""
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    if isinstance(err, OSError):
        assert (back.errno, back.filename) == (err.errno, err.filename)
    assert back.__dict__ == err.__dict__


def test_oserror_attributes():
    e = errors.BlobNotFoundError("ab" * 32)
    assert e.errno == 2 and e.digest == "ab" * 32
    e = errors.BackendError("down", "blobs/x")
    assert e.errno == 5 and e.filename == "blobs/x" and str(e) == "down"
    e = errors.IntegrityError("a" * 64, "b" * 64)
    assert (e.expected, e.actual) == ("a" * 64, "b" * 64)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_warns_and_is_the_module_it_moved_to(old):
    """cas 0.1's module paths keep working one release (cas._moved): the same module object,
    so attributes and monkeypatches reach it, with a DeprecationWarning naming the new path."""
    code = (
        "import importlib, warnings, cas\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"assert old is importlib.import_module({MOVED[old]!r}), old\n"
        f"assert any({MOVED[old]!r} in str(x.message) for x in w), [str(x.message) for x in w]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
