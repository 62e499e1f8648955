-- The offline store's tables. Named so that they never clash with MongooseIM's
-- offline_message, which may live in the same database while a deployment moves over.
-- Addresses are binary strings: they compare byte-wise whatever the server's default
-- collation (MariaDB's utf8mb4_general_ci would make `emile` and `Émile`, or `k` and `k `,
-- one user).

-- One row per user who was ever written to. Every write for the user locks and updates it
-- in its transaction, which serialises a user's writers on every node, on a Galera cluster
-- too (two nodes updating one row conflict at certification): the quota check, the insert
-- and the seqs all happen under it. Kept when the queue empties, so seqs never repeat.
CREATE TABLE IF NOT EXISTS offline_store_queue (
    server       VARBINARY(1023) NOT NULL,
    username     VARBINARY(1023) NOT NULL,
    -- The seq the next stored message gets.
    next_seq     BIGINT NOT NULL,
    -- What the queue holds, expired messages not yet removed included.
    messages     BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    -- No held message expires before this instant (NULL: none expires).
    expire_floor BIGINT NULL,
    -- The server while the queue holds messages, else NULL: list_users pages through its index.
    held_server  VARBINARY(1023) AS (IF(messages > 0, server, NULL)) PERSISTENT,
    PRIMARY KEY (server, username),
    KEY offline_store_queue_holding (held_server, username)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE IF NOT EXISTS offline_store_message (
    server           VARBINARY(1023) NOT NULL,
    username         VARBINARY(1023) NOT NULL,
    seq              BIGINT NOT NULL,
    stamp            BIGINT NOT NULL,
    expire           BIGINT NULL,
    from_jid         BLOB NOT NULL,
    to_jid           BLOB NOT NULL,
    packet           MEDIUMBLOB NOT NULL,
    packet_bytes     BIGINT NOT NULL,
    dedupe_key       BLOB NULL,
    -- SHA-256 of dedupe_key: a short, fixed-size key for the unique index.
    dedupe_digest    BINARY(32) NULL,
    permanent_fields MEDIUMBLOB NULL,
    PRIMARY KEY (server, username, seq),
    UNIQUE KEY offline_store_message_dedupe (server, username, dedupe_digest),
    -- Per-server expiry and age, so that purges read only what they remove.
    KEY offline_store_message_expiry (server, expire),
    KEY offline_store_message_age (server, stamp)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
