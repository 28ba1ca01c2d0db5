"""The destination-side queries sync asks per digest agree with the whole-store answers they
replace: ``kept_among`` is ``needed_blobs`` (what gc keeps) restricted to the digests asked, and
``content_digests`` is the set of file contents among them (deleted versions included)."""

from __future__ import annotations

import pytest

import cas
from cas.core.digest import hash_bytes


@pytest.mark.parametrize("fmt", [1, 2])
def test_kept_among_and_content_digests_match_whole_store_answers(tmp_path, fmt):
    with cas.open_store(str(tmp_path / "s"), format=fmt) as store:
        (tmp_path / "t").mkdir()
        for i in range(5):
            (tmp_path / "t" / f"f{i}").write_bytes(b"tree %d" % i)
        store.save(tmp_path / "t", "p/s/tree")
        (tmp_path / "t" / "f0").write_bytes(b"changed")
        store.save(tmp_path / "t", "p/s/tree")
        store.delete_version("p/s/tree", 1)  # f0's old content: no longer kept; its manifest: kept
        for data in (b"one blob", b"gone blob"):
            (tmp_path / "b").write_bytes(data)
            store.save(tmp_path / "b", "p/s/blob")
        store.delete_version("p/s/blob", 2)
        index = store.index
        everything = set(index.needed_blobs())
        everything |= {d for _, _, d, _ in index.all_version_digests()}
        everything |= {row[0] for row in index.conn.execute("SELECT digest FROM tree_entries")}
        asked = everything | {hash_bytes(b"not in the store")}
        assert hash_bytes(b"gone blob") in asked and hash_bytes(b"tree 0") in asked
        assert index.kept_among(asked) == set(index.needed_blobs()) & asked
        assert hash_bytes(b"gone blob") not in index.kept_among(asked)
        files = {hash_bytes(b"tree %d" % i) for i in range(5)} | {hash_bytes(b"changed")}
        files |= {hash_bytes(b"one blob"), hash_bytes(b"gone blob")}
        assert index.content_digests(asked) == files
        many = sorted(asked) * 300  # more digests than one query takes, repeats included
        assert index.kept_among(many) == set(index.needed_blobs()) & asked
