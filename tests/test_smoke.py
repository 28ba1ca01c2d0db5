import cas


def test_save_and_get_round_trip(store):
    v = store.save(b"hello", "p/s/a")
    assert v.version == 1
    assert store.get_artifact_version("p/s/a").read_bytes() == b"hello"


def test_same_content_is_stored_once(store):
    store.save(b"x" * 1000, "p/s/a")
    store.save(b"x" * 1000, "p/s/b")
    stats = store.stats()
    assert stats.logical_bytes == 2000
    assert stats.stored_bytes == 1000
