"""The delivery stage: a digest run end to end (posts and subscribers read, editions composed,
messages handed to a transport, every outcome in the send log), its preview, and the
transports themselves (SMTP, Maildir)."""
