"""The ``cas://`` fsspec filesystem: the store seen as paths, with drafts for multi-file writers.

Registered as the ``cas`` protocol through the ``fsspec.specs`` entry point."""

from cas.fs.filesystem import CasFileSystem

__all__ = ["CasFileSystem"]
