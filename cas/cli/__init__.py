"""The ``cas`` command line: a thin click layer over the store, ``--json`` everywhere.

``main`` is the console entry point; each command group lives in its own module."""

from cas.cli.main import EXIT_ERROR, EXIT_VERIFY_FAILED, cli, main

__all__ = ["EXIT_ERROR", "EXIT_VERIFY_FAILED", "cli", "main"]
