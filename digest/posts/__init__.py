"""The posts stage: a Jekyll posts folder → posts, read as Jekyll would, with their URLs,
ids and rendered content; every problem at its file and line."""
