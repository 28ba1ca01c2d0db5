"""The ``cas`` artifact-store flavor: how ZenML finds the config and the implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zenml.artifact_stores import BaseArtifactStoreFlavor

from cas.integrations.zenml import FLAVOR
from cas.integrations.zenml.config import CasArtifactStoreConfig

if TYPE_CHECKING:
    from cas.integrations.zenml.artifact_store import CasArtifactStore

__all__ = ["CasArtifactStoreConfig", "CasArtifactStoreFlavor"]


class CasArtifactStoreFlavor(BaseArtifactStoreFlavor):
    """Flavor of the cas artifact store."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def docs_url(self) -> str | None:
        return None

    @property
    def sdk_docs_url(self) -> str | None:
        return None

    @property
    def logo_url(self) -> str:
        return ""

    @property
    def config_class(self) -> type[CasArtifactStoreConfig]:
        return CasArtifactStoreConfig

    @property
    def implementation_class(self) -> type[CasArtifactStore]:
        from cas.integrations.zenml.artifact_store import CasArtifactStore

        return CasArtifactStore
