"""Real clients nobody here wrote, through cas:// URLs: pandas, pyarrow, fsspec.open_files."""

from __future__ import annotations

import uuid

import fsspec
import pytest

import cas
from cas.fs import CasFileSystem
from cas.storage.blobs import blob_path

pd = pytest.importorskip("pandas", reason="pandas is in the 'dataframe' extra, which tox installs")
pa = pytest.importorskip("pyarrow", reason="pyarrow is in the 'dataframe' extra, which tox installs")
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


@pytest.fixture(params=["memory", "local"])
def url(request, tmp_path):
    url = f"memory://cas-clients-{uuid.uuid4().hex}" if request.param == "memory" else str(tmp_path / "store")
    yield url
    # pandas and fsspec.open create cached instances from the options: close their stores
    for fs in list(CasFileSystem._cache.values()):
        fs.store.close()
    CasFileSystem.clear_instance_cache()


@pytest.fixture
def frame():
    return pd.DataFrame({"id": range(1000), "score": [i / 7 for i in range(1000)], "label": ["a", "b"] * 500})


def test_pandas_writes_and_reads_parquet_and_csv(url, frame, tmp_path):
    options = {"store": url}
    frame.to_parquet("cas://churn/prep/features/1", storage_options=options)
    frame.to_csv("cas://churn/prep/table/1", index=False, storage_options=options)
    # a pandas write is a committed version, visible to any other handle on the store
    store = cas.open_store(url, index=str(tmp_path / "fresh-index.sqlite"))
    assert store.get_artifact_version("churn/prep/features", 1).kind == "blob"
    store.close()
    back = pd.read_parquet("cas://churn/prep/features/latest", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    csv = pd.read_csv("cas://churn/prep/table/1", storage_options=options)
    pd.testing.assert_frame_equal(csv, frame)
    # the file is immutable: pandas cannot overwrite version 1
    with pytest.raises(FileExistsError):
        frame.to_csv("cas://churn/prep/table/1", index=False, storage_options=options)
    frame.head(3).to_csv("cas://churn/prep/table/2", index=False, storage_options=options)
    assert len(pd.read_csv("cas://churn/prep/table/latest", storage_options=options)) == 3
    assert len(pd.read_csv("cas://churn/prep/table/1", storage_options=options)) == 1000


def test_a_flipped_byte_in_a_parquet_file_raises_instead_of_changing_a_value(url, frame):
    """pyarrow reads a footer first and then the column chunks (random access):
    a flipped byte in a data page must raise, never come back as a wrong number."""
    options = {"store": url}
    frame.to_parquet("cas://churn/prep/features/1", storage_options=options, compression=None)
    store = CasFileSystem(store=url).store
    v = store.get_artifact_version("churn/prep/features", 1)
    data = bytearray(v.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the column data, far from the footer
    store.backend.remove(blob_path(v.digest.hex))
    assert store.backend.create_bytes(blob_path(v.digest.hex), bytes(data))
    with pytest.raises(cas.IntegrityError):
        pd.read_parquet("cas://churn/prep/features/1", storage_options=options)
    with pytest.raises(cas.IntegrityError):
        pq.read_table("churn/prep/features/1", filesystem=fsspec.filesystem("cas", store=url), columns=["score"])


def test_pyarrow_writes_a_dataset_in_a_transaction_and_reads_a_tree_version(url, frame):
    fs = fsspec.filesystem("cas", store=url)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with fs.transaction:  # the whole dataset becomes one tree version when the transaction ends
        ds.write_dataset(table, "churn/prep/parts/1", filesystem=fs, format="parquet", partitioning=["label"],
                         partitioning_flavor="hive")
    assert fs.info("churn/prep/parts/1")["committed"] is True
    assert sorted(fs.ls("churn/prep/parts/1", detail=False)) == [
        "churn/prep/parts/1/label=a",
        "churn/prep/parts/1/label=b",
    ]
    dataset = ds.dataset("churn/prep/parts/1", filesystem=fs, format="parquet", partitioning="hive")
    read = dataset.to_table().to_pandas().sort_values("id").reset_index(drop=True)
    assert read["id"].tolist() == frame["id"].tolist()
    assert sorted(read["label"].astype(str).unique()) == ["a", "b"]
    # a column projection reads only part of each file: range reads through the view
    only = pq.read_table("churn/prep/parts/1/label=a", filesystem=fs, columns=["score"])
    assert only.num_rows == 500 and only.column_names == ["score"]
    # pandas reads the same tree version through a cas:// URL and an alias
    fs.store.set_alias("churn/prep/parts", 1, "production")
    via_alias = pd.read_parquet("cas://churn/prep/parts/production", storage_options={"store": url})
    assert len(via_alias) == 1000


def test_open_files_globs_across_versions(url):
    fs = fsspec.filesystem("cas", store=url)
    for n in (1, 2, 3):
        with fs.transaction:
            fs.pipe(f"runs/eval/report/{n}/metrics.csv", f"auc\n0.{n}\n".encode())
            fs.pipe(f"runs/eval/report/{n}/notes.txt", b"notes")
    files = fsspec.open_files("cas://runs/eval/report/*/metrics.csv", mode="rt", store=url)
    assert [f.path for f in files] == [f"runs/eval/report/{n}/metrics.csv" for n in (1, 2, 3)]
    values = []
    for of in files:
        with of as f:
            values.append(f.read().splitlines()[1])
    assert values == ["0.1", "0.2", "0.3"]
    aucs = []
    for of in fsspec.open_files("cas://runs/eval/report/*/metrics.csv", store=url):
        with of as f:
            aucs.append(round(float(pd.read_csv(f)["auc"][0]), 1))
    assert aucs == [0.1, 0.2, 0.3]
