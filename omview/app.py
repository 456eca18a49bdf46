"""Entry point of the omview main window."""

import sys

from omview.pending import not_yet


def main() -> int:
    return not_yet("omview")


if __name__ == "__main__":
    sys.exit(main())
