"""Entry point of omcollector."""

import sys

from omview.pending import not_yet


def main() -> int:
    return not_yet("omcollector")


if __name__ == "__main__":
    sys.exit(main())
