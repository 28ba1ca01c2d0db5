"""Objects planted in a local format-2 store that cas never writes: symlinks (to a file or
a directory outside) and FIFOs under ``journal2/``, ``packs/`` and ``refs/packs/``.

The format-1 counterparts are in tests/test_bad_input.py (symlinks at format 1's journal
slots and refs) and tests/test_store.py (symlinked blobs).  The rule is the same: a
planted object is never followed or read; opening, refreshing and reindexing refuse it
with a typed error (reported by ``verify`` under ``invalid`` or ``foreign``, never
stopping the refresh), and nothing outside the store is read, written or removed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import msgpack
import pytest
from store_helpers import make_tree

import cas
from cas import errors
from cas.core.entries import encode_entry
from cas.core.refs import journal2_key, version_ref
from cas.storage.journal import now_us

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs need POSIX"),
    pytest.mark.timeout(120),  # a FIFO that is opened for reading blocks forever: fail, don't hang
]

SMALL = {f"sub/f{i}.txt": b"small file %d" % i for i in range(5)}  # packed: a format-2 tree save


@pytest.fixture
def victim(tmp_path):
    """A local format-2 store with a loose file, a packed tree and an alias."""
    with cas.open_store(str(tmp_path / "store"), format=2) as s:
        s.save(b"one", "p/s/a")
        s.save(b"two", "p/s/a", aliases=["production"])
        s.save(make_tree(tmp_path / "tree", SMALL), "p/s/tree")
        assert s.format == 2 and list(Path(s.backend.abspath("packs")).rglob("*"))
        yield s


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    return d


def tree_state(root: Path) -> dict[str, bytes | str]:
    """Every name under ``root`` with its bytes (or what it is): to show nothing changed."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = f"-> {os.readlink(p)}"
        elif p.is_fifo():
            out[rel] = "fifo"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


def invalid_lines(store: cas.Store, *needles: str) -> list[str]:
    report = store.verify()
    assert not report.ok
    for line in report.invalid:
        assert line and "\n" not in line and "\x00" not in line, f"not one printable line: {line!r}"
    return [line for line in report.invalid if all(n in line for n in needles)]


def crafted_claim(store: cas.Store, version: int) -> tuple[str, bytes]:
    """A genuine-looking claim of p/s/a@version (record blob and ref, no entry yet):
    returns the ref and the bytes of an entry announcing it.  Applied, it would show
    a version nobody saved."""
    record = msgpack.unpackb(store.blobs.read_bytes(store.records.read_ref(version_ref("p/s/a", 1))), raw=False)
    record["version"] = version
    digest = store.blobs.put_bytes(msgpack.packb(record, use_bin_type=True)).digest
    ref = version_ref("p/s/a", version)
    assert store.backend.create_bytes(ref, digest.encode())
    return ref, encode_entry([(ref, digest)])


def versions(store: cas.Store) -> list[int]:
    return [v.version for v in store.list_versions("p/s/a")]


def test_a_regular_entry_announcing_the_crafted_claim_is_applied(victim):
    """The control: the entry the tests below plant behind a symlink or in a linked
    directory is applied when it is an ordinary file, so its absence there is the refusal."""
    ref, entry = crafted_claim(victim, 3)
    key = journal2_key(now_us(), "0" * 16, 0)
    assert victim.backend.create_bytes(key, entry)
    victim.refresh()
    assert versions(victim) == [1, 2, 3]


def test_a_symlink_planted_as_a_journal2_entry_is_refused_not_followed(victim, outside, tmp_path):
    ref, entry = crafted_claim(victim, 3)
    (outside / "entry").write_bytes(entry)
    key = journal2_key(now_us(), "0" * 16, 0)
    link = Path(victim.backend.abspath(key))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / "entry")
    before = tree_state(outside)
    with cas.open_store(victim.backend.root) as other:  # the same index: a refresh lists the slot
        assert versions(other) == [1, 2]
        assert invalid_lines(other, key, "a symlink, refused (not followed)")
        assert other.save(b"three", "p/s/a").version == 4  # the crafted claim holds 3: stepped over
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:  # reindex
        assert invalid_lines(fresh, key, "a symlink, refused (not followed)")
        assert fresh.get_artifact_version("p/s/a", 4).read_bytes() == b"three"
        assert fresh.get_artifact_version("p/s/tree").read_bytes("sub/f3.txt") == SMALL["sub/f3.txt"]
    assert tree_state(outside) == before


