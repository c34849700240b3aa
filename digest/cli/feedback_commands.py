"""`digest bounces`: read the bounces mailbox now."""

from __future__ import annotations
