"""The `digest` command line: a thin layer that loads config, calls the library, sets exit codes.

Exit codes: 0 success, 1 some input was rejected (everything else was still done),
2 usage or configuration errors. Logging is configured here and nowhere else.

The group and what every command shares are in base.py; the commands, by what they work on,
in feeds_commands.py, digest_commands.py, admin_commands.py, list_commands.py,
import_command.py, signup_commands.py, feedback_commands.py and state_commands.py:
importing them registers them.
"""

from __future__ import annotations

from . import (
    admin_commands,
    digest_commands,
    feedback_commands,
    feeds_commands,
    import_command,
    list_commands,
    signup_commands,
    state_commands,
)
from .base import DEFERRED_EXIT, main

__all__ = ["DEFERRED_EXIT", "admin_commands", "digest_commands", "feedback_commands",
           "feeds_commands", "import_command", "list_commands", "main", "signup_commands",
           "state_commands"]
