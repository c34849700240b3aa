"""`digest subscribers import`: a Mailchimp audience export or a CSV into the list."""

from __future__ import annotations
