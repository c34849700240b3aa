"""digest: a Jekyll-style folder of Markdown posts → Atom/RSS feeds per tag and a weekly email."""

__version__ = "0.1.0"
