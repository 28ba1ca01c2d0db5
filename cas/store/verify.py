"""``verify``: is every blob a version or record needs there, whole, and is every object well formed?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cas.core.digest import CHUNK
from cas.core.progress import as_callback, item_done
from cas.core.refs import REFS, parse_ref_path
from cas.errors import BlobNotFoundError, CasError, CorruptRecordError
from cas.storage.chunked import ChunkedReader, chunk_blobs
from cas.store import packgc
from cas.store.publish import Publisher

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["VerifyReport", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)  # digests a version or record needs
    corrupt: list[str] = field(default_factory=list)  # content does not match its name
    foreign: list[str] = field(default_factory=list)  # files under blobs/ that are not blobs
    orphans: list[str] = field(default_factory=list)  # refs claimed but never journalled: journalled now
    dangling: list[str] = field(default_factory=list)  # refs whose record (or an orphan's content) is missing
    # records, manifests, journal entries, refs and keys that break the format ("<key>: <what is wrong>")
    invalid: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, corrupt, foreign, invalid or dangling."""
        return not (self.missing or self.corrupt or self.foreign or self.invalid or self.dangling)


def verify(pub: Publisher, deep: bool = False, progress: Callback | None = None) -> VerifyReport:
    """Check every blob a version or record needs is present with the right size;
    with ``deep``, rehash every blob.  Finds missing, corrupt and foreign files,
    and refs that dangle; completes orphan refs (claimed, never journalled)."""
    orphans, dangling = pub.complete_orphans()
    present: dict[str, int] = {}
    foreign: list[str] = []
    for digest, path, size, _ in pub.blobs.iter_digests():
        if digest is None or pub.backend.is_symlink(path):
            foreign.append(path)
        else:
            present[digest] = size
    packed = packgc.check_packs(pub, deep)  # format 2: blobs in packs, foreign and corrupt packs
    foreign += packed.foreign
    loose, present = present, {**packed.present, **present}
    # Exactly what gc keeps: a deleted version's bytes may be gone, by design.
    needed = pub.index.needed_blobs()
    chunked, bad_lists = _follow_chunk_lists(pub, needed)
    missing = sorted({d for d in needed if d not in present} | {d for d, why in bad_lists.items() if why == _MISSING})
    corrupt = sorted(d for d, size in needed.items() if size is not None and d in present and present[d] != size)
    corrupt = sorted({*corrupt, *(d for d, why in bad_lists.items() if why == _CORRUPT)})
    checked = 0
    if deep:
        progress = as_callback(progress)
        bad = set(corrupt)
        for digest in loose:  # packed ones were rehashed with their pack
            try:
                actual, _ = pub.blobs.check(digest, progress)
            except CasError:
                actual = ""
            if actual != digest:
                bad.add(digest)
            checked += 1
            item_done(progress)
        bad.update(_check_whole(pub, chunked, bad, missing))
        corrupt = sorted(bad | set(packed.corrupt))
        checked += packed.checked
        progress.relative_update(packed.rehashed)  # packed blobs were checked with their pack: report them too
        item_done(progress, packed.checked)
    else:
        checked = len(needed)
        corrupt = sorted({*corrupt, *packed.corrupt})
    return VerifyReport(
        checked=checked, missing=missing, corrupt=corrupt, foreign=sorted(foreign),
        invalid=sorted({*_invalid_objects(pub), *(why for why in bad_lists.values() if why not in (_MISSING, _CORRUPT))}),
        orphans=orphans,
        dangling=dangling,
    )


_MISSING, _CORRUPT = "missing", "corrupt"


def _follow_chunk_lists(pub: Publisher, needed: dict[str, int | None]) -> tuple[dict[str, str], dict[str, str]]:
    """Format 2: a chunked file needs its list and chunks, not a blob of its own digest.
    Rewrites ``needed`` so; returns (the chunked files: digest -> list digest, lists that
    are missing, corrupt, or break the format: what is wrong)."""
    lists = {d: lst for d, lst in pub.index.chunk_lists().items() if d in needed}
    bad: dict[str, str] = {}
    for digest, list_digest in lists.items():
        del needed[digest]
        needed.setdefault(list_digest, None)
        try:
            needed.update(chunk_blobs(pub.blobs, {digest: list_digest}, [digest]))
        except BlobNotFoundError:
            bad[list_digest] = _MISSING
        except CorruptRecordError as e:  # sound bytes, but not a chunk list
            bad[list_digest] = str(e)
        except CasError:  # bytes that do not match the list's digest
            bad[list_digest] = _CORRUPT
    return lists, bad


def _check_whole(pub: Publisher, lists: dict[str, str], bad: set[str], missing: list[str]) -> set[str]:
    """(deep) Every chunked file whose chunks are all there and sound is its whole-file
    digest when put together; returns those that are not."""
    wrong = set()
    for digest, list_digest in lists.items():
        if list_digest in bad or list_digest in missing:
            continue
        try:
            with ChunkedReader(pub.blobs, digest, list_digest) as reader:
                while reader.read(CHUNK):
                    pass
        except BlobNotFoundError:
            continue  # reported as missing
        except CasError:
            wrong.add(digest)
    return wrong


def _invalid_objects(pub: Publisher) -> list[str]:
    """What refresh and reindex refused, plus listed ref and journal keys that
    break the layout or lie beyond the journal's end (a listing each: keys only)."""
    found = set(pub.index.rejected())
    found.update(str(e) for e in pub.records.scan_journal()[1])
    for entry in pub.backend.list(REFS):
        try:
            parse_ref_path(entry.path)
        except CorruptRecordError as e:
            found.add(str(e))
    return sorted(found)
