"""docs/filesystem.md stays runnable: its Python examples run against a fresh store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cas.fs import CasFileSystem

DOC = Path(__file__).resolve().parent.parent / "docs" / "filesystem.md"
DOC_STORE = "/tmp/cas-doc-store"


def test_filesystem_doc_examples_run(tmp_path):
    for module in ("pandas", "dask.dataframe", "xarray", "zarr"):
        pytest.importorskip(module, reason="the examples use it; it is in the 'dataframe' extra that tox installs")
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block.replace(DOC_STORE, str(tmp_path / "store")), str(DOC), "exec"), namespace)
        fs = namespace["fs"]
        assert fs.cat("churn/eval/report/latest/metrics.json") == b'{"auc": 0.91}'
        assert fs.info("churn/prep/parts/1")["committed"] is True
        for name in ("by_label", "arrow", "dask", "grid"):
            assert fs.info(f"churn/prep/{name}/1")["committed"] is True
        assert fs.drafts() == []
    finally:
        for fs in list(CasFileSystem._cache.values()):
            fs.store.close()
        CasFileSystem.clear_instance_cache()
