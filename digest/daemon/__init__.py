"""`digest run`: the long-running process that watches the posts, rebuilds the feeds, sends
each digest on schedule and serves the web front; and `digest status`, what it last noted."""
