"""Who gets the digest: the subscribers file read and checked, and the signed tokens in their
unsubscribe and preferences links."""
