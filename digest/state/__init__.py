"""What digest keeps between runs, in the state folder: the SQLite database (parse and render
caches, entry ids, the send log, the daemon's notes) and the locks beside it."""
