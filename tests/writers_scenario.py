"""Real directory writers used exactly as their own docs show, with a cas:// URL.

Run as a script by tests/test_writers.py, one client per process, because
what matters is what is committed once the writing process has ended:

    python writers_scenario.py write|read CLIENT URL [fail]

``CAS_TEST_OPTIONS`` (JSON) holds storage options for a cloud store.
``write ... fail`` raises after the client returned, an unhandled exception.
``read`` prints a JSON summary of what the client reads back.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd

CLIENTS = ["pandas", "pyarrow", "dask-threads", "dask-processes", "zarr", "xarray"]
TARGET = {c: f"writers/{c.replace('-', '_')}/out/1" for c in CLIENTS}


def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": range(400), "score": [i / 7 for i in range(400)], "label": ["a", "b", "c", "d"] * 100})


def grid() -> np.ndarray:
    return np.arange(40 * 30, dtype="f8").reshape(40, 30)


def write(client: str, url: str, options: dict) -> None:
    so = {"store": url, **options}
    target = f"cas://{TARGET[client]}"
    if client == "pandas":  # pandas docs: DataFrame.to_parquet(path, partition_cols=..., storage_options=...)
        frame().to_parquet(target, partition_cols=["label"], storage_options=so)
    elif client == "pyarrow":  # pyarrow docs: write_dataset(data, base_dir, filesystem=..., partitioning=...)
        import fsspec
        import pyarrow as pa
        import pyarrow.dataset as ds

        fs = fsspec.filesystem("cas", **so)
        table = pa.Table.from_pandas(frame(), preserve_index=False)
        ds.write_dataset(table, TARGET[client], filesystem=fs, format="parquet", partitioning=["label"],
                         partitioning_flavor="hive")
    elif client.startswith("dask-"):  # dask docs: ddf.to_parquet(url, storage_options=...) under a scheduler
        import dask
        import dask.dataframe as dd

        with dask.config.set(scheduler=client.split("-", 1)[1], num_workers=2):
            dd.from_pandas(frame(), npartitions=4).to_parquet(target, storage_options=so)
    elif client == "zarr":  # zarr v3 docs: zarr.open(url, mode="w", ..., storage_options=...)
        import zarr

        z = zarr.open(target, mode="w", shape=grid().shape, chunks=(10, 10), dtype="f8", storage_options=so)
        z[:] = grid()
    elif client == "xarray":  # xarray docs: Dataset.to_zarr(url, storage_options=...)
        import xarray as xr

        xr.Dataset({"t": (("x", "y"), grid())}).to_zarr(target, storage_options=so, consolidated=False)


def read(client: str, url: str, options: dict) -> dict:
    so = {"store": url, **options}
    target = f"cas://{TARGET[client]}"
    if client in ("zarr", "xarray"):
        if client == "zarr":
            import zarr

            values = zarr.open(target, mode="r", storage_options=so)[:]
        else:
            import xarray as xr

            values = xr.open_zarr(target, storage_options=so, consolidated=False)["t"].values
        return {"sum": float(values.sum()), "shape": list(values.shape)}
    if client == "pyarrow":
        import fsspec
        import pyarrow.dataset as ds

        fs = fsspec.filesystem("cas", **so)
        df = ds.dataset(TARGET[client], filesystem=fs, format="parquet", partitioning="hive").to_table().to_pandas()
    else:
        df = pd.read_parquet(target, storage_options=so)
    return {"rows": len(df), "ids": int(df["id"].sum()), "labels": sorted(df["label"].astype(str).unique())}


def expected(client: str) -> dict:
    if client in ("zarr", "xarray"):
        return {"sum": float(grid().sum()), "shape": list(grid().shape)}
    f = frame()
    return {"rows": len(f), "ids": int(f["id"].sum()), "labels": sorted(f["label"].unique())}


def main() -> None:
    mode, client, url = sys.argv[1:4]
    options = json.loads(os.environ.get("CAS_TEST_OPTIONS", "{}"))
    if mode == "write":
        write(client, url, options)
        print("written", flush=True)
        if sys.argv[4:] == ["fail"]:
            raise RuntimeError("the pipeline failed after writing")
    else:
        print(json.dumps(read(client, url, options)), flush=True)
        # pyarrow can abort at interpreter shutdown after a read through a Python file system
        # ("terminate called without an active exception", apache/arrow#34314, #39162): its
        # thread pools outlive the interpreter's teardown. The read is complete and printed
        # by now, and a reader has nothing to commit, so it leaves without that teardown.
        os._exit(0)


if __name__ == "__main__":  # dask's processes scheduler spawns workers that import this file
    main()