@pytest.mark.parametrize("level", ["journal2", "day", "slot"])
def test_a_symlinked_journal2_directory_is_never_listed_through_nor_written_through(victim, outside, level):
    """The directory holding this slot's entries, moved outside and linked back, with a
    crafted entry added there: a refresh must not read it (scandir of a linked prefix and
    a path through a linked directory both follow unless refused), and a save into the
    slot refuses with BackendError, writing nothing there."""
    ref, entry = crafted_claim(victim, 3)
    depth = {"journal2": 1, "day": 2, "slot": 3}[level]
    # this slot's directory and the next minutes' (the save below may cross into the next slot)
    keys = [journal2_key(now_us() + ahead * 1_000_000, "0" * 16, 0) for ahead in (0, 120)]
    linked = sorted({"/".join(k.split("/")[:depth]) for k in keys})
    for n, rel in enumerate(linked):
        real = Path(victim.backend.abspath(rel))
        real.mkdir(parents=True, exist_ok=True)
        shutil.move(str(real), outside / f"moved{n}")
        real.symlink_to(outside / f"moved{n}")
    planted = outside / "moved0" / os.path.relpath(keys[0], linked[0])
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(entry)
    before = tree_state(outside)
    victim.refresh()
    assert versions(victim) == [1, 2]
    # A new process (a Store checks each directory it writes into once, when it first makes it)
    with cas.open_store(victim.backend.root) as other, pytest.raises(errors.BackendError, match="symlink"):
        other.save(b"three", "p/s/b")  # its entry would go into the linked slot
    assert tree_state(outside) == before
    assert victim.get_artifact_version("p/s/tree").read_bytes("sub/f0.txt") == SMALL["sub/f0.txt"]


def test_a_symlinked_journal2_slot_is_reported_by_reindex(victim, outside, tmp_path):
    key = journal2_key(now_us(), "0" * 16, 0)
    slot = Path(victim.backend.abspath(key)).parent
    slot.mkdir(parents=True, exist_ok=True)
    shutil.move(str(slot), outside / "slot")
    slot.symlink_to(outside / "slot")
    before = tree_state(outside)
    rel = os.path.relpath(slot, victim.backend.root)
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert invalid_lines(fresh, rel, "not a journal key")
        assert fresh.get_artifact_version("p/s/a").read_bytes() == b"two"  # its refs: completed orphans
    assert tree_state(outside) == before


