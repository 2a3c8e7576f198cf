"""The parent side of a training run (no torch): plan the processes (:mod:`.launch`), start and
supervise them (:mod:`.runner`, with :mod:`.hang` and :mod:`.runfolder`), read the run protocol
(:mod:`.protocol`) and assemble the results record (:mod:`.assemble`, :mod:`.results`).

Empty on purpose: the records (``run.results``, ``run.protocol``) are imported by ``render/`` and
``train/`` without pulling in the orchestration.
"""
