"""What comes back after a digest is sent: bounces, complaints and unsubscribe replies, read
from a mailbox or a relay's webhook, turned into suppressions of the addresses concerned."""
