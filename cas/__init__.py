"""cas: a content-addressed, versioned artifact store for ML pipelines."""

from . import errors
from .digest import Digest
from .errors import (
    ArtifactNotFoundError,
    CasError,
    IntegrityError,
    InvalidNameError,
    RunError,
    UnsafeLoadError,
    VersionDeletedError,
    VersionNotFoundError,
)
from .lineage import LineageGraph
from .runs import PipelineRun, StepRun
from .store import GcReport, Store, StoreStats, VerifyReport, open_store
from .version import ArtifactVersion

__version__ = "0.1.0"

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
