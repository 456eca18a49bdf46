"""Work around PySide6 6.12's reference-count errors on None/True/False under Python 3.11.

Measured here (PySide6 6.12.0, CPython 3.11.7): `QModelIndex.data()` returning an invalid
QVariant, a `Signal(bool)` emit and a QAction slot each take one reference too many from a
singleton. From Python 3.12 on those objects are immortal (PEP 683) so nobody notices; on 3.11
the count reaches zero after a few thousand repaints and the process aborts with "Fatal
Python error: none_dealloc" (or bool_dealloc). We give the singletons the same immortality:
a huge reference count that no realistic number of over-releases can exhaust.
Remove once the suite requires Python >= 3.12 or a PySide6 without the bug.
"""

from __future__ import annotations

import ctypes
import sys

_BOOST = 1 << 40
_done = False


def immortalize_singletons() -> None:
    global _done
    if _done or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    for obj in (None, True, False, Ellipsis, NotImplemented):
        # ob_refcnt is the first field of every CPython object
        ctypes.c_ssize_t.from_address(id(obj)).value += _BOOST
    _done = True
