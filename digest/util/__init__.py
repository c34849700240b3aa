"""Small helpers every stage may use: the clock, logging, atomic writes, bounded YAML, worker
processes, the event loop and the built-in templates. They import nothing of digest but
digest.errors."""
