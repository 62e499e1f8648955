-- The offline store's tables. Named so that they never clash with MongooseIM's
-- offline_message, which may live in the same database while a deployment moves over.
-- Addresses compare byte-wise (COLLATE "C"), whatever the database's default collation.

-- One row per user who was ever written to. Every write for the user locks and updates it
-- in its transaction, which serialises a user's writers on every node: the quota check, the
-- insert and the seqs all happen under it. Kept when the queue empties, so seqs never repeat.
CREATE TABLE IF NOT EXISTS offline_store_queue (
    server       TEXT COLLATE "C" NOT NULL,
    username     TEXT COLLATE "C" NOT NULL,
    -- The seq the next stored message gets.
    next_seq     BIGINT NOT NULL,
    -- What the queue holds, expired messages not yet removed included.
    messages     BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    -- No held message expires before this instant (NULL: none expires).
    expire_floor BIGINT,
    PRIMARY KEY (server, username)
);

-- The users holding messages, in (server, username) order: list_users pages through it.
CREATE INDEX IF NOT EXISTS offline_store_queue_holding
    ON offline_store_queue (server, username) WHERE messages > 0;

CREATE TABLE IF NOT EXISTS offline_store_message (
    server           TEXT COLLATE "C" NOT NULL,
    username         TEXT COLLATE "C" NOT NULL,
    seq              BIGINT NOT NULL,
    stamp            BIGINT NOT NULL,
    expire           BIGINT,
    from_jid         TEXT NOT NULL,
    to_jid           TEXT NOT NULL,
    packet           TEXT NOT NULL,
    packet_bytes     BIGINT NOT NULL,
    dedupe_key       TEXT,
    -- SHA-256 of dedupe_key: a short, fixed-size key for the unique index.
    dedupe_digest    BYTEA,
    permanent_fields BYTEA,
    PRIMARY KEY (server, username, seq)
);

CREATE UNIQUE INDEX IF NOT EXISTS offline_store_message_dedupe
    ON offline_store_message (server, username, dedupe_digest) WHERE dedupe_digest IS NOT NULL;

-- Per-server expiry and age, so that purges read only what they remove.
CREATE INDEX IF NOT EXISTS offline_store_message_expiry
    ON offline_store_message (server, expire) WHERE expire IS NOT NULL;
CREATE INDEX IF NOT EXISTS offline_store_message_age
    ON offline_store_message (server, stamp);
