#!/bin/sh
# `make gpu-check`, also without make: install the wheels carried in .whl/ (the GPU machine reaches no
# package index; `make gpu-wheels` prepares them), then run bench/gpu_check.py with traindoc from src/.
# Environment: GPU_PY (default python3, the image's CUDA torch), GPU_SITE (default /tmp/traindoc-site),
# OUT (results folder; default out/gpu-check). Arguments go to bench/gpu_check.py.
set -eu
cd "$(dirname "$0")/.."
PY=${GPU_PY:-python3}
SITE=${GPU_SITE:-/tmp/traindoc-site}
if ! ls .whl/*.whl >/dev/null 2>&1 || [ ! -d .whl/mermaid ]; then
    echo "gpu-check: no wheels in .whl/; run 'make gpu-wheels' where a package index is reachable and carry .whl/" >&2
    exit 2
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
TRAINDOC_MERMAID_DIR="$PWD/.whl/mermaid/$(ls .whl/mermaid | head -n 1)"
PYTHONUNBUFFERED=1
export PYTHONPATH TRAINDOC_MERMAID_DIR PYTHONUNBUFFERED
exec "$PY" bench/gpu_check.py "$@"
