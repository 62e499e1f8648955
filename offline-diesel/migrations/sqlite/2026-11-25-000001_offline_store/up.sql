-- The offline store's tables. Text compares byte-wise (SQLite's BINARY collation).

-- One row per user who was ever written to; every write for the user updates it in its
-- transaction. Kept when the queue empties, so seqs never repeat.
CREATE TABLE IF NOT EXISTS offline_store_queue (
    server       TEXT NOT NULL,
    username     TEXT NOT NULL,
    -- The seq the next stored message gets.
    next_seq     INTEGER NOT NULL,
    -- What the queue holds, expired messages not yet removed included.
    messages     INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    -- No held message expires before this instant (NULL: none expires).
    expire_floor INTEGER,
    PRIMARY KEY (server, username)
) WITHOUT ROWID;

-- The users holding messages, in (server, username) order: list_users pages through it.
CREATE INDEX IF NOT EXISTS offline_store_queue_holding
    ON offline_store_queue (server, username) WHERE messages > 0;

CREATE TABLE IF NOT EXISTS offline_store_message (
    server           TEXT NOT NULL,
    username         TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    stamp            INTEGER NOT NULL,
    expire           INTEGER,
    from_jid         TEXT NOT NULL,
    to_jid           TEXT NOT NULL,
    packet           TEXT NOT NULL,
    packet_bytes     INTEGER NOT NULL,
    dedupe_key       TEXT,
    -- SHA-256 of dedupe_key: a short, fixed-size key for the unique index.
    dedupe_digest    BLOB,
    permanent_fields BLOB,
    PRIMARY KEY (server, username, seq)
);

CREATE UNIQUE INDEX IF NOT EXISTS offline_store_message_dedupe
    ON offline_store_message (server, username, dedupe_digest) WHERE dedupe_digest IS NOT NULL;

-- Per-server expiry and age, so that purges read only what they remove.
CREATE INDEX IF NOT EXISTS offline_store_message_expiry
    ON offline_store_message (server, expire) WHERE expire IS NOT NULL;
CREATE INDEX IF NOT EXISTS offline_store_message_age
    ON offline_store_message (server, stamp);
