"""What one save costs on S3 (moto), in requests, and the listing that keeps it low.

Once writers no longer contend (format 2's journal), requests are what bound
many writers on one bucket: each costs CPU in the client and in the server.
A format-2 save of a small blob is 4 create-only PUTs (content, record, ref,
journal entry) and one LIST of gc's marks; it reads nothing back and lists
no journal.  A listing of a prefix that holds nothing is one request (s3fs's
own ``find`` would ask again with a HEAD and a second LIST).
"""

from __future__ import annotations

from collections import Counter

import pytest

import cas
from cas.core.refs import JOURNAL2

pytestmark = pytest.mark.s3


def _count_requests(store: cas.Store) -> Counter:
    """S3 operations the store's client sends from now on, by name."""
    ops: Counter = Counter()
    backend = store.backend
    while not hasattr(backend, "fs"):  # the object-store backend under any wrapper
        backend = getattr(backend, "inner", None) or backend.backend
    backend.fs.connect()
    backend.fs.s3.meta.events.register("before-parameter-build.s3", lambda model, **kw: ops.update([model.name]))
    return ops


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_small_save_is_five_requests(s3_root, s3_options, tmp_path, fmt):
    cas.open_store(s3_root, index=str(tmp_path / "init.sqlite"), format=fmt, **s3_options).close()
    store = cas.open_store(s3_root, index=str(tmp_path / "w.sqlite"), **s3_options)
    store.save(b"warm", "p/s/warm")
    ops = _count_requests(store)
    for i in range(3):
        store.save(f"save {i}".encode(), "p/s/model")
    # content, record, ref, journal entry (format 1: at its hint, free as nobody else
    # wrote), and gc's marks: nothing read back, no exists check, no journal listed
    assert ops == Counter({"PutObject": 12, "ListObjectsV2": 3})
    assert [v.version for v in store.list_versions("p/s/model")] == [1, 2, 3]


def test_listing_a_prefix_is_one_request_and_lists_only_below_it(s3_root, s3_options, tmp_path):
    store = cas.open_store(s3_root, index=str(tmp_path / "w.sqlite"), format=2, **s3_options)
    backend = store.backend
    ops = _count_requests(store)
    assert list(backend.list("gc")) == [] and list(backend.list(f"{JOURNAL2}/20261201/1330")) == []
    assert ops == Counter({"ListObjectsV2": 2})  # nothing there: one request each
    for rel in ("pre/a", "pre/sub/b", "prefix/c", "pre"):  # a sibling prefix, and a file named like the prefix
        assert backend.create_bytes(rel, b"x")
    assert sorted(e.path for e in backend.list("pre")) == ["pre/a", "pre/sub/b"]  # as a local store lists
    assert sorted(e.path for e in backend.list("pre/sub")) == ["pre/sub/b"]