@pytest.mark.parametrize("where", ["journal2 entry", "next version ref", "pack ref"])
def test_a_fifo_planted_in_the_store_is_refused_and_never_opened_blocking(victim, tmp_path, where):
    """Opening a FIFO for reading waits for a writer: one planted where cas reads
    (an entry, a ref) would hang every refresh or reindex."""
    if where == "journal2 entry":
        key = journal2_key(now_us(), "0" * 16, 0)
    elif where == "next version ref":
        key = version_ref("p/s/a", 3)
    else:
        key = next(p for p in victim.records.list_refs("packs"))
        os.unlink(victim.backend.abspath(key))
    path = Path(victim.backend.abspath(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    with cas.open_store(victim.backend.root) as other:
        other.refresh()
        assert other.save(b"three", "p/s/a").version == (4 if where == "next version ref" else 3)
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert invalid_lines(fresh, key, "not a regular file, refused (not read)")
        assert fresh.get_artifact_version("p/s/a").read_bytes() == b"three"
    assert path.is_fifo()


def test_a_fifo_planted_as_a_pack_is_refused_on_read_and_verify(victim):
    pack = next(p for p in Path(victim.backend.abspath("packs")).rglob("*") if p.is_file())
    pack.unlink()
    os.mkfifo(pack)
    with pytest.raises(errors.BackendError, match="not a regular file"):
        victim.get_artifact_version("p/s/tree").read_bytes("sub/f1.txt")
    report = victim.verify(deep=True)
    assert report.corrupt == [os.path.relpath(pack, victim.backend.root)]
    assert sorted(report.missing) == sorted(d.hex for _, d, _ in victim.get_artifact_version("p/s/tree").files())
    assert pack.is_fifo()


def test_a_symlink_planted_as_a_pack_is_refused_and_its_target_kept(victim, outside):
    pack = next(p for p in Path(victim.backend.abspath("packs")).rglob("*") if p.is_file())
    rel = os.path.relpath(pack, victim.backend.root)
    shutil.move(str(pack), outside / "pack")  # even the right bytes: a symlink is not a pack
    pack.symlink_to(outside / "pack")
    before = tree_state(outside)
    with pytest.raises(errors.BackendError, match="symlink"):
        victim.get_artifact_version("p/s/tree").read_bytes("sub/f1.txt")
    report = victim.verify(deep=True)
    assert report.foreign == [rel] and len(report.missing) == len(SMALL)
    victim.gc(grace=0)
    assert tree_state(outside) == before and pack.is_symlink()  # never followed, never removed through


def test_a_symlink_planted_as_a_pack_ref_is_refused_by_reindex(victim, outside, tmp_path):
    ref = next(iter(victim.records.list_refs("packs")))
    path = Path(victim.backend.abspath(ref))
    shutil.move(str(path), outside / "ref")
    path.symlink_to(outside / "ref")
    before = tree_state(outside)
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert invalid_lines(fresh, ref, "a symlink, refused (not followed)")
        with pytest.raises(errors.BlobNotFoundError):  # its pack is unknown: missing, never a wrong byte
            fresh.get_artifact_version("p/s/tree").read_bytes("sub/f1.txt")
        assert fresh.get_artifact_version("p/s/a").read_bytes() == b"two"
    assert tree_state(outside) == before


@pytest.mark.parametrize("linked", ["refs/packs", "refs"])
def test_a_symlinked_refs_directory_is_listed_as_what_it_is_and_never_written_through(victim, outside, tmp_path, linked):
    """reindex lists ``refs/`` and refuses the link (not entered); a journal entry counts only
    for a ref read back from ``refs/`` (the truth), so what lies behind the link is not shown:
    under a linked ``refs/packs`` the versions are listed and their packed files are missing
    (never a wrong byte), under a linked ``refs`` no version is; a save that claims a ref
    under the link refuses with BackendError before any version is visible."""
    real = Path(victim.backend.abspath(linked))
    shutil.move(str(real), outside / "moved")
    real.symlink_to(outside / "moved")
    before = tree_state(outside)
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert invalid_lines(fresh, f"{linked}: not a ref path")
        shown = ["p/s/a", "p/s/tree"] if linked == "refs/packs" else []
        assert fresh.list_artifacts() == shown
        if shown:
            with pytest.raises(errors.BlobNotFoundError):  # its pack is unknown: missing, never a wrong byte
                fresh.get_artifact_version("p/s/tree").read_bytes("sub/f1.txt")
        new = make_tree(tmp_path / "new", {f"n{i}": os.urandom(32) for i in range(4)})
        with pytest.raises(errors.BackendError, match="symlink"):
            fresh.save(new, "p/s/new")  # its pack ref (refs/packs/...) would go through the link
        assert fresh.list_artifacts() == shown
    assert tree_state(outside) == before


@pytest.mark.parametrize("linked", ["packs", "blobs"])
def test_a_symlinked_packs_or_blobs_directory_is_never_written_through(victim, outside, tmp_path, linked):
    """A tree save makes directories under ``packs/`` (and ``blobs/``): a linked top
    directory refuses the save before any directory is made through it."""
    real = Path(victim.backend.abspath(linked))
    shutil.move(str(real), outside / "moved")
    real.symlink_to(outside / "moved")
    before = tree_state(outside)
    new = make_tree(tmp_path / "new", {f"n{i}": os.urandom(32) for i in range(4)} | {"big": os.urandom(600_000)})
    with pytest.raises(errors.BackendError, match="symlink"):
        victim.save(new, "p/s/new")
    assert tree_state(outside) == before
    assert "p/s/new" not in victim.list_artifacts()
    assert linked in victim.verify().foreign


def test_a_save_into_a_symlinked_journal2_slot_is_refused_before_it_claims_anything(victim, outside, tmp_path):
    """The refusal of its journal entry comes before any claim: a save that claimed its refs
    (pack index and version) and then failed to announce them would leave orphans nobody
    announces (invariant 14); here nothing is claimed, so nothing is half-done."""
    keys = [journal2_key(now_us() + ahead * 1_000_000, "0" * 16, 0) for ahead in (0, 120)]
    for n, rel in enumerate(sorted({k.rsplit("/", 1)[0] for k in keys})):  # this slot, and the next one
        real = Path(victim.backend.abspath(rel))
        real.mkdir(parents=True, exist_ok=True)
        shutil.move(str(real), outside / f"slot{n}")
        real.symlink_to(outside / f"slot{n}")
    refs_before = set(victim.records.list_refs())
    before = tree_state(outside)
    new = make_tree(tmp_path / "new", {f"n{i}": os.urandom(32) for i in range(4)})  # packed: a pack ref too
    with cas.open_store(victim.backend.root) as other:
        for data in (new, b"loose"):
            with pytest.raises(errors.BackendError, match="symlink"):
                other.save(data, "p/s/new")
        with pytest.raises(errors.BackendError, match="symlink"):
            other.set_alias("p/s/a", 1, "staging")
    assert set(victim.records.list_refs()) == refs_before, "a refused save left a claimed ref"
    assert tree_state(outside) == before
