"""The ``vlmkit`` command line (``docs/cli.md``): tasks on single images and videos, the batch
``label`` command, ``export`` from a run ledger, and ``backends`` / ``sinks`` listings.

``python -m vlmkit.cli`` runs it too. Commands import the heavy parts of vlmkit only when they
run, so ``vlmkit --help`` stays fast.
"""

from vlmkit.cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
