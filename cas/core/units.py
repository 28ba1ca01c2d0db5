"""Human-readable sizes for what cas prints (CLI, demo, lineage text)."""

from __future__ import annotations

__all__ = ["human_bytes"]


def human_bytes(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 GiB``: binary units, one decimal above bytes."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
