"""Stage 1, the spec: what a pipeline declares (pydantic models; no torch).

``from traindoc.spec import Pipeline, Environment, ...`` keeps working: every public name of the
former ``traindoc/spec.py`` is re-exported here. The re-exports are lazy (PEP 562), so importing a
module of this package (``traindoc.spec.loader``, on the cache-hit path) never imports pydantic.

- :mod:`.types`: one-line strings, patterns, factory references, the base model
- :mod:`.environment`: image, user, ports, volumes, Jupyter, SSH
- :mod:`.training`: model, data, optimizer, training budget, checkpoints, distribution
- :mod:`.pipeline`: :class:`Pipeline`, monitoring, expectations, lint silences
- :mod:`.fields`: the model tree walked for the reference docs
- :mod:`.loader`: load a pipeline from a file or module reference, resolve its factories
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .environment import SSH, Access, Environment, Jupyter, Port, Volume
    from .fields import describe_fields
    from .pipeline import METRICS, SHORTHANDS, Bound, Devices, Expect, LintSpec, Metric, Monitoring, Pipeline
    from .training import Checkpoint, DataSpec, Distributed, DocsRun, ModelSpec, OptimSpec, SampleInput, Training
    from .types import Factory, Paragraph, Text, ref_name, split_image

_HOME = {
    **dict.fromkeys(["SSH", "Access", "Environment", "Jupyter", "Port", "Volume"], "environment"),
    **dict.fromkeys(["describe_fields"], "fields"),
    **dict.fromkeys(
        ["METRICS", "SHORTHANDS", "Bound", "Devices", "Expect", "LintSpec", "Metric", "Monitoring", "Pipeline"],
        "pipeline",
    ),
    **dict.fromkeys(
        ["Checkpoint", "DataSpec", "Distributed", "DocsRun", "ModelSpec", "OptimSpec", "SampleInput", "Training"],
        "training",
    ),
    **dict.fromkeys(["Factory", "Paragraph", "Text", "ref_name", "split_image"], "types"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "METRICS",
    "SHORTHANDS",
    "SSH",
    "Access",
    "Bound",
    "Checkpoint",
    "DataSpec",
    "Devices",
    "Distributed",
    "DocsRun",
    "Environment",
    "Expect",
    "Factory",
    "Jupyter",
    "LintSpec",
    "Metric",
    "ModelSpec",
    "Monitoring",
    "OptimSpec",
    "Paragraph",
    "Pipeline",
    "Port",
    "SampleInput",
    "Text",
    "Training",
    "Volume",
    "describe_fields",
    "ref_name",
    "split_image",
]
