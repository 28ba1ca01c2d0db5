"""The stat cache under attack: a row poisoned with a wrong digest for a file whose stat is unchanged.

The trust boundary (docs/format.md, Stat cache): the cache lives in this machine's own
index, next to the rows that say which version is which digest; whoever can write that
file can already make this machine's cas show anything, so a poisoned row cannot be told
from a true one by its stat.  What cas does guarantee:

* a hit only replaces hashing: a digest the store does not hold, or holds with another
  size than the file's, is not taken - the file is read (the row is then corrected);
* ``rehash=True`` (``cas put --rehash``) reads every file whatever the cache says;
* a poisoned row never changes the store's bytes: every byte read is still verified
  against its digest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import cas


@pytest.fixture(params=[1, 2])
def store(request, tmp_path):
    with cas.open_store(str(tmp_path / f"s{request.param}"), format=request.param) as s:
        yield s


def _poison(store: cas.Store, path: Path, digest: str, ahead_s: float = 0.0) -> None:
    """Make the cache vouch for ``digest`` as ``path``'s content, stat exactly as it is now,
    recorded now (``ahead_s``: by a clock that far ahead), well after its last change (not racy)."""
    time.sleep(0.25)  # past the racy margin (100 ms on a fine-grained filesystem)
    st = os.stat(path)
    row = (os.fsencode(os.path.abspath(path)), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
           bytes.fromhex(digest), time.time_ns() + int(ahead_s * 1e9))
    with store.index.write() as c:
        c.execute("DELETE FROM stat_cache WHERE path = ?", (row[0],))
        c.execute("INSERT INTO stat_cache (path, size, mtime_ns, ctime_ns, inode, dev, digest, recorded_ns)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def _save(store: cas.Store, where: str, path: Path, name: str, **kw) -> bytes:
    """Save ``path`` alone or as part of its directory; the bytes the new version holds for it."""
    if where == "file":
        return store.save(path, name, **kw).read_bytes()
    return store.save(path.parent, name, **kw).read_bytes(path.name)


@pytest.mark.parametrize("where", ["file", "tree"])
def test_a_poisoned_digest_the_store_lacks_is_not_taken(store, tmp_path, where):
    f = tmp_path / "src" / "data.bin"
    f.parent.mkdir()
    f.write_bytes(b"the real content " * 10)
    _poison(store, f, "ab" * 32)
    assert _save(store, where, f, "sc/s/a") == f.read_bytes()
    assert store.verify(deep=True).ok


@pytest.mark.parametrize("where", ["file", "tree"])
def test_a_poisoned_digest_of_a_stored_blob_of_another_size_is_not_taken(store, tmp_path, where):
    other = store.save(b"another, shorter content", "sc/s/other")
    f = tmp_path / "src" / "data.bin"
    f.parent.mkdir()
    f.write_bytes(b"the real content " * 10)
    _poison(store, f, other.digest.hex)
    got = _save(store, where, f, "sc/s/a")
    assert got == f.read_bytes()
    v = store.get_artifact_version("sc/s/a", 1)
    assert v.size == len(got)  # the record's size is the blob's, never the stat's alone
    assert store.verify(deep=True).ok
    # the row was corrected by the read: the next save is a hit on the truth
    assert _save(store, where, f, "sc/s/b") == f.read_bytes()


@pytest.mark.parametrize("where", ["file", "tree"])
def test_a_poisoned_digest_of_a_same_size_blob_is_the_trust_boundary_and_rehash_reads(store, tmp_path, where):
    f = tmp_path / "src" / "data.bin"
    f.parent.mkdir()
    f.write_bytes(b"AAAA" * 40)
    liar = store.save(b"BBBB" * 40, "sc/s/liar")  # stored, and exactly the file's size
    _poison(store, f, liar.digest.hex)
    # Inside the boundary: the cache is this machine's own index, as trusted as its version rows.
    assert _save(store, where, f, "sc/s/a") == b"BBBB" * 40
    # ...and what got in is still whole and verified (the store's bytes were not touched).
    assert store.verify(deep=True).ok
    # The way out, documented: --rehash reads every file and records what it read.
    assert _save(store, where, f, "sc/s/b", rehash=True) == b"AAAA" * 40
    assert _save(store, where, f, "sc/s/c") == b"AAAA" * 40


@pytest.mark.parametrize("where", ["file", "tree"])
def test_a_row_recorded_by_a_clock_ahead_of_this_one_is_not_trusted(store, tmp_path, where):
    """A row from the future (the clock was stepped back since, or the row was planted)
    cannot be judged by the racy rule: it is read again, as a racy one is."""
    f = tmp_path / "src" / "data.bin"
    f.parent.mkdir()
    f.write_bytes(b"AAAA" * 40)
    liar = store.save(b"BBBB" * 40, "sc/s/liar")
    _poison(store, f, liar.digest.hex, ahead_s=3600)
    assert _save(store, where, f, "sc/s/a") == b"AAAA" * 40
    assert _save(store, where, f, "sc/s/b", rehash=True) == b"AAAA" * 40
    assert _save(store, where, f, "sc/s/c") == b"AAAA" * 40
