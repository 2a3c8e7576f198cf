"""Compatibility shim: ``traindoc.docsgen.formatter`` is named in Zensical / superfences configs
(``format: !!python/name:traindoc.docsgen.formatter``). The code lives in :mod:`traindoc.pages.docsgen`."""

from __future__ import annotations

from .pages.docsgen import CachedProvider, FenceError, formatter, parse_options

__all__ = ["CachedProvider", "FenceError", "formatter", "parse_options"]
