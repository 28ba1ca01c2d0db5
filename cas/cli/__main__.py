"""``python -m cas.cli``: the ``cas`` command."""

from cas.cli.main import main

if __name__ == "__main__":
    main()
