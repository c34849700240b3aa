"""The command line (`digest`): the commands, `digest check` and `digest init`."""

from .commands import main

__all__ = ["main"]
