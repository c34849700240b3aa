"""The subscriber's side on the web: unsubscribe, tags, the archive, and the feeds.

One ASGI app (Starlette) that `digest run` serves beside its scheduler and `digest serve`
serves alone. Links in a digest carry signed tokens (subscribers/tokens.py); nothing here lists
subscribers or tells whether an address is subscribed.
"""
