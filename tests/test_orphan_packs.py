"""A format-2 tree save killed between its claims and its journal entry (DESIGN invariant 14).

A format-2 save of small files claims the pack index ref (``refs/packs/<pack>``)
and the version ref, then announces both in one journal entry.  A writer
SIGKILLed between the claims and that entry leaves two orphans, the version's
content reachable only through the orphan pack index.  Whoever meets them
(a reindex, verify, a claimer of the next number) must learn the pack index
before it checks the version's content: else the version looks as if its
bytes were missing and is skipped - a version that was saved whole, hidden.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import kill_points
import pytest
from store_helpers import make_tree

import cas
from cas.core.entries import decode_entry
from cas.core.refs import version_ref

pytestmark = pytest.mark.timeout(120)

SMALL = {f"sub/f{i}.txt": b"small file %d, packed" % i for i in range(6)}

# A real SIGKILL at the start of journal write number ``at``: after the claims it
# announces, before anything does.  A save journals its pack index first (1), then its
# version (2); a sync claims every pack ref and version ref, then writes one entry (1).
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import cas
    import kill_points
    from cas.storage.journal import Journal2

    how, store_dir, index, source = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    store = cas.open_store(store_dir, index=index)
    kill_points.arm(2 if how == "save" else 1, os_calls=(), index_writes=False)
    kill_points.count_method(Journal2, "append", after=False)
    if how == "save":
        store.save(Path(source), "p/s/tree")
    else:
        cas.open_store(source).sync_to(store)
    print("not killed", flush=True)
    """
)


@pytest.fixture(params=["save", "sync"])
def killed(tmp_path, request):
    """A format-2 store holding p/s/tree@1 (known to the index ``a.sqlite``) and the
    orphan p/s/tree@2 (with its pack index ref: an orphan too after a sync), whose
    writer was killed before its journal entry."""
    how = request.param
    store_dir = tmp_path / "store"
    one = make_tree(tmp_path / "one", {"only.txt": b"version one"})
    two = make_tree(tmp_path / "two", SMALL)
    source = str(two)
    with cas.open_store(str(store_dir), format=2, index=str(tmp_path / "a.sqlite")) as s:
        if how == "save":
            s.save(one, "p/s/tree")
        else:
            source = str(tmp_path / "source")
            with cas.open_store(source, format=2) as src:
                src.save(one, "p/s/tree")
                src.sync_to(s)
                src.save(two, "p/s/tree")
    argv = [sys.executable, "-c", CHILD, how, str(store_dir), str(tmp_path / "killed.sqlite"), source]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=kill_points.child_env())
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    # Looked at on disk, not through a Store: opening one on a fresh index would reindex
    refs = {str(p.relative_to(store_dir)) for p in (store_dir / "refs").rglob("*") if p.is_file()}
    assert version_ref("p/s/tree", 2) in refs, "the kill came before the version's claim"
    packs = {ref for ref in refs if ref.startswith("refs/packs/")}
    assert packs, "nothing packed: the test needs the content in a pack"
    announced = {e.ref.path for p in (store_dir / "journal2").rglob("*") if p.is_file() for e in decode_entry(p.read_bytes(), str(p))}
    assert version_ref("p/s/tree", 2) not in announced
    assert (packs <= announced) == (how == "save")
    return store_dir


def reads_whole(store: cas.Store) -> None:
    v = store.get_artifact_version("p/s/tree", 2)
    assert {path: v.read_bytes(path) for path, _, _ in v.files()} == SMALL


def test_reindex_on_a_fresh_index_shows_the_version_whose_pack_index_is_an_orphan_too(killed, tmp_path):
    with cas.open_store(str(killed), index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert [v.version for v in fresh.list_versions("p/s/tree")] == [1, 2]
        reads_whole(fresh)
    # the reindex journalled both orphans: a machine that knew the store before learns them
    with cas.open_store(str(killed), index=str(tmp_path / "a.sqlite")) as a:
        reads_whole(a)
        assert a.verify(deep=True).orphans == []


@pytest.mark.parametrize("meets", ["verify", "claimer", "reindex"])
def test_whoever_meets_the_orphans_learns_the_pack_index_first(killed, tmp_path, meets):
    with cas.open_store(str(killed), index=str(tmp_path / "a.sqlite")) as a:
        if meets == "verify":
            report = a.verify(deep=True)
            assert report.ok and version_ref("p/s/tree", 2) in report.orphans, report
        elif meets == "claimer":
            assert a.save(b"three", "p/s/tree").version == 3
        else:
            a.reindex()
        reads_whole(a)
    with cas.open_store(str(killed), index=str(tmp_path / "other.sqlite")) as other:
        reads_whole(other)
        assert other.verify(deep=True).ok
