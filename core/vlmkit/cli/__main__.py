"""``python -m vlmkit.cli``."""

from vlmkit.cli.app import main

if __name__ == "__main__":
    main()
