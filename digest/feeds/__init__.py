"""The feeds stage: posts → Atom and RSS files per tag, the OPML list and the stylesheet."""
