"""The ``cas`` artifact store's configuration, as ZenML stores it with the stack component.

Its own module so that the flavor (which names the store class lazily, as ZenML's flavors do)
and the store (which reads its config) both import it, and never each other.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, field_validator
from zenml.artifact_stores import BaseArtifactStoreConfig
from zenml.constants import REMOTE_FS_PREFIX
from zenml.utils.secret_utils import SecretField

__all__ = ["CasArtifactStoreConfig"]

# ZenML decides "remote or local path" from a fixed list of prefixes; without
# cas:// in it, its path sanitizer resolves cas:// URLs as local paths and
# refuses them as outside the artifact store.  The list is shared by reference.
if "cas://" not in REMOTE_FS_PREFIX:
    REMOTE_FS_PREFIX.append("cas://")


class CasArtifactStoreConfig(BaseArtifactStoreConfig):
    """``path`` is ``cas://<namespace>``: the first segment of every cas name written.

    ``store`` is where the bytes live (a local path or any fsspec URL such as
    ``s3://bucket/cas``); ``storage_options`` go to that filesystem.  Put
    credentials in ``secret_storage_options`` (a JSON object, typically a
    ``{{secret.key}}`` reference): ZenML keeps SecretFields out of the stored
    component config, and cas never writes them anywhere (invariant 11).
    """

    SUPPORTED_SCHEMES: ClassVar[set[str]] = {"cas://"}
    # cas never changes a file in place: ZenML then writes step logs as separate files.
    IS_IMMUTABLE_FILESYSTEM: ClassVar[bool] = True

    store: str = Field(
        description="Where the cas store lives: a local path or an fsspec URL (s3://bucket/cas, gs://..., az://...)."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Non-secret options for the store's filesystem, e.g. {'endpoint_url': 'http://127.0.0.1:9000'}.",
    )
    secret_storage_options: str | None = SecretField(
        default=None,
        description="A JSON object of secret filesystem options (keys, tokens), merged into storage_options.",
    )
    index: str | None = Field(default=None, description="Where the SQLite index lives (default: cas decides).")

    @field_validator("storage_options", mode="before")
    @classmethod
    def _parse_options(cls, value: Any) -> Any:
        # The CLI passes dicts as JSON strings.
        return json.loads(value) if isinstance(value, str) else value

    def options(self) -> dict[str, Any]:
        """storage_options with the secret ones merged in (never stored or logged)."""
        merged = dict(self.storage_options)
        if self.secret_storage_options:
            try:
                secret = json.loads(self.secret_storage_options)
            except ValueError:
                raise ValueError("secret_storage_options must be a JSON object") from None
            if not isinstance(secret, dict):
                raise ValueError("secret_storage_options must be a JSON object")
            merged.update(secret)
        return merged
