"""Small shared helpers below every stage: atomic writes (:mod:`.atomic`), secret masking
(:mod:`.redact`) and the process tree every child process lives in (:mod:`.procs`). No torch."""
