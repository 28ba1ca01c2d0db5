"""``python -m cas.cli``: the ``cas`` command."""

from cas.cli.main import main

main()
