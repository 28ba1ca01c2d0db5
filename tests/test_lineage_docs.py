"""The Python examples in docs/lineage.md and docs/materializers.md run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from cas import materializers

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _python_blocks(page: str) -> str:
    text = (DOCS / page).read_text()
    return "\n\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))


@pytest.mark.parametrize("page", ["lineage.md", "materializers.md"])
def test_doc_examples_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _python_blocks(page)
    assert code.strip(), f"{page} has no python examples"
    # A real module, so objects the examples pickle can be found again by name.
    module = types.ModuleType(f"cas_docs_{page.split('.')[0]}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, str(DOCS / page), "exec"), module.__dict__)
        out = capsys.readouterr().out
        store = module.__dict__["store"]
        store.close()
    finally:
        sys.modules.pop(module.__name__, None)
        materializers.unregister("point")
    if page == "lineage.md":
        assert "churn/train/model@1" in out and "failed" in out and "cas://default/evaluate/metrics/1" in out
        # live OpenLineage: the events reached the example's receiver, in order
        assert "[('churn', 'START'), ('churn.ingest', 'START'), ('churn.ingest', 'COMPLETE'), ('churn', 'COMPLETE')]" in out
        assert "blake3:" in out
    else:
        assert "refused" in out and "42" in out and "point 2.0" in out
