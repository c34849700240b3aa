"""The state database's schema, one script per version, in order: a migration is never
edited once released (a database records how many it has applied), only added."""

MIGRATIONS = (
    """
    CREATE TABLE parsed (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                         fingerprint TEXT, kind TEXT, data TEXT);
    CREATE TABLE entry_ids (path TEXT PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE,
                            first_seen TEXT NOT NULL);
    CREATE TABLE rendered (path TEXT PRIMARY KEY, key TEXT, data TEXT);
    CREATE TABLE feeds (name TEXT PRIMARY KEY, inputs TEXT);
    """,
    # 0.1.1: cache rows as one JSON array; the parse cache is only a cache, so start afresh
    """
    DROP TABLE parsed;
    CREATE TABLE parsed (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                         fingerprint TEXT, row TEXT);
    """,
    # 0.2: the digest's send log (see sendlog.py)
    """
    CREATE TABLE runs (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE,
                       period_start TEXT NOT NULL, period_end TEXT NOT NULL UNIQUE,
                       created_at TEXT NOT NULL, finished_at TEXT,
                       state TEXT NOT NULL CHECK (state IN ('sending', 'paused', 'done')));
    CREATE TABLE run_posts (run_id INTEGER NOT NULL REFERENCES runs(id),
                            entry_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
                            twin TEXT NOT NULL);
    CREATE INDEX run_posts_run ON run_posts(run_id);
    CREATE INDEX run_posts_twin ON run_posts(twin);
    CREATE TABLE deliveries (run_id INTEGER NOT NULL REFERENCES runs(id),
                             subscriber TEXT NOT NULL, email TEXT NOT NULL,
                             state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed',
                                 'deferred', 'empty', 'suppressed')),
                             attempts INTEGER NOT NULL DEFAULT 0, code INTEGER, reply TEXT,
                             message_id TEXT, posts INTEGER, updated_at TEXT,
                             PRIMARY KEY (run_id, subscriber));
    CREATE INDEX deliveries_state ON deliveries(run_id, state);
    CREATE TABLE suppressed (subscriber TEXT PRIMARY KEY, since TEXT NOT NULL,
                             reason TEXT NOT NULL);
    CREATE TABLE preferences (subscriber TEXT PRIMARY KEY, tags TEXT NOT NULL,
                              updated_at TEXT NOT NULL);
    CREATE TABLE subscribers_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
                                       path TEXT NOT NULL, text TEXT NOT NULL,
                                       saved_at TEXT NOT NULL);
    """,
    # 0.3: what `digest run` last did and found, for `digest status` (see daemon/status.py)
    """
    CREATE TABLE daemon_status (key TEXT PRIMARY KEY, data TEXT NOT NULL,
                                updated_at TEXT NOT NULL);
    """,
    # 0.4: what a build needs of each reading in columns, so it reads only what changed;
    # `seq` numbers the writes (and parsed_gone keeps deletions), so a build finds what changed
    # since it last looked even when another command refreshed the cache in between; `live`
    # is what the last build published (posts/index.py)
    """
    DROP TABLE parsed;
    CREATE TABLE parsed (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                         fingerprint TEXT, row TEXT, seq INTEGER NOT NULL,
                         ts REAL, date TEXT, url TEXT, published INTEGER, terms TEXT,
                         jekyll_id TEXT, warned INTEGER);
    CREATE INDEX parsed_marks ON parsed(path, size, mtime_ns, fingerprint);
    CREATE INDEX parsed_seq ON parsed(seq);
    CREATE INDEX parsed_ts ON parsed(ts);
    CREATE INDEX parsed_url ON parsed(url, published, ts);
    CREATE INDEX parsed_problems ON parsed(path) WHERE published IS NULL;
    CREATE INDEX parsed_warned ON parsed(path) WHERE warned = 1;
    CREATE TABLE parsed_gone (path TEXT NOT NULL, seq INTEGER NOT NULL);
    CREATE TABLE live (path TEXT PRIMARY KEY, ts REAL NOT NULL, date TEXT NOT NULL,
                       updated TEXT, url TEXT NOT NULL, terms TEXT NOT NULL);
    CREATE INDEX live_order ON live(ts, path);
    CREATE TABLE live_terms (kind TEXT, term TEXT, ts REAL, path TEXT,
                             PRIMARY KEY (kind, term, ts, path)) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 0.5: the parse cache's marks as one blob, so a build with nothing new compares two
    # dicts instead of loading 20,000 rows; rewritten (or dropped) with every write above
    """
    CREATE TABLE parse_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
                                 fingerprint TEXT NOT NULL, format TEXT NOT NULL,
                                 marks BLOB NOT NULL);
    """,
    # 0.6: the marks index only served the query the snapshot replaced (it is now a rare
    # fallback, and a table scan does); each of a cold build's 20,000 inserts paid for it
    """
    DROP INDEX parsed_marks;
    """,
    # 0.7: the posts each post links to by file name ({% post_url %}), so a build re-renders
    # a post when one of them moves (posts/index.py); few posts link, so a partial index finds them
    # (covering: read from the table, each row's long `row` text made it 4x slower).
    # `live` gets each post's file stem, so a link is resolved without reading every URL;
    # forgetting the live state makes the next build fill it again, stems and all
    """
    ALTER TABLE parsed ADD COLUMN links TEXT;
    CREATE INDEX parsed_links ON parsed(path, links) WHERE links IS NOT NULL;
    ALTER TABLE live ADD COLUMN stem TEXT;
    CREATE INDEX live_stem ON live(stem);
    DELETE FROM meta WHERE key = 'live';
    """,
    # 0.8: the archive of sent digests in the shared state, so every machine's web front shows
    # it (state/interface.py); the JSON text as delivery/archive.py wrote its file, the period
    # in columns for the index, `ends_at` (a UTC timestamp) to order it across UTC offsets
    """
    CREATE TABLE archive (slug TEXT PRIMARY KEY, period_start TEXT NOT NULL,
                          period_end TEXT NOT NULL, ends_at REAL NOT NULL, text TEXT NOT NULL);
    CREATE INDEX archive_order ON archive(ends_at, slug);
    """,
    # 0.9: the list beside the owner's YAML (sign-ups and imports), sign-ups waiting for
    # confirmation, rate-limit counters shared by every web node, bounces and complaints,
    # and the evidence behind each suppression (state/lists.py)
    """
    ALTER TABLE suppressed ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
    CREATE TABLE members (key TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT,
                          tags TEXT NOT NULL, source TEXT NOT NULL
                              CHECK (source IN ('signup', 'import')),
                          since TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE pending (key TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT,
                          tags TEXT NOT NULL, requested_at TEXT NOT NULL);
    CREATE TABLE hits (bucket TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX hits_bucket ON hits(bucket, at);
    CREATE TABLE bounces (ident TEXT PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL
                              CHECK (kind IN ('hard', 'soft', 'complaint', 'unsubscribe')),
                          at TEXT NOT NULL, origin TEXT NOT NULL, status TEXT,
                          diagnostic TEXT NOT NULL, run TEXT, evidence TEXT NOT NULL);
    CREATE INDEX bounces_key ON bounces(key, at);
    CREATE INDEX bounces_at ON bounces(at);
    CREATE INDEX deliveries_subscriber ON deliveries(subscriber);
    """,
    # 0.10: the owner pauses, resumes and cancels a run (delivery/control.py). A run may be
    # 'cancelled', and so may the deliveries it had not served; `owner_paused` tells the
    # owner's pause (kept until the owner resumes) from the run's own pause (resumed by the
    # next send). SQLite cannot change a CHECK, so both tables are rebuilt (its documented
    # 12-step way: new table, copy, drop, rename); `run_actions` keeps who did what, why, when
    """
    CREATE TABLE runs_new (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE,
                           period_start TEXT NOT NULL, period_end TEXT NOT NULL UNIQUE,
                           created_at TEXT NOT NULL, finished_at TEXT,
                           state TEXT NOT NULL
                               CHECK (state IN ('sending', 'paused', 'done', 'cancelled')),
                           owner_paused INTEGER NOT NULL DEFAULT 0);
    INSERT INTO runs_new (id, slug, period_start, period_end, created_at, finished_at, state)
        SELECT id, slug, period_start, period_end, created_at, finished_at, state FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_new RENAME TO runs;
    CREATE TABLE deliveries_new (run_id INTEGER NOT NULL REFERENCES runs(id),
                                 subscriber TEXT NOT NULL, email TEXT NOT NULL,
                                 state TEXT NOT NULL CHECK (state IN ('pending', 'sent',
                                     'failed', 'deferred', 'empty', 'suppressed',
                                     'cancelled')),
                                 attempts INTEGER NOT NULL DEFAULT 0, code INTEGER,
                                 reply TEXT, message_id TEXT, posts INTEGER, updated_at TEXT,
                                 PRIMARY KEY (run_id, subscriber));
    INSERT INTO deliveries_new SELECT run_id, subscriber, email, state, attempts, code, reply,
                                      message_id, posts, updated_at FROM deliveries;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_new RENAME TO deliveries;
    CREATE INDEX deliveries_state ON deliveries(run_id, state);
    CREATE INDEX deliveries_subscriber ON deliveries(subscriber);
    CREATE TABLE run_actions (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES
                                  runs(id),
                              act TEXT NOT NULL CHECK (act IN ('pause', 'resume',
                                                                     'cancel')),
                              actor TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
    CREATE INDEX run_actions_run ON run_actions(run_id, id);
    """,
    # 0.11: several senders serve one run (delivery/send.py): each claims a batch of
    # deliveries with a lease (its node id, and a UNIX time after which another node may
    # take them); recording an outcome clears it. `nodes` holds each sending process's
    # heartbeat, for `digest status` (daemon/status.py)
    """
    ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
    ALTER TABLE deliveries ADD COLUMN lease_until REAL;
    CREATE INDEX deliveries_lease ON deliveries(lease_owner) WHERE lease_owner IS NOT NULL;
    CREATE TABLE nodes (node TEXT PRIMARY KEY, role TEXT NOT NULL, started_at TEXT NOT NULL,
                        beat_at REAL NOT NULL, run TEXT, leased INTEGER NOT NULL DEFAULT 0,
                        lease_seconds REAL NOT NULL);
    """,
    # 0.12: the last good subscribers file's text moves to the row's last column. SQLite
    # writes a zeroblob that ends its row without making it, so the text (77 MB for a
    # million subscribers) is written into it a megabyte at a time (sendlog.save_snapshot);
    # with a column after it, building the row made the zeros, then a copy of the row
    """
    CREATE TABLE subscribers_snapshot_new (id INTEGER PRIMARY KEY CHECK (id = 1),
                                           path TEXT NOT NULL, saved_at TEXT NOT NULL,
                                           text TEXT NOT NULL);
    INSERT INTO subscribers_snapshot_new (id, path, saved_at, text)
        SELECT id, path, saved_at, text FROM subscribers_snapshot;
    DROP TABLE subscribers_snapshot;
    ALTER TABLE subscribers_snapshot_new RENAME TO subscribers_snapshot;
    """,
    # 0.13: the deliveries still open, in the order they were added, for claiming a batch
    # (sendlog.claim): through deliveries_state a claim read every delivery of the run and
    # sorted them, so a run's claims grew with the square of its size
    """
    CREATE INDEX deliveries_open ON deliveries(run_id) WHERE state IN ('pending', 'deferred');
    """,
    # 0.14: a digest of the (subscriber, address) pairs a run was made or last extended
    # with (delivery/send.py roster): a sender joining it with the same list adds nothing,
    # so it need not offer every pair again to learn that none is new
    """
    ALTER TABLE runs ADD COLUMN roster BLOB;
    """,
)

# One reading in the parse cache: (path, size, mtime_ns, fingerprint, row) then the index
