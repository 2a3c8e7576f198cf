"""Diagrams as files for slides: the pinned Mermaid build (:mod:`.assets`), headless Chromium
(:mod:`.browser`) and ``traindoc export`` (:mod:`.export`)."""
