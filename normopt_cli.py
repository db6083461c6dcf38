"""Entry shim for the ``normopt`` console script (keeps start-up imports minimal)."""

import sys


def main() -> None:
    """Run the CLI; Ctrl-C while it is still importing is a one-line exit 130 too."""
    try:
        from normopt.cli.app import main as app_main
    except KeyboardInterrupt:
        sys.stderr.write("normopt: interrupted\n")
        sys.exit(130)
    app_main()


if __name__ == "__main__":
    main()
