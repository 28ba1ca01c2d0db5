"""Errors can be caught by meaning (cas.errors groups), and by the built-ins they always had."""

from __future__ import annotations

import pytest

import cas
from cas import errors


def test_not_found_catches_a_missing_version_blob_and_run(lstore):
    lstore.save(b"one", "p/s/a")
    with pytest.raises(errors.NotFoundError):
        lstore.get_artifact_version("p/s/a", 7)
    with pytest.raises(errors.NotFoundError):
        lstore.get_artifact_version("p/s/nothing")
    with pytest.raises(errors.NotFoundError):
        lstore.blobs.read_bytes("0" * 64)
    with pytest.raises(errors.NotFoundError):
        lstore.get_run("no-such-run")
    with pytest.raises(LookupError):  # the group's built-in
        lstore.get_run("no-such-run")


def test_a_missing_run_is_still_a_run_error(lstore):
    with pytest.raises(errors.RunError, match="no run"):
        lstore.get_run("no-such-run")


def test_conflict_catches_a_version_that_exists(lstore):
    lstore.save(b"one", "p/s/a")
    with pytest.raises(errors.ConflictError) as e:
        lstore.link("p/s/a", lstore.get_artifact_version("p/s/a", 1).digest, version=1)
    assert isinstance(e.value, errors.VersionExistsError)


@pytest.mark.parametrize(
    "leaf,group",
    [
        (errors.VersionExistsError, errors.ConflictError),
        (errors.DestinationExistsError, errors.ConflictError),
        (errors.PathExistsError, errors.ConflictError),
        (errors.ReadOnlyError, errors.ConflictError),
        (errors.ConcurrentWriterError, errors.ConflictError),
        (errors.RunError, errors.ConflictError),
        (errors.StoreNotFoundError, errors.NotFoundError),
        (errors.ArtifactNotFoundError, errors.NotFoundError),
        (errors.VersionNotFoundError, errors.NotFoundError),
        (errors.VersionDeletedError, errors.NotFoundError),
        (errors.BlobNotFoundError, errors.NotFoundError),
        (errors.PathNotFoundError, errors.NotFoundError),
        (errors.RunNotFoundError, errors.NotFoundError),
        (errors.RemoteNotFoundError, errors.NotFoundError),
        (errors.MaterializerNotFoundError, errors.NotFoundError),
        (errors.InvalidNameError, errors.InvalidArgumentError),
        (errors.InvalidValueError, errors.InvalidArgumentError),
        (errors.UnsupportedDataError, errors.InvalidArgumentError),
        (errors.UnsafeLoadError, errors.InvalidArgumentError),
        (errors.CorruptRecordError, errors.IntegrityError),
        (errors.UnsupportedFormatError, errors.IntegrityError),
    ],
)
def test_every_error_sits_in_its_group(leaf, group):
    assert issubclass(leaf, group)


def test_every_error_is_in_exactly_one_group():
    groups = (errors.NotFoundError, errors.ConflictError, errors.InvalidArgumentError, errors.IntegrityError, errors.BackendError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is errors.CasError or cls in groups:
            continue
        assert any(issubclass(cls, g) for g in groups), name


def test_groups_have_the_builtin_bases_they_promise():
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert issubclass(errors.BackendError, OSError)
    assert not issubclass(errors.ConflictError, OSError)


def test_a_bad_value_that_is_not_a_name_is_invalid_argument_and_still_invalid_name():
    with pytest.raises(errors.InvalidValueError) as e:
        cas.Digest.parse("not a digest")
    assert isinstance(e.value, errors.InvalidArgumentError)
    assert isinstance(e.value, errors.InvalidNameError)  # what cas 0.1 raised there
    assert isinstance(e.value, ValueError)


def test_a_bad_name_is_not_an_invalid_value(lstore):
    with pytest.raises(errors.InvalidNameError) as e:
        lstore.save(b"x", "../escape")
    assert not isinstance(e.value, errors.InvalidValueError)


def test_concurrent_writer_error_names_the_capability_and_pickles():
    import pickle

    err = errors.ConcurrentWriterError("sftp://host/store", "process 12 on m1", "/tmp/cas-leases/x.lock")
    assert "atomic_create" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is errors.ConcurrentWriterError and again.holder == err.holder and str(again) == str(err)
