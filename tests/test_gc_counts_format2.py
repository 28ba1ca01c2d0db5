"""gc counts blobs, as verify does, also when they live in packs (format 2).

A format-2 save packs a tree's small files: gc's ``kept`` and ``removed`` must
still count blobs (``blobs_counted: stored``, as ``verify --deep``), not packs,
or "gc keeps exactly what verify checks" stops holding once a store is format 2.
"""

from __future__ import annotations

from store_helpers import make_tree

import cas

FILES = {f"part-{i:02d}.txt": f"row {i}\n".encode() for i in range(20)}


def test_gc_counts_the_blobs_of_a_dropped_pack(tmp_path):
    with cas.open_store(tmp_path / "store", format=2) as store:
        store.save(b"kept bytes", "p/s/kept")
        store.save(make_tree(tmp_path / "t", FILES), "p/s/tree")
        packs = store.index.known_packs()
        assert len(packs) == 1 and len(store.index.pack_entries(next(iter(packs)))) == len(FILES)
        store.delete_version("p/s/tree", 1)
        stored = store.verify(deep=True).checked
        dry = store.gc(grace=0, dry_run=True)
        assert dry.kept + dry.removed == stored
        assert dry.removed >= len(FILES)  # every packed file of the tree, not one pack
        done = store.gc(grace=0)
        assert (done.removed, done.kept) == (dry.removed, dry.kept)
        assert store.verify(deep=True).checked == done.kept
        assert store.get_artifact_version("p/s/kept").read_bytes() == b"kept bytes"
