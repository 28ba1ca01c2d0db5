"""Old module paths of cas 0.1, kept for one release: each name imports the module it moved to.

The redesign (docs/architecture.md) moved every module into a package; this table is the only
shim.  Importing an old path warns (DeprecationWarning) and returns the new module itself, so
attributes and monkeypatches reach the same object.  Delete this file in the next release.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings

MOVED = {
    "cas.digest": "cas.core.digest",
    "cas.names": "cas.core.names",
    "cas.tree": "cas.core.tree",
    "cas.records": "cas.core.records",
    "cas.units": "cas.core.units",
    "cas.backend": "cas.backends",
    "cas.cloud": "cas.backends.cloud",
    "cas.retry": "cas.backends.retry",
    "cas.blobs": "cas.storage.blobs",
    "cas.download": "cas.storage.download",
    "cas.sweeps": "cas.storage.sweeps",
    "cas.sync": "cas.store.sync",
    "cas.retention": "cas.store.retention",
    "cas.config": "cas.store.config",
    "cas.diff": "cas.store.diff",
    "cas.runs": "cas.lineage.record",
    "cas.live_lineage": "cas.lineage.live",
    "cas.fs_base": "cas.fs.view",
    "cas.fs_copy": "cas.fs.copy",
    "cas.fs_drafts": "cas.fs.drafts",
    "cas.fs_files": "cas.fs.files",
    "cas.fs_finish": "cas.fs.finish",
    "cas.fs_paths": "cas.fs.paths",
    "cas.fs_procs": "cas.fs.procs",
    "cas.fs_write": "cas.fs.write",
    "cas.fs_zenml": "cas.integrations.zenml.filesystem",
    "cas.cli_completion": "cas.cli.completion",
    "cas.cli_config": "cas.cli.config",
    "cas.cli_diff": "cas.cli.diff",
    "cas.cli_progress": "cas.cli.progress",
    "cas.demo": "cas.cli.demo",
    "cas.integrations._folders": "cas.integrations._shared.folders",
    "cas.integrations._space": "cas.integrations._shared.space",
    "cas.integrations._segments": "cas.integrations._shared.segments",
}


# A finder and loader by protocol, not by importlib.abc's classes: importing importlib.abc
# costs `import cas` (and so every `cas` command) about as much as the rest of cas.errors.
class _MovedFinder:
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # the module it moved to is already executed


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
