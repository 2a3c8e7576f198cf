"""Stage 4, where generated text lands: ``traindoc`` fences (:mod:`.docsgen`), the MkDocs plugin
(:mod:`.mkdocs_plugin`), README sections (:mod:`.sections`, :mod:`.readme`)."""
