"""Stage 3, presentation (no torch): the Jinja environment (:mod:`.env`) and its templates, escaping
per destination (:mod:`.escape`), Mermaid primitives and diagrams, the model view and table, the
training chart, launch commands, lint findings, the generated Markdown blocks (:mod:`.content`) and
the reference pages."""
