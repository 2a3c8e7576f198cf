"""Compatibility shim: installed sites may name the plugin entry point
``traindoc.mkdocs_plugin:TraindocPlugin``. The plugin lives in :mod:`traindoc.pages.mkdocs_plugin`."""

from __future__ import annotations

from .pages.mkdocs_plugin import TraindocConfig, TraindocPlugin

__all__ = ["TraindocConfig", "TraindocPlugin"]
