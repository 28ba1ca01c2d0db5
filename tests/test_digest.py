"""Digests: the value type and every way cas hashes bytes, files and streams."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cas.core.digest import (
    FILE_CHUNK,
    Digest,
    Hasher,
    hash_bytes,
    hash_file,
    hash_stream,
    is_hex_digest,
)
from cas.errors import InvalidNameError

# Official BLAKE3 test vectors (input: bytes i % 251), so a wrong algorithm or
# a wrong hash length cannot pass by agreeing with itself.
VECTORS = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
}
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def vector_input(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


class TestDigestValue:
    def test_prints_algorithm_and_hex(self):
        d = Digest(ABC)
        assert str(d) == f"blake3:{ABC}"
        assert d.short == ABC[:12]
        assert d.hex == ABC

    def test_parse_accepts_prefixed_and_bare_hex(self):
        assert Digest.parse(f"blake3:{ABC}") == Digest(ABC)
        assert Digest.parse(ABC) == Digest(ABC)
        d = Digest(ABC)
        assert Digest.parse(d) is d

    def test_round_trips_through_str(self):
        d = Digest(ABC)
        assert Digest.parse(str(d)) == d

    @pytest.mark.parametrize(
        "bad",
        [
            "",
            ABC[:-1],  # 63 hex
            ABC + "0",  # 65 hex
            ABC.upper(),  # digests are lowercase
            "g" * 64,
            "sha256:" + ABC,
            "blake3:" + ABC[:10],
            " " + ABC[1:],
        ],
    )
    def test_rejects_anything_but_64_lowercase_hex(self, bad):
        with pytest.raises(InvalidNameError):
            Digest.parse(bad)

    def test_rejects_non_strings(self):
        with pytest.raises(InvalidNameError):
            Digest(123)  # type: ignore[arg-type]

    def test_is_frozen_hashable_and_ordered(self):
        a, b = Digest("0" * 64), Digest("f" * 64)
        assert a < b
        assert len({a, Digest("0" * 64), b}) == 2
        with pytest.raises(AttributeError):
            a.hex = "1" * 64  # type: ignore[misc]

    def test_is_hex_digest(self):
        assert is_hex_digest(ABC)
        assert not is_hex_digest(ABC.upper())
        assert not is_hex_digest(None)  # type: ignore[arg-type]
        assert not is_hex_digest("../" + ABC[3:])


class TestHashing:
    @pytest.mark.parametrize("n", sorted(VECTORS))
    def test_official_vectors(self, n):
        assert hash_bytes(vector_input(n)) == VECTORS[n]

    def test_abc(self):
        assert hash_bytes(b"abc") == ABC

    def test_bytes_like_inputs_agree(self):
        data = os.urandom(5000)
        assert hash_bytes(bytearray(data)) == hash_bytes(memoryview(data)) == hash_bytes(data)

    def test_multithreaded_path_gives_the_single_threaded_answer(self):
        # >= 4 MiB takes the threaded path; the answer must not depend on it.
        data = os.urandom((4 << 20) + 12345)
        h = Hasher(threaded=False)
        for i in range(0, len(data), 65536):
            h.update(data[i : i + 65536])
        assert hash_bytes(data) == h.hexdigest()
        assert h.size == len(data)

    @pytest.mark.parametrize("size", [0, 1, 1000, FILE_CHUNK - 1, FILE_CHUNK, FILE_CHUNK + 1, 3 * FILE_CHUNK + 7])
    def test_file_matches_bytes(self, tmp_path, size):
        data = os.urandom(size)
        path = tmp_path / "f"
        path.write_bytes(data)
        assert hash_file(path) == (hash_bytes(data), size)
        assert hash_file(str(path)) == (hash_bytes(data), size)

    def test_file_missing_raises_file_not_found(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            hash_file(tmp_path / "nope")

    def test_stream_with_readinto(self):
        data = os.urandom((2 << 20) + 3)
        assert hash_stream(io.BytesIO(data)) == (hash_bytes(data), len(data))

    def test_stream_with_read_only(self):
        class ReadOnly:
            def __init__(self, data):
                self._f = io.BytesIO(data)

            def read(self, n=-1):
                return self._f.read(min(n, 777))  # short reads must not end the stream early

        data = os.urandom(100_000)
        assert hash_stream(ReadOnly(data)) == (hash_bytes(data), len(data))

    def test_iterable_of_chunks(self):
        chunks = [b"a" * 10, b"", b"b" * 70000, b"c"]
        assert hash_stream(iter(chunks)) == (hash_bytes(b"".join(chunks)), 70011)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=3000), max_size=12))
    def test_any_chunking_gives_the_same_digest(self, chunks):
        whole = b"".join(chunks)
        h = Hasher()
        for c in chunks:
            h.update(c)
        assert h.hexdigest() == hash_bytes(whole)
        assert h.size == len(whole)
        assert hash_stream(chunks) == (hash_bytes(whole), len(whole))
        assert hash_stream(io.BytesIO(whole), chunk=max(1, len(chunks))) == (hash_bytes(whole), len(whole))
