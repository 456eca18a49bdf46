"""Entry point for apps whose issue has not landed yet: says so, exits 2."""

import sys


def not_yet(name: str) -> int:
    print(f"{name}: not yet available in this version of omview", file=sys.stderr)
    return 2
