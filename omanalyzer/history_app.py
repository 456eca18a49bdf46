"""Entry point of omhistory."""

import sys

from omview.pending import not_yet


def main() -> int:
    return not_yet("omhistory")


if __name__ == "__main__":
    sys.exit(main())
