"""Entry point of omprocs."""

import sys

from omview.pending import not_yet


def main() -> int:
    return not_yet("omprocs")


if __name__ == "__main__":
    sys.exit(main())
