"""The introspection child: ``python -m traindoc.facts.child REF ROOT OUT``.

Loads the pipeline, introspects it, and writes one JSON record to ``OUT``: ``{"facts": …}`` or
``{"error": …}`` (:func:`traindoc.errors.to_record`). The parent (:func:`traindoc.facts.service.introspect_child`)
reads that record back as the same error class; nothing is parsed out of exit codes or stderr, and the
library never shells out to its own CLI. A file, not stdout: user modules may print while imported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .._util.atomic import write_text
from .._util.procs import install_signal_handlers
from ..errors import TraindocError, to_record


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m traindoc.facts.child REF ROOT OUT", file=sys.stderr)
        return 2
    ref, root, out = argv[0], Path(argv[1]), Path(argv[2])
    restore = install_signal_handlers()
    try:
        from . import service

        facts = service.introspect_here(service.target(ref, root))
        payload = {"facts": facts.model_dump(mode="json")}
    except TraindocError as exc:
        payload = {"error": to_record(exc)}
    finally:
        restore()
    write_text(out, json.dumps(payload, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit now: a thread or an atexit hook the user's module left behind can neither keep this process
    # alive until the parent's timeout nor rewrite the record after it was written.
    os._exit(code)
