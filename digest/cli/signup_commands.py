"""`digest signup-form`: the sign-up form to paste into the site."""

from __future__ import annotations
