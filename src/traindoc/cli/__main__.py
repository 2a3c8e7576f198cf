"""``python -m traindoc.cli`` (the same as ``python -m traindoc`` and the ``traindoc`` command)."""

import sys

from . import main

sys.exit(main())
