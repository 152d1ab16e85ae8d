"""The ``vlmkit`` console script: load the command line, then run it.

This module lives outside the ``vlmkit`` package on purpose: importing the package (numpy,
Pillow, supervision) takes about a second, and a Ctrl-C meanwhile must end like a Ctrl-C during
a command — ``interrupted`` on stderr and exit status 130 — not with a Python traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

EXIT_INTERRUPTED = 130


def main() -> None:
    """Entry point of the ``vlmkit`` console script."""
    try:
        from vlmkit.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    cli_main()


if __name__ == "__main__":
    main()
