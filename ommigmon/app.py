"""Entry point of ommigmon."""

import sys

from omview.pending import not_yet


def main() -> int:
    return not_yet("ommigmon")


if __name__ == "__main__":
    sys.exit(main())
