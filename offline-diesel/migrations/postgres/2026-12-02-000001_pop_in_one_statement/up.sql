-- A pop in one statement, one round trip: the user's queue row is locked and emptied first,
-- then every message of the queue is deleted and returned. Under READ COMMITTED each statement
-- of a function sees what was committed before it ran, so the DELETE sees every message
-- committed before the lock was taken, and no writer can add one while it is held: the row's
-- counters stay exact. A queue row holding nothing is left alone (no write for an empty pop).
CREATE OR REPLACE FUNCTION offline_store_pop(p_server TEXT, p_username TEXT)
RETURNS TABLE (
    seq BIGINT, stamp BIGINT, expire BIGINT, from_jid TEXT, to_jid TEXT, packet TEXT,
    dedupe_key TEXT, permanent_fields BYTEA
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    UPDATE offline_store_queue AS q SET messages = 0, bytes = 0, expire_floor = NULL
        WHERE q.server = p_server COLLATE "C" AND q.username = p_username COLLATE "C"
          AND q.messages > 0;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY DELETE FROM offline_store_message AS m
        WHERE m.server = p_server COLLATE "C" AND m.username = p_username COLLATE "C"
        RETURNING m.seq, m.stamp, m.expire, m.from_jid, m.to_jid, m.packet, m.dedupe_key,
                  m.permanent_fields;
END;
$$;
