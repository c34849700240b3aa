"""`digest subscribers list|show|export` and `digest deliveries`: who is on the list and who
got what."""

from __future__ import annotations
