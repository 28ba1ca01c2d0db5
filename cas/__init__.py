"""cas: a content-addressed, versioned artifact store for ML pipelines.

The public names are imported on first use (PEP 562, cas.core.lazy): ``import cas`` costs
only ``cas.errors`` and the version, so a quick ``cas show`` does not load
lineage, sync or the materializers it never touches.  ``cas.Store``,
``from cas import *`` and ``dir(cas)`` work as if everything were imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cas import _moved, errors
from cas.core.about import __version__
from cas.core.lazy import lazy_exports
from cas.errors import (
    ArtifactNotFoundError,
    CasError,
    IntegrityError,
    InvalidNameError,
    RunError,
    UnsafeLoadError,
    VersionDeletedError,
    VersionNotFoundError,
)

if TYPE_CHECKING:
    from cas.core.digest import Digest
    from cas.lineage.graph import LineageGraph
    from cas.lineage.record import PipelineRun, StepRun
    from cas.store.facade import Store, open_store
    from cas.store.gc import GcReport
    from cas.store.stats import StoreStats
    from cas.store.verify import VerifyReport
    from cas.version import ArtifactVersion

_moved.install()

__getattr__, __dir__ = lazy_exports(__name__, {
    "ArtifactVersion": "cas.version",
    "Digest": "cas.core.digest",
    "GcReport": "cas.store.gc",
    "LineageGraph": "cas.lineage.graph",
    "PipelineRun": "cas.lineage.record",
    "StepRun": "cas.lineage.record",
    "Store": "cas.store.facade",
    "StoreStats": "cas.store.stats",
    "VerifyReport": "cas.store.verify",
    "open_store": "cas.store.facade",
})

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactVersion",
    "CasError",
    "Digest",
    "GcReport",
    "IntegrityError",
    "InvalidNameError",
    "LineageGraph",
    "PipelineRun",
    "RunError",
    "StepRun",
    "Store",
    "StoreStats",
    "UnsafeLoadError",
    "VerifyReport",
    "VersionDeletedError",
    "VersionNotFoundError",
    "errors",
    "open_store",
    "__version__",
]
