"""cas: a content-addressed, versioned artifact store for ML pipelines."""

from cas import _moved, errors
from cas.core.about import __version__
from cas.core.digest import Digest
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
from cas.lineage import LineageGraph
from cas.lineage.record import PipelineRun, StepRun
from cas.store import GcReport, Store, StoreStats, VerifyReport, open_store
from cas.version import ArtifactVersion

_moved.install()

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
