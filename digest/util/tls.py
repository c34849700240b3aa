"""The TLS context every client of ours uses (SMTP, IMAP): chain and hostname always
verified; a configured CA file replaces the system's trust store."""

from __future__ import annotations

import ssl
from pathlib import Path

from ..errors import ConfigError, Problem


def tls_context(ca_file: Path | None, setting: str) -> ssl.SSLContext:
    """A verifying context; *setting* names the config key of *ca_file* (smtp.ca_file) for
    the error when it cannot be loaded."""
    if ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([Problem(ca_file, None, f"{setting} cannot be loaded: {exc}",
                                   f"point {setting} at a PEM file of CA certificates")]
                          ) from None
