"""Entry shim for the ``normopt`` console script (keeps start-up imports minimal)."""

from normopt.cli.app import main

if __name__ == "__main__":
    main()
