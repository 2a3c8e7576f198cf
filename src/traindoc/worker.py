"""The training process under its documented name: ``python -m traindoc.worker PIPELINE --run-dir DIR``.

A shim: the process lives in :mod:`traindoc.train` (``python -m traindoc.train`` is the same).
"""

from __future__ import annotations

import sys

from .train.__main__ import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
