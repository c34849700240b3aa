"""The digest's editions: which posts a digest carries, and an edition laid out as HTML and
text and made into a message for one recipient."""
