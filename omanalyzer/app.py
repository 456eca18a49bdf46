"""Entry point of omanalyzer."""

import sys

from omview.pending import not_yet


def main() -> int:
    return not_yet("omanalyzer")


if __name__ == "__main__":
    sys.exit(main())
